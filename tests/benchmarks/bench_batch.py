"""Many sprites per step, and what bf16 costs in quality.

    python -m tests.benchmarks.bench_batch [--batches 1 4 16 32] [--size 64] [--quality-size 128]

1. 64 px sprites: seconds per item-step and items per minute (at 200 steps an item) when B items
   share each step, for B in --batches, in the precision `auto` picks here and in fp32.
2. bf16 vs fp32 after the same 200 steps at 128 px, for three content/style pairs: the final
   loss recomputed in fp32 on the image as written (what records hold), the relative
   difference, and at which step the fp32 run had already reached bf16's final loss (so how much
   sooner, in seconds, bf16 gets to the same quality).
3. Why: how far bf16's pixel gradient is from fp32's, per loss term, at the image of an fp32 run
   after 100 steps (128 px, pair (1, 2)).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from batch_nst.engine import losses
from batch_nst.engine.losses import Targets
from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import stylize
from batch_nst.engine.vgg import Extractor, effective_precision
from batch_nst.weights import Weights
from tests import vgg_weights
from tests.conftest import smooth_image

STEPS_PER_ITEM = 200
PAIRS = ((1, 2), (3, 4), (5, 6))  # smooth_image seeds of content and style


def item_step_seconds(optimizer: Optimizer, batch: int, size: int, precision: str, steps: int) -> float:
    content = np.concatenate([smooth_image(size, size, i)[None] for i in range(batch)]).astype(np.float32)
    style = smooth_image(size, size, 999)[None].astype(np.float32)
    grams = {k: np.repeat(v.numpy(), batch, axis=0) for k, v in optimizer.style_grams(style, precision).items()}
    targets = Targets(optimizer.content_features(content, StyleParams(), precision), grams)
    optimizer.run(content, targets, StyleParams(steps=3), precision=precision)  # trace + warm up
    started = time.perf_counter()
    optimizer.run(content, targets, StyleParams(steps=steps), precision=precision)
    return (time.perf_counter() - started) / steps / batch


def gradient_error(optimizer: Optimizer, size: int) -> None:
    """Print bf16's gradient error against fp32's, per weighted loss term, mid-optimization."""
    params = StyleParams(steps=100)
    content, style = (smooth_image(size, size, seed)[None].astype(np.float32) for seed in (1, 2))
    targets = Targets(optimizer.content_features(content, params), optimizer.style_grams(style))
    pixels, _ = optimizer.run(content, targets, params)
    image = tf.constant(pixels)
    weights = {"style": params.style_weight, "content": params.content_weight, "tv": params.tv_weight}
    grads = {}
    for precision in ("fp32", "bf16"):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(image)
            terms = losses.loss_terms(optimizer.extractor(image, precision), image, targets, dict.fromkeys(weights, 1.0))
            weighted = {k: w * tf.reduce_sum(terms[k]) for k, w in weights.items()}
            weighted["total"] = tf.add_n(list(weighted.values()))
        grads[precision] = {k: tape.gradient(v, image).numpy().ravel() for k, v in weighted.items()}
    print(f"\nbf16's pixel gradient vs fp32's at an fp32 run's image after 100 steps ({size} px):")
    print("| term | relative error | cosine | pixels whose sign flips |\n|---|---|---|---|")
    for term in ("total", "style", "content"):
        exact, half = grads["fp32"][term], grads["bf16"][term]
        cosine = exact @ half / np.linalg.norm(exact) / np.linalg.norm(half)
        print(f"| {term} | {np.linalg.norm(half - exact) / np.linalg.norm(exact):.0%} | {cosine:.3f} | "
              f"{np.mean(np.sign(half) != np.sign(exact)):.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 32])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--quality-size", type=int, default=128)
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(path)
    optimizer = Optimizer(Extractor(Weights(path, "seeded", path)))
    auto = effective_precision("auto")
    print(f"{os.cpu_count()} CPUs; auto precision here: {auto}; {args.size} px sprites, {args.steps} timed steps")
    for precision in dict.fromkeys([auto, "fp32"]):
        print(f"\n{precision}:\n| batch | ms per item-step | items/min at {STEPS_PER_ITEM} steps | vs batch 1 |\n|---|---|---|---|")
        base = None
        for batch in args.batches:
            seconds = item_step_seconds(optimizer, batch, args.size, precision, args.steps)
            rate = 60 / (seconds * STEPS_PER_ITEM)
            base = base or rate
            print(f"| {batch} | {1000 * seconds:.1f} | {rate:.1f} | {rate / base:.2f}x |", flush=True)
    size = args.quality_size
    print(f"\n{STEPS_PER_ITEM} steps at {size} px, final loss recomputed in fp32 on the image as written:")
    print("| pair | fp32 final | bf16 final | bf16 vs fp32 | fp32 steps to reach bf16's final | "
          "fp32 s to there | bf16 s | bf16 time to that loss |\n|---|---|---|---|---|---|---|---|")
    for pair in PAIRS:
        content, style = smooth_image(size, size, pair[0]), smooth_image(size, size, pair[1])
        runs = {precision: stylize(content, style, params=StyleParams(steps=STEPS_PER_ITEM, precision=precision),
                                   extractor=optimizer) for precision in ("fp32", "bf16")}
        fp32, bf16 = runs["fp32"], runs["bf16"]
        # history[i] is the loss after i steps; the final loss is after all of them
        reach = next(i for i, loss in enumerate((*fp32.history, fp32.losses.total)) if loss <= bf16.losses.total)
        fp32_seconds = fp32.optimize_seconds * reach / STEPS_PER_ITEM
        print(f"| {pair} | {fp32.losses.total:.6g} | {bf16.losses.total:.6g} | "
              f"{100 * (bf16.losses.total / fp32.losses.total - 1):+.2f}% | {reach} | {fp32_seconds:.1f} | "
              f"{bf16.optimize_seconds:.1f} | {bf16.optimize_seconds / fp32_seconds:.2f}x |", flush=True)
    gradient_error(optimizer, size)


if __name__ == "__main__":
    main()
