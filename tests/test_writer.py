"""The driver's writer: chunks in, few large parts out, pending copies deleted once written."""

import pyarrow.dataset as pads

from batch_nst.errors import StorageError
from batch_nst.job import pending, records
from batch_nst.job.pending import Chunk
from batch_nst.job.writer import Writer


def _rec(i, status="ok"):
    return records.record(id=f"item{i}", key=f"k{i}", status=status, loss_history=[3.0, 2.0], total_loss=1.5,
                          steps=2, run_id="r1", worker="host:1", finished_at=records.now())


def test_writer_flushes_parts_readable_as_one_dataset(tmp_path):
    root = str(tmp_path / "out")
    writer = Writer(root, "r1", every=2, seconds=3600)
    for i in range(5):
        writer.add(Chunk(records.table([_rec(i, status="ok" if i % 2 == 0 else "failed")])))
    writer.flush()
    files = sorted(p.name for p in (tmp_path / "out" / "metadata").iterdir())
    assert files == ["part-r1-00000.parquet", "part-r1-00001.parquet", "part-r1-00002.parquet"]
    table = pads.dataset(root + "/metadata").to_table()
    assert table.num_rows == 5 and table.schema.equals(records.SCHEMA)
    assert table.column("loss_history").to_pylist()[0] == [3.0, 2.0]
    assert records.current_ok(root) == {"item0": "k0", "item2": "k2", "item4": "k4"}


def test_a_part_holds_whole_chunks_and_their_pending_copies_go_once_it_is_written(tmp_path):
    root = str(tmp_path)
    chunks = [pending.write_chunk(root, "r1", [_rec(i), _rec(i + 10)]) for i in range(3)]
    writer = Writer(root, "r1", every=100, seconds=3600)
    for chunk in chunks:
        writer.add(chunk)
    assert len(pending.files(root, "r1")) == 3 and records.read(root).num_rows == 0  # buffered
    writer.flush()
    assert pending.files(root, "r1") == [] and records.read(root).num_rows == 6
    assert writer.close() == 0 and not (tmp_path / "metadata" / "_pending" / "r1").exists()


def test_writer_gathers_what_workers_left_pending_and_leaves_no_empty_folder(tmp_path):
    """SIGINT while a worker wrote its images and its chunk's copy the driver never received: the
    summary said '0 finished and recorded'. The writer takes such records in, once."""
    root = str(tmp_path)
    received = pending.write_chunk(root, "r1", [_rec(1)])
    pending.write_chunk(root, "r1", [_rec(2), _rec(3)])
    pending.write_chunk(root, "r1", [_rec(1), _rec(4)])  # a lost chunk whose item 1 was redone alone
    writer = Writer(root, "r1")
    writer.add(received)
    assert sorted(writer.gather_pending()["id"].to_pylist()) == ["item2", "item3", "item4"]
    assert writer.gather_pending().num_rows == 0
    assert writer.close() == 0
    assert sorted(records.read(root, ["id"])["id"].to_pylist()) == ["item1", "item2", "item3", "item4"]
    assert not (tmp_path / "metadata" / "_pending" / "r1").exists()


def test_records_that_cannot_be_written_stay_pending_for_the_next_run(tmp_path, monkeypatch):
    """A full disk: the driver's own records (no copy of a worker's) are kept pending as well."""
    root = str(tmp_path)

    def full_disk(*args):
        raise StorageError("No space left on device")

    writer = Writer(root, "r1")
    writer.add(pending.write_chunk(root, "r1", [_rec(1)]))
    writer.add(Chunk(records.table([_rec(2, status="failed")])))  # a driver's record: no pending copy
    monkeypatch.setattr(records, "write_part", full_disk)
    assert writer.close() == 2 and "No space left" in writer.error
    monkeypatch.undo()
    assert pending.recover(root) == {"r1": 2}
    assert sorted(records.read(root, ["id"])["id"].to_pylist()) == ["item1", "item2"]
