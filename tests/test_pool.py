"""The pool's shape, JobConfig's checks, and resources that never come: exit 2, never a hang."""

import json
import os
import re

import pytest
from PIL import Image

from batch_nst import cli, commands
from batch_nst.job import pool
from batch_nst.cli import main
from batch_nst.errors import ParamsError
from batch_nst.job.driver import JobConfig
from tests.conftest import smooth_image


@pytest.mark.parametrize("field, value, flag", [
    ("max_attempts", 0, "--max-attempts must be >= 1"), ("batch_items", 0, "--batch-items must be >= 1"),
    ("workers", 0, "--workers must be >= 1"), ("gpus_per_worker", -1, "--gpus-per-worker must be >= 0"),
    ("checkpoint_every", -2, "--checkpoint-every must be >= 0"), ("wait_timeout", 0, "--wait-timeout must be > 0"),
    ("max_pixels", 0, "--max-pixels must be >= 1"), ("batch_pixels", 0, "--batch-pixels must be >= 1"),
])
def test_job_config_refuses_what_cannot_work(field, value, flag):
    """Built by the CLI or by code alike: max_attempts=0 once meant infinite Ray retries."""
    with pytest.raises(ParamsError, match=flag):
        JobConfig(manifest="m.csv", output_root="out", **{field: value})


POOL_FLAGS = ("wait_timeout", "max_attempts", "batch_items", "checkpoint_every", "grace")


def test_cli_defaults_are_job_configs(capsys):
    """One copy of each default: `run` without pool flags builds JobConfig's own values, and
    `run --help` shows each beside its flag."""
    built = commands.job_config(cli._parser().parse_args(["run", "m.csv", "-o", "out", "--weights", "w.h5"]))
    defaults = JobConfig(manifest="m.csv", output_root="out", weights="w.h5")
    for name in ("workers", "gpus_per_worker", "address", *POOL_FLAGS):
        assert getattr(built, name) == getattr(defaults, name), name
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in POOL_FLAGS:
        flag = "--" + name.replace("_", "-")
        (described,) = re.findall(rf"(?<=\s){flag} {name.upper()} ([^\[].*?)(?= --[a-z]|$)", text)
        assert f"(default {getattr(defaults, name):g}" in described, (flag, described)


@pytest.mark.parametrize(
    "resources, workers, gpus, expected",
    [
        ({"CPU": 2.0}, None, None, (2, 1.0, 0.0)),  # CPU machine: one single-threaded worker per core
        ({"CPU": 2.0}, 1, None, (1, 2.0, 0.0)),
        ({"CPU": 2.0}, 2, None, (2, 1.0, 0.0)),
        ({"CPU": 32.0, "GPU": 4.0}, None, None, (4, 1.0, 1.0)),  # one actor per GPU
        ({"CPU": 32.0, "GPU": 4.0}, None, 0.5, (8, 1.0, 0.5)),  # fractions pack two per GPU
        ({"CPU": 32.0, "GPU": 4.0}, 3, None, (3, 1.0, 1.0)),
        ({"CPU": 8.0, "GPU": 2.0}, None, None, (1, 1.0, 1.0)),  # never more workers than items (1 here)
    ],
)
def test_pool_shape_on_this_machine_from_its_resources(monkeypatch, resources, workers, gpus, expected):
    import ray

    monkeypatch.setattr(ray, "cluster_resources", lambda: resources)
    items = 1 if expected[0] == 1 and resources.get("GPU") == 2.0 else 100
    assert pool.shape(workers, gpus, items, on_cluster=False, log=print) == pool.Shape(*expected)


def test_a_cluster_scaled_to_zero_is_asked_for_gpu_workers(ray_session):
    """On a cluster, the pool asks for GPU workers even where no GPU exists yet (the autoscaler
    adds nodes for them); alone on this machine, the CPU default stays."""
    logged = []
    on_cluster = pool.shape(None, None, n_items=10, on_cluster=True, log=logged.append)
    assert (on_cluster.workers, on_cluster.gpus, on_cluster.describe()) == (1, 1.0, "{GPU: 1}")
    assert "--workers N" in logged[0]
    assert pool.shape(8, 0.5, n_items=10, on_cluster=True, log=logged.append) == pool.Shape(8, 1.0, 0.5)
    assert pool.shape(None, None, n_items=10, on_cluster=False, log=logged.append) == pool.Shape(2, 1.0, 0.0)


def test_pool_status_names_the_resources_waited_for():
    assert str(pool.Status(2, 8, "{GPU: 1}")) == "2 of 8 workers running, 6 waiting for {GPU: 1}"
    assert str(pool.Status(2, 2, "{GPU: 1}")) == "2 of 2 workers running"


@pytest.fixture
def one_item(tmp_path):
    Image.fromarray(smooth_image(16, 16, 1)).save(tmp_path / "c.png")
    Image.fromarray(smooth_image(16, 16, 2)).save(tmp_path / "s.png")
    (tmp_path / "m.csv").write_text("id,content,style\nc,c.png,s.png\n")
    return tmp_path


def test_gpus_this_machine_lacks_end_at_once_with_exit_2(ray_session, one_item, legacy_weights_path, capsys):
    """Seen before: `--gpus-per-worker 0.5` without GPUs hung at 0 items with no message."""
    code = main(["run", str(one_item / "m.csv"), "-o", str(one_item / "out"), "--weights", legacy_weights_path,
                 "--gpus-per-worker", "0.5", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "each worker needs {GPU: 0.5}" in err and "0 GPU(s)" in err


def test_resources_that_never_come_end_the_run_with_exit_2(ray_session, one_item, legacy_weights_path, capsys):
    """A cluster that cannot grow to the workers' GPUs: the wait is shown, bounded, named."""
    address = ray_session.get_runtime_context().gcs_address
    root = one_item / "out"
    code = main(["run", str(one_item / "m.csv"), "-o", str(root), "--weights", legacy_weights_path,
                 "--address", address, "--gpus-per-worker", "1", "--workers", "3", "--wait-timeout", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "0 of 1 workers running, 1 waiting for {GPU: 1}" in err  # one item: one worker is enough
    assert "no worker could start within --wait-timeout 2s" in err and "{GPU: 1}" in err
    (summary_file,) = os.listdir(root / "runs")
    summary = json.loads((root / "runs" / summary_file).read_text())
    assert summary["status"] == "no_resources"
    assert summary["pool"] == {"requested": 1, "started": 0, "replaced": 0, "resources": {"CPU": 1.0, "GPU": 1.0},
                               "workers": []}
    assert not os.path.exists(root / "runs" / "_lease.json")  # the root is free for the next run


def test_the_job_ends_when_the_items_are_done_though_a_worker_never_started(ray_session, tmp_path,
                                                                             legacy_weights_path, capsys):
    """Three workers of 1 CPU on a 2-CPU cluster: the third never starts, no chunk waits for it
    (a fixed pool handed it one, and hung), and the run ends ok when the items are done."""
    for i in range(4):
        Image.fromarray(smooth_image(16, 16, i)).save(tmp_path / f"c{i}.png")
    (tmp_path / "m.csv").write_text("id,content,style\n" + "".join(f"c{i},c{i}.png,c0.png\n" for i in range(4)))
    root = tmp_path / "out"
    code = main(["run", str(tmp_path / "m.csv"), "-o", str(root), "--weights", legacy_weights_path, "--steps", "1",
                 "--max-size", "16", "--batch-items", "1", "--address", ray_session.get_runtime_context().gcs_address,
                 "--workers", "3", "--gpus-per-worker", "0"])  # with the bar: the status goes in its line
    (summary_file,) = os.listdir(root / "runs")
    summary = json.loads((root / "runs" / summary_file).read_text())  # stdout also gets Ray's autoscaler notes
    assert code == 0 and summary["counts"]["ok"] == 4
    assert re.search(r"[12] of 3 workers running, [12] waiting for \{CPU: 1\}", capsys.readouterr().err)
    pool_summary = summary["pool"]
    assert (pool_summary["requested"], pool_summary["started"]) == (3, 2)
    assert all(w["accelerators"] == [] for w in pool_summary["workers"])  # CPU workers: no GPU ids


@pytest.mark.parametrize("assigned, visible", [([], ""), (["1"], "1")])
def test_a_worker_ray_gave_no_gpu_sees_none(monkeypatch, assigned, visible):
    """Ray 2.60 leaves $CUDA_VISIBLE_DEVICES alone for an actor of no GPU: the actor empties it,
    so on a GPU node a CPU worker's `auto` picks no GPU backend and its framework takes no card."""
    import ray

    from batch_nst.job import worker

    class Context:
        def get_node_id(self):
            return "node"

        def get_accelerator_ids(self):
            return {"GPU": assigned}

    seen = {}

    class Recorder:
        def __init__(self, config, where):
            seen.update(where, visible=os.environ.get("CUDA_VISIBLE_DEVICES"))
            self.name = "w"

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")  # as Ray sets it for an actor given GPU 1; restored after
    monkeypatch.setattr(ray, "get_runtime_context", Context)
    monkeypatch.setattr(worker, "Worker", Recorder)
    pool.WorkerActor({"output_root": "out", "weights": "w.h5", "run_id": "r"})
    assert seen == {"node": "node", "accelerators": assigned, "visible": visible}
