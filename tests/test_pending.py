"""Pending records: one file per finished chunk, counted as done, gathered once after a crash."""

import pyarrow.dataset as pads

from batch_nst.job import pending, records


def _rec(i, run="r1", status="ok", at=None):
    return records.record(id=f"item{i}", key=f"k{i}", status=status, run_id=run, worker="host:1",
                          finished_at=at or records.now())


def test_a_chunk_is_one_pending_file_and_its_retry_replaces_it(tmp_path):
    """A chunk of 16 costs the metadata one PUT, not 16; Ray's retry of the same chunk writes
    the same name, so the copy is replaced, never doubled."""
    root = str(tmp_path)
    chunk = pending.write_chunk(root, "r1", [_rec(i) for i in range(16)])
    again = pending.write_chunk(root, "r1", [_rec(i) for i in range(16)])
    assert chunk.pending == again.pending and pending.files(root) == [chunk.pending]
    assert chunk.table.num_rows == 16 and chunk.table.schema.equals(records.SCHEMA)
    assert pending.read(chunk.pending)["id"].to_pylist() == [f"item{i}" for i in range(16)]
    assert pending.write_chunk(root, "r1", [_rec(1)]).pending != chunk.pending


def test_a_copy_that_cannot_be_written_still_reaches_the_driver(tmp_path):
    (tmp_path / "metadata").write_text("a file where the folder should be")
    chunk = pending.write_chunk(str(tmp_path), "r1", [_rec(1)])
    assert chunk.pending is None and chunk.table["id"].to_pylist() == ["item1"]


def test_pending_records_count_as_done_and_are_gathered_once(tmp_path):
    """A killed driver: its workers' pending chunks are skipped by the next run and gathered
    into a part once, even when some of their records were already in a part."""
    root = str(tmp_path)
    flushed, unflushed = _rec(1), _rec(2)
    pending.write_chunk(root, "r1", [flushed, unflushed])
    records.write_part(root, "part-r1-00000", [flushed])  # the driver died before deleting the copy
    assert records.current_ok(root) == {"item1": "k1", "item2": "k2"}
    assert pads.dataset(root + "/metadata").to_table().num_rows == 1  # readers never see pending
    assert pending.recover(root) == {"r1": 1}
    assert sorted(records.read(root, ["id"])["id"].to_pylist()) == ["item1", "item2"]
    assert pending.recover(root) == {} and not list((tmp_path / "metadata" / "_pending").rglob("*"))


def test_a_chunk_lost_after_its_copy_was_written_and_redone_item_by_item_is_gathered_once(tmp_path):
    """The worker wrote its chunk's copy and died; the items were redone alone (new copies). The
    driver died too: recovery keeps each id's latest record of the run, once."""
    root = str(tmp_path)
    first = [_rec(1), _rec(2)]
    pending.write_chunk(root, "r1", first)
    for i in (1, 2):
        pending.write_chunk(root, "r1", [_rec(i, status="failed" if i == 2 else "ok")])
    pending.write_chunk(root, "r2", [_rec(3, run="r2")])
    assert pending.recover(root) == {"r1": 2, "r2": 1}
    found = {(r["run_id"], r["id"]): r["status"] for r in records.read(root).to_pylist()}
    assert found == {("r1", "item1"): "ok", ("r1", "item2"): "failed", ("r2", "item3"): "ok"}
