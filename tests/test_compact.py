"""Compaction: few large files holding exactly the same records, atomically for readers."""

import json
import threading

import pytest

from batch_nst import storage
from batch_nst.errors import StorageError
from batch_nst.job import compact, records


def _rec(i, run):
    return records.record(id=f"item{i:04d}", key=f"k{i}-{run}", status="ok", run_id=f"r{run}",
                          loss_history=[float(i)], finished_at=records.now())


def _nights(root, nights=5, parts=8, per_part=10, first=0):
    """Parts as nightly runs write them: each night every item again (history grows)."""
    for night in range(first, first + nights):
        for p in range(parts):
            records.write_part(root, f"part-r{night}-{p:05d}",
                               [_rec(p * per_part + i, night) for i in range(per_part)])


def _all(root):
    return sorted(tuple(sorted((k, str(v)) for k, v in r.items())) for r in records.read(root).to_pylist())


def _files(tmp_path):
    return sorted(p.name for p in (tmp_path / "metadata").glob("*.parquet"))


def test_compaction_keeps_exactly_the_same_records_in_few_files(tmp_path, monkeypatch):
    root = str(tmp_path)
    _nights(root)
    before = _all(root)
    monkeypatch.setattr(compact, "ROWS", 150)
    done = compact.compact(root)
    assert (done.inputs, done.outputs, done.records, done.deleted) == (40, 3, 400, 40)
    assert _all(root) == before  # every record of every run, history included, unchanged
    assert len(_files(tmp_path)) == 3 and all(n.startswith("compacted-") for n in _files(tmp_path))
    assert records.current_ok(root) == {f"item{i:04d}": f"k{i}-4" for i in range(80)}
    records.write_part(root, "part-r9-00000", [_rec(1, 9)])
    again = compact.compact(root)  # the full files stay; the small one and the new part merge
    assert again.inputs == 2 and len(_files(tmp_path)) == 3 and len(_all(root)) == 401
    assert compact.compact(root).outputs == 0  # nothing small left to merge


def test_a_reader_during_compaction_never_sees_a_record_twice_or_missing(tmp_path, monkeypatch):
    """A plan reads in a loop while compactions write their files and delete the old ones, and
    nights add parts between them."""
    root = str(tmp_path)
    _nights(root, nights=6)
    first = set(_keys(root))
    seen, stop = [], threading.Event()

    def reader():
        while not stop.is_set():
            seen.append(_keys(root))

    monkeypatch.setattr(compact, "ROWS", 100)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for night in range(10, 13):
            compact.compact(root)
            records.write_part(root, f"part-r{night}-00000", [_rec(i, night) for i in range(3)])
    finally:
        stop.set()
        thread.join()
    last = set(_keys(root))
    assert len(seen) > 3 and len(last) == len(first) + 9
    for found in seen:
        assert len(found) == len(set(found)) and first <= set(found) <= last  # never twice, never missing


def _keys(root):
    return list(zip(*records.read(root, ["run_id", "id"]).to_pydict().values()))


@pytest.mark.parametrize("dies_at", ["second write", "first delete"])
def test_a_compaction_killed_midway_leaves_a_root_that_reads_whole(tmp_path, monkeypatch, dies_at):
    root = str(tmp_path)
    _nights(root)
    before = _all(root)
    monkeypatch.setattr(compact, "ROWS", 150)
    real_write, real_remove, writes = storage.write_bytes, storage.remove, []

    def write_then_die(uri, data):
        writes.append(uri)
        if dies_at == "second write" and len(writes) == 2:
            raise StorageError("killed")
        real_write(uri, data)

    def remove_one_then_die(uris):
        real_remove(list(uris)[:1])
        raise StorageError("killed")

    monkeypatch.setattr(storage, "write_bytes", write_then_die)
    if dies_at == "first delete":
        monkeypatch.setattr(storage, "remove", remove_one_then_die)
    with pytest.raises(StorageError):
        compact.compact(root)
    monkeypatch.setattr(storage, "write_bytes", real_write)
    monkeypatch.setattr(storage, "remove", real_remove)
    assert _all(root) == before  # readable, each record once
    compact.compact(root)  # the next compaction finishes the work
    assert _all(root) == before and len(_files(tmp_path)) <= 3


def test_a_claim_survives_the_compacted_file_that_made_it(tmp_path, monkeypatch):
    """A compacted file replaced again before its own leftovers went: deleting it must not bring
    back the parts it had replaced."""
    root = str(tmp_path)
    _nights(root, nights=2)
    before = _all(root)
    monkeypatch.setattr(compact, "ROWS", 1000)
    monkeypatch.setattr(storage, "remove", lambda uris: None)  # no deletion at all: leftovers stay
    compact.compact(root)
    records.write_part(root, "part-r7-00000", [_rec(1, 7)])
    compact.compact(root)
    monkeypatch.undo()
    assert len(_all(root)) == len(before) + 1
    compact.compact(root)
    assert len(_all(root)) == len(before) + 1 and len(_files(tmp_path)) == 1


def test_due_past_the_threshold(tmp_path, monkeypatch):
    root = str(tmp_path)
    monkeypatch.setattr(compact, "THRESHOLD", 3)
    _nights(root, nights=1, parts=3)
    assert not compact.due(root)
    _nights(root, nights=1, parts=4)
    assert compact.due(root)


def test_a_runs_end_lists_the_metadata_once_to_decide_and_to_compact(tmp_path, monkeypatch):
    """On cloud storage a listing and each compacted file's footer are requests: the check and
    the compaction share them."""
    root = str(tmp_path)
    monkeypatch.setattr(compact, "THRESHOLD", 3)
    _nights(root, nights=1, parts=2)
    listings = []
    glob = storage.glob
    monkeypatch.setattr(storage, "glob", lambda pattern: listings.append(pattern) or glob(pattern))
    assert compact.compact_if_due(root) is None and len(listings) == 1
    _nights(root, nights=1, parts=2, first=1)
    before = _all(root)
    listings.clear()
    done = compact.compact_if_due(root)
    assert done.inputs == 4 and len(listings) == 1 and _all(root) == before


def test_full_compacted_files_never_make_a_compaction_due(tmp_path, monkeypatch):
    """A library past THRESHOLD x ROWS records holds more full files than THRESHOLD: compacting
    them would rewrite nothing, so they are not counted; the small ones still are."""
    root = str(tmp_path)
    monkeypatch.setattr(compact, "THRESHOLD", 2)
    monkeypatch.setattr(compact, "ROWS", 10)
    _nights(root, nights=1, parts=4)  # 4 parts of 10 records
    compact.compact(root)
    assert len(_files(tmp_path)) == 4 and not compact.due(root)  # 4 full compacted files
    _nights(root, nights=1, parts=3, first=1)
    assert compact.due(root)


def test_the_compact_command_holds_the_lease(tmp_path, capsys):
    from batch_nst.cli import main
    from batch_nst.job import lease

    root = str(tmp_path)
    _nights(root, nights=2)
    with lease.hold(root, "a-live-run"):
        assert main(["compact", root]) == 2
    assert "a-live-run" in capsys.readouterr().err and len(_files(tmp_path)) == 16
    assert main(["compact", root, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"inputs": 16, "outputs": 1, "records": 160, "deleted": 16}
    assert not (tmp_path / "runs" / "_lease.json").exists()


def test_a_run_compacts_at_its_end_past_the_threshold_unless_interrupted(tmp_path, monkeypatch):
    from batch_nst.job import driver
    from batch_nst.job.runs import Summary

    root = str(tmp_path)
    _nights(root, nights=1, parts=3)
    monkeypatch.setattr(compact, "THRESHOLD", 2)
    assert driver._compact(root, Summary("r9", interrupted_by=15)) is None and len(_files(tmp_path)) == 3
    assert driver._compact(root, Summary("r9", failed=1))["outputs"] == 1 and len(_files(tmp_path)) == 1
    assert driver._compact(root, Summary("r9")) is None  # one file: not due

    def broken(root, files):
        raise StorageError("cannot write metadata/compacted-x.parquet: No space left on device")

    _nights(root, nights=1, parts=3, first=1)  # part names are never reused: a run's id is new
    monkeypatch.setattr(compact, "compact", broken)
    assert "No space left" in driver._compact(root, Summary("r9"))["error"]
    assert len(_all(root)) == 30 + 30
