"""Several Adam steps per compiled call against one, computed in a process of one backend.

    python -m tests.steps_probe BACKEND WEIGHTS OUT.npz [--threads N] [--k 1 4] [--break-compile]

Keras fixes its backend at import, so tests/test_autodiff.py runs this once per backend (and once
for compiled PyTorch, set by $BATCH_NST_TORCH_COMPILE). For each k (steps per call) it writes,
under `k<k>/`: a 10-step run of two items (pixels, histories, what the progress callback saw),
the same run checkpointed every 5 steps and resumed from its first checkpoint, and the traces made.
`--break-compile` replaces `torch.compile` with one whose programs fail at their first call.
"""

from __future__ import annotations

import sys

from tests.backend_probe import probe_parser

SIZE, STEPS, CHECKPOINT_AT = 32, 10, 5


def break_compile() -> None:
    """`torch.compile` as it fails where no C++ compiler is found: at the first call."""
    import torch

    def failing(f, **options):
        def run(*args):
            raise RuntimeError("InductorError: no C++ compiler found\n(a second line that must not be logged)")
        return run

    torch.compile = failing


def run_k(optimizer, content, targets, params) -> dict:
    """One optimizer's results: an uninterrupted run, its progress, and a resumed run."""
    import numpy as np

    seen = []
    before = optimizer.traces
    pixels, histories = optimizer.run(content, targets, params, on_step=seen.append)
    states = []
    optimizer.run(content, targets, params, checkpoint=states.append, checkpoint_every=CHECKPOINT_AT)
    resumed, resumed_histories = optimizer.run(content, targets, params, resume=states[0])
    return {"pixels": pixels, "history": np.asarray(histories), "progress/step": np.asarray([p.step for p in seen]),
            "progress/total": np.asarray([p.losses["total"] for p in seen]), "checkpoints": np.asarray(len(states)),
            "checkpoint/step": np.asarray(states[0].step), "resumed/pixels": resumed,
            "resumed/history": np.asarray(resumed_histories), "traces": np.asarray(optimizer.traces - before)}


def main() -> None:
    parser = probe_parser()
    parser.add_argument("--k", type=int, nargs="+", default=[1, 4], help="steps per compiled call")
    parser.add_argument("--break-compile", action="store_true")
    args = parser.parse_args()
    from batch_nst.engine import backend

    backend.use(args.backend, threads=args.threads)
    if args.break_compile:
        break_compile()
    import numpy as np
    from keras import ops

    from batch_nst.engine.losses import Targets
    from batch_nst.engine.optimize import Optimizer
    from batch_nst.engine.vgg import Extractor
    from batch_nst.params import SEED, StyleParams
    from batch_nst.weights import Weights
    from tests.conftest import smooth_image

    extractor = Extractor(Weights(args.weights, "seeded:0", args.weights))
    content = np.stack([smooth_image(SIZE, SIZE, seed) for seed in (1, 3)]).astype(np.float32)
    style = smooth_image(SIZE, SIZE, 2)[None].astype(np.float32)
    params = StyleParams(steps=STEPS, precision="fp32", **SEED)
    out = {}
    for k in args.k:
        optimizer = Optimizer(extractor, steps_per_call=k)
        grams = optimizer.style_grams(style)
        targets = Targets(optimizer.content_features(content), {n: ops.repeat(g, 2, axis=0) for n, g in grams.items()})
        out.update({f"k{k}/{name}": value for name, value in run_k(optimizer, content, targets, params).items()})
    np.savez(args.out, **out)


if __name__ == "__main__":
    sys.exit(main())
