"""L-BFGS-B (SciPy's, the original paper's optimizer) driving one compiled loss and gradient.

Items run one after another: line searches would couple a batch's items. The [0, 255] box is a
bound, not a clip. A step is an iteration (about one loss and gradient each).
"""

from __future__ import annotations

import numpy as np
from keras import ops

from batch_nst.engine.checkpoint import State
from batch_nst.engine.losses import Targets
from batch_nst.engine.optimize import Checkpoint, Optimizer, Progress, ProgressCallback, loss_weights, record
from batch_nst.engine.vgg import Variant
from batch_nst.params import StyleParams


def run(optimizer: Optimizer, init: np.ndarray, targets: Targets, params: StyleParams,
        on_step: ProgressCallback | None, precision: str, resume: State | None, checkpoint: Checkpoint | None,
        checkpoint_every: int) -> tuple[np.ndarray, list[list[float]]]:
    """Each item of the batch alone; only a lone item checkpoints (a sheet's cells restart)."""
    alone = init.shape[0] == 1
    runs = [_one(optimizer, init[b:b + 1], targets.part(b), params, on_step if b == 0 else None, precision,
                 resume if alone else None, checkpoint if alone else None, checkpoint_every)
            for b in range(init.shape[0])]
    return np.concatenate([pixels for pixels, _ in runs]), [history for _, history in runs]


def _one(optimizer, init, targets, params, on_step, precision, resume, checkpoint, checkpoint_every):
    """One item. A checkpoint holds the pixels and history; a resumed run rebuilds L-BFGS's
    curvature memory from there, so it ends close to, not exactly at, the uninterrupted result."""
    from scipy.optimize import Bounds, minimize

    shape = init.shape
    compiled = optimizer.gradient(shape, precision, params)
    args = (optimizer.variables(precision, Variant.of(params)), targets.tensors(), loss_weights(params))
    history = list(resume.histories[0]) if resume else []
    last: dict[str, np.ndarray] = {}

    def loss_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        (_, terms), grad = compiled(ops.convert_to_tensor(x.reshape(shape), "float32"), *args)
        last.update({k: ops.convert_to_numpy(v) for k, v in terms.items()})
        return float(last["total"][0]), ops.convert_to_numpy(grad).astype(np.float64).ravel()

    x0 = (resume.pixels if resume else init).astype(np.float64).ravel()
    loss_and_gradient(x0)
    current = [dict(last)]  # loss terms of the point each iteration starts from

    def iteration(intermediate_result) -> None:  # SciPy passes the new iterate by this name
        terms, current[0] = current[0], dict(last)  # its line search ended on the new iterate
        stop = record(history, float(terms["total"][0]), params)
        step = len(history)  # a resumed history holds the steps already run
        if on_step is not None:
            on_step(Progress(step=step, steps=params.steps, losses={k: float(v[0]) for k, v in terms.items()}))
        if checkpoint and checkpoint_every and step % checkpoint_every == 0 and step < params.steps:
            pixels = intermediate_result.x.reshape(shape).astype(np.float32)
            checkpoint(State(step, pixels, np.zeros_like(pixels), np.zeros_like(pixels), (tuple(history),), (False,)))
        if stop:
            raise StopIteration

    remaining = params.steps - len(history)
    result = minimize(loss_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 255.0),
                      callback=iteration,
                      options={"maxiter": remaining, "maxfun": 20 * remaining, "ftol": 0.0, "gtol": 0.0})
    return result.x.reshape(shape).astype(np.float32), history
