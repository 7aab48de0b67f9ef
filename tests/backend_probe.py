"""What the parity tests compare across backends, computed in a process of one backend.

    python -m tests.backend_probe BACKEND WEIGHTS OUT.npz [--threads N] [--resume CHECKPOINT|-]

Keras fixes its backend at import, so tests/test_backends.py runs this once per backend, all
backends at once, and compares the files: every loss term and its pixel gradient (plain, tileable, masked), a 10-step
stylize of one pair, L-BFGS, a batch of
two sprite sheets under the multiscale schedule, and a run resumed from a checkpoint (written here, or another backend's).
"""

from __future__ import annotations

import argparse
import sys

CASES = ("plain", "tileable", "masked")
SIZE, STEPS, CHECKPOINT_AT = 32, 10, 5


def probe_image():
    """A perturbed content with a flat patch: |x| is differentiated at 0 there (where JAX's own
    abs would give +1 and TF and PyTorch 0)."""
    import numpy as np

    from tests.conftest import smooth_image

    noise = np.random.default_rng(5).uniform(-20, 20, (1, SIZE, SIZE, 3))
    image = np.clip(smooth_image(SIZE, SIZE, 1)[None] + noise, 0, 255).astype(np.float32)
    image[:, :8, :8] = 128.0
    return image


def sprite_mask():
    import numpy as np

    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return ((((y - 16) ** 2 + (x - 14) ** 2) < 100) * 1.0)[None, ..., None].astype(np.float32)


def read_checkpoint(source: str) -> bytes:
    """A checkpoint file's bytes, or stdin's for "-": the parity tests start this probe beside
    TensorFlow's and send TensorFlow's checkpoint when that probe is done, so the resume comes last."""
    if source == "-":
        return sys.stdin.buffer.read()
    with open(source, "rb") as f:
        return f.read()


def probe_parser() -> argparse.ArgumentParser:
    """What every probe is given: its backend, the weights, the file it writes, its share of the cores."""
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, help="CPU threads: this probe's share of the cores")
    return parser


def main() -> None:
    parser = probe_parser()
    parser.add_argument("--resume", help="a checkpoint (npz) to continue the 10-step run from; - reads it from stdin")
    args = parser.parse_args()
    from batch_nst.engine import backend

    backend.use(args.backend, threads=args.threads)
    import numpy as np
    from keras import ops

    from batch_nst.engine import distance, losses
    from batch_nst.engine.checkpoint import State
    from batch_nst.engine.optimize import Optimizer
    from batch_nst.params import SEED, WEIGHTED_TERMS, StyleParams
    from batch_nst.engine.transfer import stylize_many
    from batch_nst.engine.vgg import Extractor, Variant
    from batch_nst.weights import Weights
    from tests.conftest import smooth_image

    distance.REFERENCE_SIDE = 64  # as in-process tests take it (tests/conftest.py): no distance is compared here
    optimizer = Optimizer(Extractor(Weights(args.weights, "seeded:0", args.weights)))
    content = smooth_image(SIZE, SIZE, 1)[None].astype(np.float32)
    style = smooth_image(SIZE, SIZE, 2)[None].astype(np.float32)
    image, out = probe_image(), {}
    for case in CASES:
        params, mask = StyleParams(tileable=case == "tileable"), sprite_mask() if case == "masked" else None
        variant = Variant.of(params)
        targets = losses.Targets(optimizer.content_features(content, variant=variant),
                                 optimizer.style_grams(style, mask=mask, variant=Variant(pooling=params.pooling)),
                                 None if mask is None else losses.layer_masks(mask))
        gradient = optimizer.gradient(image.shape, "fp32", params)
        for term in WEIGHTED_TERMS:
            weights = {name: ops.convert_to_tensor(float(name == term)) for name in WEIGHTED_TERMS}
            (_, terms), grad = gradient(ops.convert_to_tensor(image), optimizer.variables("fp32", variant),
                                        targets.tensors(), weights)
            out[f"{case}/{term}"] = ops.convert_to_numpy(terms[term])
            out[f"{case}/{term}/grad"] = ops.convert_to_numpy(grad)
    # The seed's arithmetic: under "area" at 32 px the content term is 256x, and with it the round-off
    # of its zero gradient at step 1, which Adam's normalized first steps turn into pixels 3-4 levels
    # apart between backends (losses still within 0.5%); style_norm="target" likewise magnifies the
    # small layers' round-off. The terms above are compared under the defaults.
    params = StyleParams(steps=STEPS, precision="fp32", **SEED)
    targets = losses.Targets(optimizer.content_features(content), optimizer.style_grams(style))
    pixels, (history,) = optimizer.run(content, targets, params)
    out["run/pixels"], out["run/history"] = pixels, np.asarray(history)
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=STEPS, optimizer="lbfgs", precision="fp32",
                                                                                **SEED))
    out["lbfgs/history"] = np.asarray(history)
    sheet = np.concatenate([smooth_image(SIZE, SIZE, 3), smooth_image(SIZE, SIZE, 4)], axis=1)  # a 2x1 sheet
    sheets = stylize_many([sheet, sheet[:, ::-1]], [style[0].astype(np.uint8)] * 2, extractor=optimizer,
                          params=StyleParams(grid="2x1", schedule="multiscale", stage_steps="3;3", precision="fp32",
                                             min_size=0))
    out["sheets/history"] = np.asarray([r.history for r in sheets])
    out["sheets/total"] = np.asarray([r.losses.total for r in sheets])
    states = []
    optimizer.run(content, targets, params, checkpoint=states.append, checkpoint_every=CHECKPOINT_AT)
    out["checkpoint"] = np.frombuffer(states[0].to_bytes(), np.uint8)
    if args.resume:
        resume = State.from_bytes(read_checkpoint(args.resume))
        resumed, (history,) = optimizer.run(content, targets, params, resume=resume)
        out["resumed/pixels"], out["resumed/history"] = resumed, np.asarray(history)
    np.savez(args.out, **out)


if __name__ == "__main__":
    sys.exit(main())
