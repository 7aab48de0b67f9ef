"""Chaos: workers killed with SIGKILL mid-run. Every row ends `ok` exactly once, nothing partial."""

import os
import signal
import threading

import pyarrow.dataset as pads
import pytest
from PIL import Image

from batch_nst import job
from batch_nst.params import StyleParams
from tests.conftest import smooth_image


def _worker_pids() -> list[int]:
    """Processes whose Ray title names our actor class ("ray::Worker...")."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::Worker"):
                    pids.append(int(pid))
        except OSError:
            continue
    return pids


@pytest.fixture
def library(tmp_path):
    lines = ["id,content,style"]
    Image.fromarray(smooth_image(48, 48, 100)).save(tmp_path / "style.png")
    for i in range(6):
        Image.fromarray(smooth_image(48, 48, i)).save(tmp_path / f"c{i}.png")
        lines.append(f"c{i},c{i}.png,style.png")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


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
    summary = job.run(config, on_record=lambda rec, s: first_record.set())
    thread.join()
    assert killed, "no worker process was found to kill"
    assert (summary.ok, summary.failed, summary.exit_code) == (6, 0, 0)
    recs = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    assert sorted(r["id"] for r in recs) == [f"c{i}" for i in range(6)]  # one record each: ok once
    assert all(r["status"] == "ok" for r in recs)
    assert sorted(os.listdir(os.path.join(root, "images"))) == [f"c{i}.png" for i in range(6)]  # no temp files
