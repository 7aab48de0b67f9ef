"""Ray clusters on this machine for the cluster tests, started and stopped by the tests alone.

Rules (other Ray users share this machine): every node uses Ray's default local node address;
nothing here runs `ray stop` (it ends every Ray process on the machine), and no cluster is
recorded in /tmp/ray/ray_current_cluster, where a plain `ray.init()` elsewhere would join it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)  # the `ray` and `python` of this environment


def env(**extra: str) -> dict[str, str]:
    """This process's environment with the project importable and this environment's tools
    first on PATH: what drivers, heads and the workers they start need. Token auth off for all
    of them: a `ray.init` earlier in this process (the test session's Ray) set RAY_AUTH_MODE=token
    here when ~/.ray/auth_token exists, and a driver with it cannot use workers of a head without."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "PATH": BIN + os.pathsep + os.environ["PATH"],
            "TF_CPP_MIN_LOG_LEVEL": "2", "RAY_AUTH_MODE": "disabled", **extra}


@contextlib.contextmanager
def cluster(*nodes: dict) -> Iterator:
    """A `ray.cluster_utils.Cluster` in this process: a head with no CPUs (it takes no work, like
    the shipped cluster.yaml's) and one node per entry of `nodes` (e.g. {"num_gpus": 1})."""
    from ray.cluster_utils import Cluster

    with mock.patch.dict(os.environ, env()), mock.patch("ray._private.utils.write_ray_address"):
        made = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        try:
            for node in nodes:
                made.add_node(**{"num_cpus": 1, **node})
            made.wait_for_nodes()
            yield made
        finally:
            made.shutdown()


def gcs_address(port: int) -> str:
    """A head's address on Ray's default local node address (never mixed with 127.0.0.1)."""
    import ray._private.services

    return f"{ray._private.services.get_node_ip_address()}:{port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def head(*args: str, port: int | None = None, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """`ray start --head --block` in a temporary dir of its own; yields its GCS address. Stopped by
    ending that process (it ends what it started) and then any process still naming the dir
    (nodes a fake autoscaler started live in another process)."""
    temp_dir = tempfile.mkdtemp(prefix="bnst-ray-", dir="/tmp")  # short: Unix socket paths are limited
    port = port or free_port()
    log = open(os.path.join(temp_dir, "head.log"), "wb")
    cmd = [os.path.join(BIN, "ray"), "start", "--head", "--block", f"--port={port}", f"--temp-dir={temp_dir}",
           "--disable-usage-stats", *args]
    # Ray 2.60's `ray start` turns token auth on when ~/.ray/auth_token exists (any local
    # `ray.init()` writes one), while a driver given an explicit address never does: env() opts out.
    proc = subprocess.Popen(cmd, env=env(**(extra_env or {})), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = gcs_address(port)
    try:
        _wait_for(lambda: os.path.exists(os.path.join(temp_dir, "ray_current_cluster")) or proc.poll() is not None,
                  120, f"the head did not start: see {log.name}")
        assert proc.poll() is None, open(log.name).read()
        yield address
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)
        _kill_naming(temp_dir)
        log.close()
        shutil.rmtree(temp_dir, ignore_errors=True)


def fake_autoscaling_config(path: str, gcs_address: str, worker_types: dict) -> str:
    """A `fake_multinode` autoscaler config (Ray's example is not in the wheel): a head that takes
    no work and the given worker node types, each starting at zero unless told otherwise."""
    config = {
        "cluster_name": "batch-nst-fake", "max_workers": sum(t["max_workers"] for t in worker_types.values()),
        "provider": {"type": "fake_multinode", "gcs_address": gcs_address, "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True},
        "available_node_types": {"ray.head.default": {"resources": {"CPU": 0}, "node_config": {}, "max_workers": 0},
                                 **{name: {"node_config": {}, "min_workers": 0, **t} for name, t in worker_types.items()}},
        "head_node_type": "ray.head.default", "auth": {}, "upscaling_speed": 1.0, "idle_timeout_minutes": 5,
        "docker": {}, "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": [],
    }
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def _kill_naming(text: str) -> None:
    """SIGKILL the processes whose command line names `text` (our temp dir): ours alone."""
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if int(pid) != me and text.encode() in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def wait_for_http(url: str, seconds: float) -> None:
    """Until `url` answers (a dashboard starts after its node)."""
    import urllib.request

    def up() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return True
        except OSError:
            return False

    _wait_for(up, seconds, f"{url} did not answer")


def wait_for_port(host: str, port: int, seconds: float) -> None:
    """Until something listens on host:port."""

    def up() -> bool:
        try:
            socket.create_connection((host, port), timeout=5).close()
            return True
        except OSError:
            return False

    _wait_for(up, seconds, f"nothing listens on {host}:{port}")


def _wait_for(condition, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(message)
        time.sleep(0.2)
