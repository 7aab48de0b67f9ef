"""Chaos: workers killed with SIGKILL mid-run. Every row ends `ok` exactly once, nothing partial."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import threading

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from batch_nst.job import driver as job, pool, records, stopping
from batch_nst.job.pending import Chunk
from batch_nst.params import StyleParams


def _worker_pids() -> list[int]:
    """Processes whose Ray title names our actor class ("ray::WorkerActor...")."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::Worker"):
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("kill_all", [False, True], ids=["one-worker", "every-worker"])
def test_killed_workers_lose_nothing_and_duplicate_nothing(ray_session, library, legacy_weights_path, kill_all):
    root = str(library / "out")
    config = job.JobConfig(manifest=str(library / "m.csv"), output_root=root, weights=legacy_weights_path,
                           params=StyleParams(steps=40, max_size=48), workers=2, batch_items=1, max_attempts=3)
    first_record, killed = threading.Event(), []

    def killer():
        first_record.wait(timeout=300)  # both workers are now busy with their next item
        for pid in _worker_pids()[: None if kill_all else 1]:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    thread = threading.Thread(target=killer)
    thread.start()
    summary = job.run(config, on_chunk=lambda chunk, s: first_record.set())
    thread.join()
    assert killed, "no worker process was found to kill"
    assert (summary.ok, summary.failed, summary.exit_code) == (6, 0, 0)
    recs = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    assert sorted(r["id"] for r in recs) == [f"c{i}" for i in range(6)]  # one record each: ok once
    assert all(r["status"] == "ok" for r in recs)
    assert sorted(os.listdir(os.path.join(root, "images"))) == [f"c{i}.png" for i in range(6)]  # no temp files


def test_driver_killed_mid_run_then_rerun_redoes_at_most_what_was_in_flight(ray_session, library, legacy_weights_path):
    """SIGKILL the driver process mid-run; the same command again finishes the job. No key gets two
    `ok` records and only items that had not finished are stylized again."""
    import subprocess
    import sys
    import time

    root = library / "out"
    cmd = [sys.executable, "-m", "batch_nst", "run", str(library / "m.csv"), "-o", str(root),
           "--weights", legacy_weights_path, "--steps", "40", "--max-size", "48", "--workers", "2",
           "--batch-items", "1", "--quiet", "--address", ray_session.get_runtime_context().gcs_address,
           "--gpus-per-worker", "0"]  # a cluster's workers ask for a GPU unless told otherwise
    driver = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_finished(root)) < 2 and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finished_before = _finished(root)
    assert len(finished_before) >= 2 and len(finished_before) < 6  # killed mid-run
    config = job.JobConfig(manifest=str(library / "m.csv"), output_root=str(root), weights=legacy_weights_path,
                           params=StyleParams(steps=40, max_size=48), workers=2, batch_items=1)
    summary = job.run(config)
    assert summary.exit_code == 0 and summary.ok + summary.skipped == 6
    recs = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    oks = [(r["id"], r["key"]) for r in recs if r["status"] == "ok"]
    assert sorted(i for i, _ in oks) == [f"c{i}" for i in range(6)] and len(set(oks)) == len(oks)
    redone = {r["id"] for r in recs if r["run_id"] == summary.run_id}
    assert not redone & finished_before  # nothing that had finished was stylized again
    (killed,) = {r["run_id"] for r in recs} - {summary.run_id}  # defect 5: it ends `crashed`, said by this run
    assert json.loads((root / "runs" / f"{killed}.json").read_text())["status"] == "crashed"


def _finished(root) -> set[str]:
    """Ids whose records exist: in a worker's pending copy of its chunk, or a part the driver already
    gathered them into."""
    metadata = root / "metadata"
    files = [*(metadata / "_pending").rglob("*.parquet"), *metadata.glob("part-*.parquet")]  # written atomically
    found = set()
    for path in files:
        with contextlib.suppress(OSError):  # a pending file gathered and deleted since the listing
            found |= set(pq.read_table(path, columns=["id"])["id"].to_pylist())
    return found


class _PoolLosingPoison:
    """A `pool.Pool` stand-in: a chunk holding the poison item is lost the way a chunk whose
    worker died on every retry is; other chunks come back as records."""

    shape = pool.Shape(workers=2, cpus=1.0, gpus=0.0)

    def __init__(self, poison):
        self.poison, self.chunks_seen = poison, []

    def drain(self, chunks, stop, on_done=None):
        lost = []
        for chunk in chunks:
            self.chunks_seen.append([i.id for i in chunk])
            if any(i.id == self.poison for i in chunk):
                lost += chunk
            else:
                done = Chunk(records.table(records.record(id=i.id, status="ok", seconds=1.0) for i in chunk))
                if on_done:
                    on_done(done)
                yield done
        return lost


def test_a_poison_item_fails_alone_after_bounded_attempts():
    from batch_nst.job.manifest import WorkItem

    items = [WorkItem(i, f"i{i}", f"/c{i}.png", "/s.png", StyleParams(), f"k{i}") for i in range(10)]
    plan = job.Plan(todo=items, done=0, invalid=[], weights_identity="w", steps=0)
    config = job.JobConfig(manifest="m.csv", output_root="out", batch_items=4, max_attempts=3)
    workers = _PoolLosingPoison("i5")
    recs = {r["id"]: r for chunk in job._collect(workers, config, plan, "r1", stopping.Stop(grace=0))
            for r in chunk.table.to_pylist()}
    assert sorted(recs) == sorted(i.id for i in items)  # every row accounted for
    assert [i for i, r in recs.items() if r["status"] != "ok"] == ["i5"]
    assert "died while stylizing it, 3 times" in recs["i5"]["error"]
    assert ["i5"] in workers.chunks_seen  # its batch-mates were retried alone and came back ok


@pytest.mark.parametrize("grace", [120, 0], ids=["in-flight-finish", "no-grace"])
def test_sigterm_stops_dispatch_finishes_in_flight_items_and_exits_143(ray_session, library, legacy_weights_path,
                                                                      grace):
    """Defect 5: SIGTERM (a scheduler, a spot reclaim) exited 15 with a Ray stack dump. Now: no
    new items, those in flight finish within the grace and are recorded, summary `interrupted`,
    lease released, nothing half-written, exit 143; the next run redoes only what was not finished."""
    root = library / "out"
    cmd = [sys.executable, "-m", "batch_nst", "run", str(library / "m.csv"), "-o", str(root),
           "--weights", legacy_weights_path, "--steps", "40", "--max-size", "48", "--workers", "2",
           "--batch-items", "1", "--quiet", "--grace", str(grace), "--gpus-per-worker", "0",
           "--address", ray_session.get_runtime_context().gcs_address]
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pending = root / "metadata" / "_pending"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(pending.rglob("*.parquet")) and driver.poll() is None:
        time.sleep(0.05)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 143, err[-3000:]
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    (summary_file,) = (root / "runs").glob("2*.json")
    stored = json.loads(summary_file.read_text())
    assert stored["status"] == "interrupted" and stored["interrupted_by"] == "SIGTERM"
    counts = stored["counts"]
    assert counts["ok"] + counts["not_finished"] == 6 and counts["ok"] >= (2 if grace else 0)  # in flight: finished
    assert not (root / "runs" / "_lease.json").exists()
    assert not [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    recs = pads.dataset(str(root / "metadata")).to_table().to_pylist()
    finished = {r["id"] for r in recs}
    assert len(finished) == counts["ok"] and all((root / "images" / f"{i}.png").exists() for i in finished)
    config = job.JobConfig(manifest=str(library / "m.csv"), output_root=str(root), weights=legacy_weights_path,
                           params=StyleParams(steps=40, max_size=48), workers=2, batch_items=1)
    again = job.run(config)
    assert (again.ok, again.skipped, again.exit_code) == (6 - counts["ok"], counts["ok"], 0)
