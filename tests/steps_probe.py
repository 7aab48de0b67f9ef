"""The steps group of tests/probe.py: several Adam steps per compiled call against one.

For each k (steps per call) it gives, under `k<k>/`: a 10-step run of two items (pixels,
histories, what the progress callback saw), the same run checkpointed every 5 steps and resumed
from its first checkpoint, and the traces made (tests/test_autodiff.py compares them).
"""

from __future__ import annotations

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


def steps(extractor, ks: list[int]) -> dict:
    """The steps group's arrays for each k, each k on an optimizer of its own (its own traces)."""
    import numpy as np
    from keras import ops

    from batch_nst.engine.losses import Targets
    from batch_nst.engine.optimize import Optimizer
    from batch_nst.params import SEED, StyleParams
    from tests.conftest import smooth_image

    content = np.stack([smooth_image(SIZE, SIZE, seed) for seed in (1, 3)]).astype(np.float32)
    style = smooth_image(SIZE, SIZE, 2)[None].astype(np.float32)
    params = StyleParams(steps=STEPS, precision="fp32", **SEED)
    out = {}
    for k in ks:
        optimizer = Optimizer(extractor, steps_per_call=k)
        grams = optimizer.style_grams(style)
        targets = Targets(optimizer.content_features(content, params), {n: ops.repeat(g, 2, axis=0) for n, g in grams.items()})
        out.update({f"k{k}/{name}": value for name, value in run_k(optimizer, content, targets, params).items()})
    return out
