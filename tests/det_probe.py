"""Whether a batch's input gradient repeats itself bit for bit, call to call and process to process.

    python -m tests.det_probe BACKEND PRECISION... [--weights PATH] [--side 192] [--batch 2] [--calls 4]
                              [--layers L1,L2,...] [--threads N]

In this fresh process, for each PRECISION (`fp32`, `bf16`, or `auto`: what
`vgg.effective_precision` resolves it to here): batch_nst's own loss and its gradient
(`Optimizer.gradient`, default StyleParams, targets from two other seeded batches) with respect to
a seeded batch of `batch` images of `side` px, seeded weights, computed `calls` times; prints one
line `<precision> <sha256 of the gradient's bytes> <seconds>` per call. With `--layers` the loss is
the sum of those VGG19 layers' squares instead. (Issue 20's probe that made bf16 look
irreproducible across processes built the bf16 network inside the first trace, where Keras keeps
its random initial weights, different in every process; `Extractor.model` now refuses that.)

Run several at once: one hash in all of them is what README's "same bytes for the same input and
seed" needs (tests/test_determinism.py). 2 x 192 px is the smallest batch measured to show
TensorFlow's Grappler variation at fp32 (3 results in 8 calls; 2 x 128 and 4 x 64 px showed one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("precisions", nargs="+", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--weights", help="a legacy .h5 of seeded weights (default: written to a temporary file)")
    parser.add_argument("--side", type=int, default=192)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--layers", help="comma-separated layers whose squares are the loss (default: batch_nst's loss)")
    parser.add_argument("--threads", type=int, help="CPU threads, as a worker given that many cores sets them")
    args = parser.parse_args()
    from batch_nst.engine import backend

    backend.use(args.backend, threads=args.threads)
    with tempfile.TemporaryDirectory() as folder:
        path = args.weights
        if path is None:
            from tests import vgg_weights

            path = os.path.join(folder, "vgg19_seeded_notop.h5")
            vgg_weights.write_legacy_h5(path)
        from batch_nst.engine.vgg import Extractor
        from batch_nst.weights import Weights

        extractor = Extractor(Weights(path, "seeded:0", path))
        for precision in args.precisions:
            layers = tuple(args.layers.split(",")) if args.layers else None
            for line in hashes(extractor, precision, args.side, args.batch, args.calls, layers):
                print(line, flush=True)


def hashes(extractor, precision: str, side: int, batch: int, calls: int, layers: tuple[str, ...] | None = None):
    """One `<precision> <sha256> <seconds>` line per call, `precision` resolved."""
    import numpy as np
    from keras import ops

    from batch_nst.engine import autodiff, losses, optimize, vgg
    from batch_nst.params import StyleParams

    precision = vgg.effective_precision(precision)
    rng = np.random.default_rng(20)
    pixels = rng.uniform(0, 255, (batch, side, side, 3)).astype(np.float32)
    if layers is None:
        params, optimizer = StyleParams(precision=precision), optimize.Optimizer(extractor)
        content, style = (rng.uniform(0, 255, pixels.shape).astype(np.float32) for _ in range(2))
        targets = losses.Targets(optimizer.content_features(content, params, precision),
                                 optimizer.style_grams(style, precision, variant=vgg.Variant.of(params)))
        step = optimizer.gradient(pixels.shape, precision, params)
        args = (optimizer.variables(precision, vgg.Variant.of(params)), targets.tensors(), optimize.loss_weights(params))
        gradient = lambda x: step(x, *args)  # noqa: E731
    else:
        backend, model = autodiff.current(), extractor.model(precision)
        variables = backend.variables(model)

        def objective(x):
            features = vgg.features(model, variables, x)
            return sum(ops.sum(ops.square(ops.cast(features[name], "float32"))) for name in layers), ()

        gradient = backend.compile(backend.value_and_grad(objective), lambda: None)
    x = ops.convert_to_tensor(pixels)
    for _ in range(calls):
        start = time.perf_counter()
        _, grad = gradient(x)
        grad = np.ascontiguousarray(ops.convert_to_numpy(grad), dtype=np.float32)
        yield f"{precision} {hashlib.sha256(grad.tobytes()).hexdigest()} {time.perf_counter() - start:.3f}"


if __name__ == "__main__":
    sys.exit(main())
