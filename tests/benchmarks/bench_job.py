"""The batch job end to end: items per minute at 1 and 2 workers, overhead, and an unchanged rerun.

    python -m tests.benchmarks.bench_job [--items 40] [--size 64] [--steps 200] [--workers 1 2]
        [--run-options "--batch-items 1 --precision fp32"] [--rows 1000]

Each measurement is a fresh `batch-nst run` process (Ray start included), as a nightly job runs.
Overhead = share of wall time not spent inside optimization steps (Ray start, actor start and
weights loading, scheduling, I/O, encoding, final evaluation): 1 - sum(optimize_seconds) /
(workers x wall). The rerun: a 1,000-row manifest whose items all have `ok` records, timed from
process start to exit (what a nightly run over an unchanged library costs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import pyarrow.dataset as pads
from PIL import Image

from batch_nst.job import driver, records
from tests import vgg_weights
from tests.conftest import smooth_image


def make_library(folder: str, items: int, size: int) -> str:
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    for i in range(2):
        Image.fromarray(smooth_image(size, size, 1000 + i)).save(os.path.join(folder, f"style{i}.png"))
    lines = ["id,content,style"]
    for i in range(items):
        Image.fromarray(smooth_image(size, size, i)).save(os.path.join(folder, "assets", f"a{i:04d}.png"))
        lines.append(f"a{i:04d},assets/a{i:04d}.png,style{i % 2}.png")
    path = os.path.join(folder, "manifest.csv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def timed_run(manifest: str, root: str, weights: str, *options: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "batch_nst", "run", manifest, "-o", root, "--weights", weights,
                           "--quiet", *options], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return wall


def bench_workers(manifest: str, weights: str, steps: int, size: int, workers: int, tmp: str, options: list[str]) -> None:
    root = os.path.join(tmp, f"out-{workers}")
    wall = timed_run(manifest, root, weights, "--steps", str(steps), "--max-size", str(size), "--workers", str(workers),
                     *options)
    table = pads.dataset(os.path.join(root, "metadata")).to_table()
    n = table.num_rows
    optimizing = sum(table["optimize_seconds"].to_pylist())
    overhead = 1 - optimizing / (workers * wall)
    steps = sum(table["steps"].to_pylist()) / n
    loss = sum(table["total_loss"].to_pylist()) / n
    print(f"| {workers} | {n} | {wall:.1f} | {60 * n / wall:.1f} | {optimizing / n:.2f} | {100 * overhead:.1f}% "
          f"| {steps:.0f} | {loss:.6g} |", flush=True)


def bench_unchanged_rerun(folder: str, weights: str, rows: int) -> None:
    """A 1,000-row manifest over the same assets (several styles and params), all already ok."""
    lines = ["id,content,style,steps"]
    for i in range(rows):
        lines.append(f"r{i:05d},assets/a{i % 40:04d}.png,style{i % 2}.png,{1 + i % 7}")
    manifest = os.path.join(folder, "manifest-1000.csv")
    with open(manifest, "w") as f:
        f.write("\n".join(lines) + "\n")
    root = os.path.join(folder, "out-1000")
    config = driver.JobConfig(manifest=manifest, output_root=root, weights=weights)
    planned = driver.plan(config)
    fake = [records.for_item(item, run_id="seed", worker="bench", weights=planned.weights_identity, status=records.OK)
            for item in planned.todo]
    for start in range(0, len(fake), 100):
        records.write_part(root, f"part-seed-{start // 100:05d}", fake[start:start + 100])
    wall = timed_run(manifest, root, weights)
    print(f"unchanged rerun of a {rows}-row manifest (all ok, nothing to do), process start to exit: {wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--run-options", default="", help="extra `batch-nst run` options, e.g. '--batch-items 1'")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-job-")
    weights = os.path.join(tmp, "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(weights)
    manifest = make_library(tmp, args.items, args.size)
    print(f"{args.items} items of {args.size} px, {args.steps} steps, {os.cpu_count()} CPUs, "
          f"options: {args.run_options or '(defaults)'}")
    print("| workers | items | wall s | items/min | optimize s/item (batch share) | overhead | mean steps | mean final loss |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in args.workers:
        bench_workers(manifest, weights, args.steps, args.size, workers, tmp, args.run_options.split())
    if args.rows:
        bench_unchanged_rerun(tmp, weights, args.rows)


if __name__ == "__main__":
    main()
