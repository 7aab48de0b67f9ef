"""The driver's cost at scale: the same small items on simulated clusters of 1, 2 and 4 GPU nodes.

    python -m tests.benchmarks.bench_cluster [--items 200 1000] [--nodes 1 2 4] [--size 16] [--steps 1]
                                             [--batch-items 16] [--chunk-seconds 5]

Each cluster is a `ray.cluster_utils.Cluster` on this machine: a head that takes no work and N
nodes declaring one GPU (Ray schedules one GPU worker on each; TensorFlow runs on the CPU). The
driver is `batch-nst run --address` in its own process, with `--batch-items` items a batch and
chunks sized by `--chunk-seconds` (batch 1 and chunk seconds near 0: every item a dispatch of its
own, the most scheduling per item the job can be asked to do). On this CPU a "1-step 16 px" item
still costs a worker ~0.8 s (its scoring at the 256 px reference dominates), ~10x a GPU's pace for
tiny sprites, so a chunk of one batch already takes ~13 s: `--chunk-seconds 60` sizes chunks as
the default 5 s does on a GPU.
Measured:
- items/min over the whole run (driver start to exit, worker start included) and in the steady
  state (first record to last);
- the driver's CPU time (user + system, from wait4) per item and its peak resident memory; with
  several `--items`, the CPU per item at the margin: the difference between two runs' CPU over
  the difference of their items, so the driver's start (imports, joining Ray) drops out; for the
  whole process and for its main thread alone (where planning, dispatch, gathering and writing
  run: Ray's own threads cost CPU per second of wall time, which a loaded machine stretches);
A per-item scheduling overhead (the gap between two items' ends less the second's seconds) was
measured before issue 21 and is dropped: items of a batch share their seconds, so it went negative,
and records carry no start time to measure a worker's idle time by.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import pyarrow.dataset as pads

from tests import ray_nodes, vgg_weights
from tests.benchmarks.bench_job import make_library


def bench(nodes: int, manifest: str, weights: str, size: int, steps: int, batch: int, chunk_seconds: float,
          tmp: str) -> dict[str, float]:
    root = os.path.join(tmp, f"out-{nodes}-{os.path.basename(os.path.dirname(manifest))}")
    with ray_nodes.cluster(*[{"num_gpus": 1}] * nodes) as made:
        cmd = [sys.executable, "-c", MAIN_THREAD, "run", manifest, "-o", root, "--weights", weights, "--quiet",
               "--address", made.address, "--workers", str(nodes), "--gpus-per-worker", "1", "--batch-items", str(batch),
               "--chunk-seconds", str(chunk_seconds), "--steps", str(steps), "--max-size", str(size)]
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=ray_nodes.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode()
        if proc.returncode != 0:
            raise SystemExit(f"run failed ({proc.returncode}):\n{err[-3000:]}")
    recs = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    ends = sorted(r["finished_at"].timestamp() for r in recs)
    return {"nodes": nodes, "items": len(recs), "wall": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "main_s": float(err.rsplit("MAIN_THREAD_CPU ", 1)[1].split()[0]), "per_min": 60 * len(recs) / wall,
            "steady_per_min": 60 * (len(recs) - 1) / (ends[-1] - ends[0]),
            "cpu_ms_per_item": 1000 * (usage.ru_utime + usage.ru_stime) / len(recs), "rss_mib": usage.ru_maxrss / 1024,
            "item_ms": 1000 * sum(r["seconds"] for r in recs) / len(recs)}


# The driver with its main thread's CPU printed at exit: planning, dispatch, gathering and writing
# happen there; Ray's own threads (gRPC, heartbeats) cost CPU per second of wall time, not per item.
MAIN_THREAD = ("import atexit, runpy, sys, time; atexit.register(lambda: print(f'MAIN_THREAD_CPU {time.thread_time()}', "
               "file=sys.stderr)); sys.argv[0] = 'batch-nst'; runpy.run_module('batch_nst', run_name='__main__')")


def _margin(run: dict, previous: dict | None, key: str) -> str:
    """CPU ms per item between two runs (their difference over the difference of their items)."""
    return f"{1000 * (run[key] - previous[key]) / (run['items'] - previous['items']):.2f}" if previous else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--batch-items", type=int, default=16)
    parser.add_argument("--chunk-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "vgg19_seeded_notop.h5")
        vgg_weights.write_legacy_h5(weights)
        manifests = {n: make_library(os.path.join(tmp, f"lib{n}"), n, args.size) for n in args.items}
        print("| GPU nodes | items | wall s | items/min | steady items/min | item in worker ms | "
              "driver CPU ms/item | at the margin | main thread at the margin | driver peak RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for nodes in args.nodes:
            previous = None
            for n in args.items:
                r = bench(nodes, manifests[n], weights, args.size, args.steps, args.batch_items, args.chunk_seconds, tmp)
                margin, main = (_margin(r, previous, key) for key in ("cpu_s", "main_s"))
                print(f"| {r['nodes']} | {r['items']} | {r['wall']:.1f} | {r['per_min']:.0f} | "
                      f"{r['steady_per_min']:.0f} | {r['item_ms']:.0f} | {r['cpu_ms_per_item']:.2f} | {margin} | "
                      f"{main} | {r['rss_mib']:.0f} |", flush=True)
                previous = r


if __name__ == "__main__":
    main()
