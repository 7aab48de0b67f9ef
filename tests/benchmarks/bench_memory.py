"""Peak memory: the driver planning N-row manifests, and one worker at 256/512/1024 px.

    python -m tests.benchmarks.bench_memory [--rows 1000000 10000000] [--sizes 256 512 1024] [--plain]

Each measurement runs in a fresh process and reports its peak resident set (ru_maxrss, from
wait4 for the driver). The
manifest's rows reference 1,000 real files (distinct ids, two styles, varied steps), so planning
does its real work: validation, one listing per folder, keys, the done-set, the sort.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from PIL import Image

from tests import vgg_weights
from tests.conftest import smooth_image

WORKER_SCRIPT = """
import os, resource, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import stylize
from batch_nst.engine.vgg import Extractor
from batch_nst.weights import Weights
from tests.conftest import smooth_image
size, path = int(sys.argv[1]), sys.argv[2]
optimizer = Optimizer(Extractor(Weights(path, "seeded", path)))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
stylize(smooth_image(size, size, 1), smooth_image(size, size, 2), extractor=optimizer,
        params=StyleParams(steps=3, max_size=size))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak)
"""


def write_assets(folder: str) -> None:
    """1,000 content files assets/a0000.png ... and two styles, style0.png and style1.png."""
    os.makedirs(os.path.join(folder, "assets"), exist_ok=True)
    for i in range(1000):
        Image.fromarray(smooth_image(16, 16, i)).save(os.path.join(folder, "assets", f"a{i:04d}.png"))
    for s in range(2):
        Image.fromarray(smooth_image(16, 16, 5000 + s)).save(os.path.join(folder, f"style{s}.png"))


def driver_peak(rows: int, folder: str, weights: str, plain: bool) -> tuple[float, float, str]:
    """(peak RSS MiB, wall s, its output) of `batch-nst plan` in a fresh process, on a fresh root
    (every row to do); `plain`: without the per-row `steps` (planned in columns, streamed)."""
    write_assets(folder)
    manifest = os.path.join(folder, "manifest.csv")
    with open(manifest, "w") as f:
        f.write("id,content,style" + ("" if plain else ",steps") + "\n")
        for start in range(0, rows, 100_000):
            f.write("".join(f"r{i:08d},assets/a{i % 1000:04d}.png,style{i % 2}.png" + ("" if plain else f",{100 + i % 5}")
                            + "\n" for i in range(start, min(rows, start + 100_000))))
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "batch_nst", "plan", manifest, "-o", os.path.join(folder, "out"),
                             "--weights", weights], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(proc.stderr.read()[-2000:])
    os.remove(manifest)
    return usage.ru_maxrss / 1024, wall, proc.stdout.read().strip()


def worker_peak(size: int, weights: str) -> tuple[float, float]:
    proc = subprocess.run([sys.executable, "-c", WORKER_SCRIPT, str(size), weights], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    base, peak = map(int, proc.stdout.split()[-2:])
    return base / 1024, peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512, 1024], help="none: the driver alone")
    parser.add_argument("--plain", action="store_true", help="no per-row option: the manifest is planned in columns")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-memory-")
    weights = os.path.join(folder, "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(weights)
    print("| rows | `batch-nst plan` peak RSS | wall s | its output |")
    print("|---|---|---|---|")
    for rows in args.rows:
        peak, wall, output = driver_peak(rows, os.path.join(folder, f"lib{rows}"), weights, args.plain)
        print(f"| {rows} | {peak:.0f} MiB | {wall:.1f} | {output} |", flush=True)
    if args.sizes:
        print("| size | worker RSS with the network loaded | peak RSS stylizing | growth | growth per megapixel |")
        print("|---|---|---|---|---|")
    for size in args.sizes:
        base, peak = worker_peak(size, weights)
        grow = peak - base
        print(f"| {size} px | {base:.0f} MiB | {peak:.0f} MiB | {grow:.0f} MiB | {grow / (size * size / 1e6):.0f} MiB |",
              flush=True)


if __name__ == "__main__":
    main()
