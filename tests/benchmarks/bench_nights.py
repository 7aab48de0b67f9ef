"""Nights of a library: the plan's metadata files and time after many nightly runs, with compaction.

    python -m tests.benchmarks.bench_nights [--rows 100000] [--nights 30] [--changed 0.01] [--part-rows 100]

A library of `rows` real files (16 px PNGs in one folder). Each night `changed` of them are
rewritten (new fingerprints), the plan runs (`driver.plan`: manifest, listings, keys, done-set),
and the items it finds to do are "run": their records written through the run's own Writer in
chunks of 16, a part every `part-rows` records (100: the part size runs wrote before records per
chunk, the many-small-files worst case), their images touched; then, as a run does at its end,
compaction when due. No worker stylizes anything: this measures the metadata. Printed per
night: items to do, the metadata files the plan read, the plan's seconds and, inside them, the
done-set's (reading the metadata), and the compaction's seconds.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import tempfile
import time

from PIL import Image

from batch_nst.job import compact, driver, records
from batch_nst.job.pending import Chunk
from batch_nst.job.writer import Writer
from tests import vgg_weights
from tests.conftest import smooth_image


def make_library(folder: str, rows: int) -> str:
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    Image.fromarray(smooth_image(16, 16, 5000)).save(os.path.join(folder, "style.png"))
    for i in range(rows):
        _write_asset(folder, i, seed=i % 997)
    path = os.path.join(folder, "manifest.csv")
    with open(path, "w") as f:
        f.write("id,content,style\n" + "".join(f"a{i:07d},assets/a{i:07d}.png,style.png\n" for i in range(rows)))
    return path


def _write_asset(folder: str, i: int, seed: int) -> None:
    Image.fromarray(smooth_image(16, 16, seed)).save(os.path.join(folder, "assets", f"a{i:07d}.png"))


def night(config: driver.JobConfig, run_id: str, part_rows: int) -> dict[str, float]:
    started = time.perf_counter()
    plan = driver.plan(config)
    planned = time.perf_counter() - started
    started = time.perf_counter()
    records.current_ok(config.output_root)  # the done-set alone, as the plan read it
    done_set = time.perf_counter() - started
    files = len(records.live_files(config.output_root))
    writer = Writer(config.output_root, run_id, every=part_rows, seconds=3600)
    images = os.path.join(config.output_root, "images")
    os.makedirs(images, exist_ok=True)
    todo = iter(plan.todo)
    for chunk in iter(lambda: list(itertools.islice(todo, 16)), []):
        for item in chunk:
            open(os.path.join(images, f"{item.id}.png"), "wb").close()
        writer.add(Chunk(records.table(records.record(id=item.id, key=item.key, status="ok", run_id=run_id, steps=1,
                                                      finished_at=records.now()) for item in chunk)))
    writer.close()
    started = time.perf_counter()
    compacted = compact.compact_if_due(config.output_root)
    return {"todo": len(plan.todo), "files": files, "plan": planned, "done_set": done_set,
            "compact": time.perf_counter() - started if compacted else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--nights", type=int, default=30)
    parser.add_argument("--changed", type=float, default=0.01)
    parser.add_argument("--part-rows", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "vgg19_seeded_notop.h5")
        vgg_weights.write_legacy_h5(weights)
        manifest = make_library(os.path.join(tmp, "lib"), args.rows)
        config = driver.JobConfig(manifest=manifest, output_root=os.path.join(tmp, "out"), weights=weights)
        print("| night | to do | metadata files read | plan s | of which the done-set s | compaction s |")
        print("|---|---|---|---|---|---|")
        for n in range(1, args.nights + 1):
            if n > 1:
                for i in rng.sample(range(args.rows), int(args.rows * args.changed)):
                    _write_asset(os.path.join(tmp, "lib"), i, seed=1000 + n * 7 + i % 13)
            r = night(config, f"night{n:02d}", args.part_rows)
            print(f"| {n} | {r['todo']} | {r['files']} | {r['plan']:.2f} | {r['done_set']:.2f} | {r['compact']:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
