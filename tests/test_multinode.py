"""The job on multi-node Ray clusters on this machine: nodes declaring GPUs (Ray schedules GPU
workers on them; TensorFlow runs on the CPU), a node lost mid-run, and scale from zero.

The driver is `batch-nst run` in its own process joining the cluster with --address, as on a
real cluster. Clusters are started and stopped by these tests alone (tests/ray_nodes.py).
"""

import json
import os
import subprocess
import sys
import time

import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests import ray_nodes
from tests.conftest import smooth_image

pytestmark = pytest.mark.cluster


def _library(path, n, size=32):
    Image.fromarray(smooth_image(size, size, 100)).save(path / "style.png")
    lines = ["id,content,style"]
    for i in range(n):
        Image.fromarray(smooth_image(size, size, i)).save(path / f"c{i}.png")
        lines.append(f"c{i},c{i}.png,style.png")
    (path / "m.csv").write_text("\n".join(lines) + "\n")
    return str(path / "m.csv")


def _driver(manifest, root, weights, address, *extra, steps=2):
    """`batch-nst run` joining the cluster at `address`, as its own process."""
    cmd = [sys.executable, "-m", "batch_nst", "run", manifest, "-o", str(root), "--weights", weights,
           "--address", address, "--steps", str(steps), "--max-size", "32", "--batch-items", "1", "--quiet", *extra]
    return subprocess.Popen(cmd, cwd=ray_nodes.ROOT, env=ray_nodes.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _records(root):
    return pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()


def _summary(root):
    (name,) = [n for n in os.listdir(os.path.join(root, "runs")) if not n.startswith("_")]
    with open(os.path.join(root, "runs", name)) as f:
        return json.load(f)


def _every_item_ok_once(root, n):
    """Each item: one record, ok, its image; nothing pending, partial or temporary left."""
    recs = _records(root)
    assert sorted(r["id"] for r in recs) == sorted(f"c{i}" for i in range(n))
    assert {r["status"] for r in recs} == {"ok"}
    assert sorted(os.listdir(os.path.join(root, "images"))) == sorted(f"c{i}.png" for i in range(n))
    leftovers = [os.path.join(d, f) for d, _, files in os.walk(os.path.join(root, "metadata", "_pending"))
                 for f in files]
    assert not leftovers and not os.path.exists(os.path.join(root, "checkpoints"))
    return recs


@pytest.fixture(scope="module")
def gpu_cluster():
    """A head that takes no work and three nodes with one (declared) GPU each."""
    with ray_nodes.cluster({"num_gpus": 1}, {"num_gpus": 1}, {"num_gpus": 1}) as made:
        yield made


def test_workers_spread_over_gpu_nodes(gpu_cluster, tmp_path, legacy_weights_path):
    root = tmp_path / "out"
    driver = _driver(_library(tmp_path, 4), root, legacy_weights_path, gpu_cluster.address, "--workers", "2")
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    recs = _every_item_ok_once(root, 4)
    assert len({r["node"] for r in recs}) >= 2  # one GPU per node: two GPU workers, two nodes
    assert all(r["accelerators"] == ["0"] for r in recs)  # the GPU id Ray gave each worker
    pool = _summary(root)["pool"]
    assert (pool["requested"], pool["started"], pool["resources"]) == (2, 2, {"CPU": 1.0, "GPU": 1.0})
    assert {w["node"] for w in pool["workers"]} == {r["node"] for r in recs}


def test_a_node_lost_mid_run_loses_nothing_and_doubles_nothing(gpu_cluster, tmp_path, legacy_weights_path):
    """The whole node of a busy worker is removed: its chunk is redone (by the other worker, or
    by the worker Ray brings back on the spare node), and every item ends ok exactly once."""
    root = tmp_path / "out"
    driver = _driver(_library(tmp_path, 6), root, legacy_weights_path, gpu_cluster.address, "--workers", "2",
                     steps=20)
    node_id = _a_busy_node(root, driver, time.monotonic() + 240)
    (lost,) = [n for n in gpu_cluster.worker_nodes if n.node_id == node_id]
    gpu_cluster.remove_node(lost, allow_graceful=False)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    recs = _every_item_ok_once(root, 6)
    assert {r["node"] for r in recs} - {node_id}  # the rest was done on the other nodes
    assert _summary(root)["pool"]["requested"] == 2


def _a_busy_node(root, driver, deadline: float) -> str:
    """The node of the first item to finish: from its pending record, or from the part the driver
    gathered it into (a pending record can go between listing it and reading it)."""
    metadata = root / "metadata"
    while driver.poll() is None and time.monotonic() < deadline:
        for path in [*(metadata / "_pending").rglob("*.parquet"), *metadata.glob("part-*.parquet")]:
            try:
                return pq.read_table(path, columns=["node"])["node"][0].as_py()
            except OSError:  # gathered and deleted meanwhile
                continue
        time.sleep(0.1)
    raise AssertionError("no item finished while the driver ran")


def test_scale_from_zero_with_the_fake_autoscaler(tmp_path, legacy_weights_path):
    """A head with no CPUs and a GPU node type at zero nodes: the pending GPU workers make the
    autoscaler start nodes, and every item ends ok on a GPU worker."""
    port = ray_nodes.free_port()
    address = ray_nodes.gcs_address(port)
    config = ray_nodes.fake_autoscaling_config(
        str(tmp_path / "autoscaler.json"), address,
        {"gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "max_workers": 1}})
    with ray_nodes.head("--num-cpus=0", "--include-dashboard=false", f"--autoscaling-config={config}", port=port,
                        extra_env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}):
        root = tmp_path / "out"
        driver = _driver(_library(tmp_path, 3), root, legacy_weights_path, address, "--workers", "1",
                         "--gpus-per-worker", "1", "--wait-timeout", "240")
        out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    recs = _every_item_ok_once(root, 3)
    assert all(r["accelerators"] == ["0"] for r in recs)  # on the GPU node the autoscaler started
    assert _summary(root)["pool"]["started"] == 1


def test_ray_job_submit_runs_the_nightly_job_on_the_head_it_was_sent_to(tmp_path, legacy_weights_path):
    """jobs/submit-nightly.sh against a head whose dashboard listens on 127.0.0.1: `ray job
    submit` (ray[default]) connects, and `batch-nst run` joins that head instead of starting a
    Ray of its own; the script exits with the job's own exit code."""
    from ray.job_submission import JobSubmissionClient

    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(16, 16, i)).save(lib / f"c{i}.png")
    Image.fromarray(smooth_image(16, 16, 9)).save(tmp_path / "style.png")
    port, agent = ray_nodes.free_port(), ray_nodes.free_port()
    dashboard = f"http://127.0.0.1:{port}"
    with ray_nodes.head("--num-cpus=1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={port}", f"--dashboard-agent-listen-port={agent}") as address:
        ray_nodes.wait_for_http(f"{dashboard}/api/version", 120)
        # Submissions go through the head node's agent, which the dashboard waits for 10 s only.
        ray_nodes.wait_for_port(address.rsplit(":", 1)[0], agent, 120)
        env = ray_nodes.env(RAY_ADDRESS=dashboard, LIBRARY=str(lib / "*.png"), STYLES=str(tmp_path / "style.png"),
                            OUTPUT_ROOT=str(tmp_path / "out"), BATCH_NST_WEIGHTS=legacy_weights_path)
        submit = subprocess.run(["bash", "jobs/submit-nightly.sh", "--workers", "1", "--gpus-per-worker", "0",
                                 "--steps", "1", "--max-size", "16", "--quiet"], cwd=ray_nodes.ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert submit.returncode == 0, submit.stdout[-3000:] + submit.stderr[-3000:]
        (job,) = JobSubmissionClient(dashboard).list_jobs()
    recs = _records(tmp_path / "out")
    assert sorted(r["status"] for r in recs) == ["ok", "ok"]
    assert {r["node"] for r in recs} == {job.driver_node_id}  # the head's node: no Ray of its own
