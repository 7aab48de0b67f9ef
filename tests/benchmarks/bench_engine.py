"""Seconds per optimization step: the seed's eager loop vs this engine (fp32, bf16),
and how close each comes to what this CPU's convolutions can do at all.

    python -m tests.benchmarks.bench_engine [--sizes 128 256] [--steps 10]

The eager reference is the seed as written in tutorials: the full no-top VGG19 called eagerly
under a GradientTape each step (its final pooling included), with Keras Adam. The engine is
batch_nst's Optimizer: the network cut at block5_conv2, one compiled step. Same seeded weights,
same images, same step count, measured in one process, after warm-up steps.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf
from keras.applications import vgg19

from batch_nst.engine import losses
from batch_nst.engine.losses import Targets
from batch_nst.engine.optimize import BETA_1, EPSILON, Optimizer
from batch_nst.params import StyleParams
from batch_nst.engine.vgg import LAYERS, Extractor
from batch_nst.weights import Weights
from tests import vgg_weights
from tests.benchmarks.flops import step_gflop
from tests.conftest import smooth_image

WARMUP = 3


def eager_reference(path: str, content: np.ndarray, targets: Targets, params: StyleParams, steps: int) -> float:
    """Seconds per step of the seed's eager loop on the full VGG19."""
    full = vgg19.VGG19(include_top=False, weights=path, input_shape=(None, None, 3))
    model = keras.Model(full.input, [full.get_layer(n).output for n in LAYERS] + [full.output])
    image = tf.Variable(content)
    adam = keras.optimizers.Adam(learning_rate=params.learning_rate, beta_1=BETA_1, epsilon=EPSILON)
    weights = params.loss_weights()

    def step():
        with tf.GradientTape() as tape:
            outs = model(vgg19.preprocess_input(image))
            feats = dict(zip(LAYERS, outs[:-1]))
            total = tf.reduce_sum(losses.loss_terms(feats, image, targets, weights)["total"])
        adam.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))

    return _time(step, steps)


def engine(optimizer: Optimizer, content, targets, params, steps: int, precision: str = "fp32") -> float:
    optimizer.run(content, targets, StyleParams(steps=WARMUP), precision=precision)  # trace + warm up
    started = time.perf_counter()
    optimizer.run(content, targets, params, precision=precision)
    return (time.perf_counter() - started) / steps


def conv_peak_gflops(precision: str, repeats: int = 10) -> float:
    """Sustained GFLOP/s of a large 3x3 convolution plus its input gradient in `precision`."""
    dtype = {"fp32": tf.float32, "bf16": tf.bfloat16}[precision]
    x = tf.cast(tf.random.normal((4, 128, 128, 256)), dtype)
    w = tf.cast(tf.random.normal((3, 3, 256, 256)), dtype)

    @tf.function
    def both():
        y = tf.nn.conv2d(x, w, 1, "SAME")
        return tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=y,
                                              strides=[1, 1, 1, 1], padding="SAME")

    seconds = _time(lambda: both().numpy(), repeats)
    return 2 * 2 * 4 * 128 * 128 * 256 * 256 * 9 / seconds / 1e9


def _time(step, steps: int) -> float:
    for _ in range(WARMUP):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(path)
    extractor = Extractor(Weights(path, "seeded", path))
    plain = Optimizer(extractor)
    params = StyleParams(steps=args.steps)
    peak = {p: conv_peak_gflops(p) for p in ("fp32", "bf16")}
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, {args.steps} timed steps after {WARMUP} warm-up; "
          f"convolution peak here: fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
    print("| size | GFLOP/step | eager reference (fp32) | engine fp32 | engine bf16 | fp32 speed-up | "
          "bf16 speed-up | fp32 share of peak | bf16 share of peak | best possible bf16 speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        content = smooth_image(size, size, 1)[None].astype(np.float32)
        style = smooth_image(size, size, 2)[None].astype(np.float32)
        targets = Targets(plain.content_features(content, params), plain.style_grams(style))
        bf16_targets = Targets(plain.content_features(content, params, "bf16"), plain.style_grams(style, "bf16"))
        ref = eager_reference(path, content, targets, params, args.steps)
        fast = engine(plain, content, targets, params, args.steps)
        half = engine(plain, content, bf16_targets, params, args.steps, "bf16")
        gflop = step_gflop(extractor.model(), size)
        print(f"| {size} px | {gflop:.1f} | {ref:.3f} s | {fast:.3f} s | {half:.3f} s | {ref / fast:.2f}x | "
              f"{ref / half:.2f}x | {gflop / fast / peak['fp32']:.0%} | "
              f"{gflop / half / peak['bf16']:.0%} | {ref / (gflop / peak['bf16']):.2f}x |", flush=True)

if __name__ == "__main__":
    main()
