"""An unchanged library's nightly rerun: every row already ok, from process start to exit.

    python -m tests.benchmarks.bench_rerun [--rows 1000000 10000000]

A plain manifest (id, content, style: planned in columns, batch_nst/job/columns.py) of `rows`
rows over 1,000 real 16 px files and two styles; its records written as a compacted root holds
them (200,000 a file), an empty image per id (hard links: no inode each). Then `batch-nst run` in its own process, timed
from start to exit (wall, and CPU from wait4) with its peak resident memory: it plans, finds
nothing to do, starts no Ray, writes its summary. Run twice: the second with the page cache warm.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time

import pyarrow as pa

from batch_nst.job import driver, records
from batch_nst.job.manifest import WorkItem
from tests import vgg_weights
from tests.benchmarks.bench_memory import write_assets


def make_root(folder: str, rows: int, weights: str) -> str:
    """The manifest, and a root where every row is done; returns the manifest's path. Records are
    written as they come from the plan's stream, a file of 200,000 at a time; the images are hard
    links to 1,000 empty files (10 M images take no inode each)."""
    write_assets(folder)
    manifest = os.path.join(folder, "manifest.csv")
    with open(manifest, "w") as f:
        for start in range(0, rows, 100_000):
            f.write("" if start else "id,content,style\n")
            f.write("".join(f"r{i:08d},assets/a{i % 1000:04d}.png,style{i % 2}.png\n"
                            for i in range(start, min(rows, start + 100_000))))
    root = os.path.join(folder, "out")
    blanks, images = os.path.join(folder, "blanks"), os.path.join(root, "images")
    os.makedirs(blanks)
    os.makedirs(images)
    for n in range(1000):
        open(os.path.join(blanks, f"{n}.png"), "wb").close()
    todo = iter(driver.plan(driver.JobConfig(manifest=manifest, output_root=root, weights=weights)).todo)
    for n, chunk in enumerate(iter(lambda: list(itertools.islice(todo, 200_000)), [])):
        records.write_part(root, f"compacted-seed-{n:05d}", _ok(chunk))
        for i, item in enumerate(chunk):
            os.link(os.path.join(blanks, f"{i % 1000}.png"), os.path.join(images, f"{item.id}.png"))
    return manifest


def _ok(items: list[WorkItem]) -> pa.Table:
    """An `ok` record of each item, with its key, as a table of records.SCHEMA."""
    n, now = len(items), records.now()
    values = {"id": [i.id for i in items], "key": [i.key for i in items], "status": ["ok"] * n,
              "run_id": ["seed"] * n, "finished_at": [now] * n}
    return pa.table({f.name: pa.array(values[f.name], f.type) if f.name in values else pa.nulls(n, f.type)
                     for f in records.SCHEMA}, schema=records.SCHEMA)


def timed_rerun(manifest: str, weights: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one `batch-nst run` that finds everything done."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "batch_nst", "run", manifest, "-o",
                             os.path.join(os.path.dirname(manifest), "out"), "--weights", weights, "--quiet", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(proc.stderr.read().decode()[-3000:])
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "vgg19_seeded_notop.h5")
        vgg_weights.write_legacy_h5(weights)
        print("| rows | wall s (cold, warm) | CPU s (cold, warm) | peak RSS MiB |")
        print("|---|---|---|---|")
        for rows in args.rows:
            manifest = make_root(os.path.join(tmp, f"lib{rows}"), rows, weights)
            (wall1, cpu1, _), (wall2, cpu2, rss) = timed_rerun(manifest, weights), timed_rerun(manifest, weights)
            print(f"| {rows} | {wall1:.1f}, {wall2:.1f} | {cpu1:.1f}, {cpu2:.1f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
