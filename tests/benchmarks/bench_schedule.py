"""Full resolution and the optimizer: multiscale vs single-scale, L-BFGS vs Adam.

    python -m tests.benchmarks.bench_schedule [--sizes 512 1024] [--steps 300 150]

For each size: single-scale Adam runs `steps` steps; its last loss is the bar. Multiscale Adam
(coarse to fine from 128 px, each stage twice the last; `steps` at 128 px, half as many at each
larger size, up to `steps` at full size) and single-scale L-BFGS then run until their loss at full
size reaches that bar (or their budget ends). Every run starts from noise (`init=noise`): from the
content, the seeded network's loss at 512 px is lowest at the start (Adam's first steps raise the
TV and content terms and the style term hardly moves), so "reaching the bar" would mean nothing. Reported: optimization steps run
(and their cost in full-size steps, by pixel count) and seconds to reach the bar. Losses here are
those the optimization sees (the network in the run's precision) on the float image at full
size, measured the same way for every run; seeded weights, procedurally drawn images.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import stylize
from batch_nst.engine.vgg import Extractor
from batch_nst.weights import Weights
from tests import vgg_weights
from tests.conftest import smooth_image


class _Reached(Exception):
    """Raised from the progress callback to end a run once it reached the bar."""


def timed(optimizer, content, style, params, bar: float | None, final_from: int):
    """Run; return (steps run, seconds, last loss) up to the first full-size step at or under `bar`."""
    seen: list[tuple[int, float, float]] = []
    started = time.perf_counter()

    def on_step(progress):
        seen.append((progress.step, time.perf_counter() - started, progress.losses["total"]))
        if bar is not None and progress.step > final_from and progress.losses["total"] <= bar:
            raise _Reached

    try:
        stylize(content, style, params=params, extractor=optimizer, on_step=on_step)
        reached = bar is None
    except _Reached:
        reached = True
    step, seconds, loss = seen[-1]
    return step, seconds, loss, reached


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--steps", type=int, nargs="+", default=[300, 150])
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "vgg19_seeded.h5")
    vgg_weights.write_legacy_h5(path)
    optimizer = Optimizer(Extractor(Weights(path, "seeded:0", path)))
    print("| size | run | steps run | cost in full-size steps | seconds | loss | vs single-scale time |")
    print("|---|---|---|---|---|---|---|")
    for size, steps in zip(args.sizes, args.steps):
        content, style = smooth_image(size, size, 1), smooth_image(size, size, 2)
        base = StyleParams(max_size=size, steps=steps, init="noise")
        stylize(content, style, params=base.with_overrides({"steps": 2}), extractor=optimizer)  # warm up
        step, single_s, bar, _ = timed(optimizer, content, style, base, None, 0)
        print(f"| {size} px | single-scale Adam | {step} | {step} | {single_s:.1f} | {bar:.5g} | 1.00x |", flush=True)
        stages = size.bit_length() - 128 .bit_length() + 1  # 128 px first, doubling up to `size`
        plan = [max(1, steps >> k) for k in range(stages - 1)] + [steps]  # halving up to the last stage
        multi = base.with_overrides({"schedule": "multiscale", "stage_steps": ";".join(map(str, plan))})
        stylize(content, style, params=multi.with_overrides({"stage_steps": ";".join(["1"] * stages)}),
                extractor=optimizer)  # warm up every stage's shape
        coarse = sum(plan[:-1])
        step, seconds, loss, reached = timed(optimizer, content, style, multi, bar, coarse)
        cost = sum(n / 4 ** (stages - 1 - k) for k, n in enumerate(plan[:-1])) + (step - coarse)
        print(f"| {size} px | multiscale Adam (stages {';'.join(map(str, plan[:-1]))};...) | {step} | "
              f"{cost:.0f} | {seconds:.1f} | {loss:.5g}{'' if reached else ' (bar not reached)'} | "
              f"{seconds / single_s:.2f}x |", flush=True)
        lbfgs = base.with_overrides({"optimizer": "lbfgs"})
        stylize(content, style, params=lbfgs.with_overrides({"steps": 2}), extractor=optimizer)
        step, seconds, loss, reached = timed(optimizer, content, style, lbfgs, bar, 0)
        print(f"| {size} px | single-scale L-BFGS (fp32) | {step} | {step} | {seconds:.1f} | "
              f"{loss:.5g}{'' if reached else ' (bar not reached)'} | {seconds / single_s:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
