"""The optimization loop: Adam on the pixels, compiled per image shape, on any backend.

The step (network, losses, gradient, Adam update, the seed's clip) is one function of tensors in
`keras.ops`; `autodiff` differentiates it and compiles several steps into one call for the
backend. Adam is written out here (Keras' own update, arithmetic for arithmetic) because its
state must be plain arrays: a checkpoint taken on one backend resumes on another. L-BFGS lives
in `lbfgs.py`.

No I/O and no printing: progress leaves through a callback and the loss history is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from keras import ops

from batch_nst.engine import autodiff, losses, vgg
from batch_nst.engine.checkpoint import State
from batch_nst.engine.losses import Targets
from batch_nst.params import TERMS, StyleParams
from batch_nst.engine.vgg import Extractor, Variant

# The tutorial's Adam settings carried from [0, 1] pixels to [0, 255] (epsilon scales with pixels).
BETA_1, BETA_2 = 0.99, 0.999
EPSILON = 0.1 / 255.0
STEPS_PER_CALL = 10  # Adam steps one compiled call runs; their losses come back together


@dataclass(frozen=True)
class Progress:
    """One step's report to the caller's callback (losses of item 0 of the batch)."""

    step: int  # 1-based
    steps: int
    losses: dict[str, float]


ProgressCallback = Callable[[Progress], None]
Checkpoint = Callable[[State], None]


class Optimizer:
    """Runs the seed's Adam loop (or L-BFGS) on an extractor; compiles its steps per (shape,
    precision, loss options) and reuses them across items."""

    def __init__(self, extractor: Extractor, steps_per_call: int = STEPS_PER_CALL):
        if steps_per_call < 1:
            raise ValueError(f"steps_per_call must be at least 1, not {steps_per_call}")
        self.extractor = extractor
        self.steps_per_call = steps_per_call  # 1: one dispatch and one read-back per step (tests compare)
        self._compiled: dict[tuple, Callable] = {}
        # Programs traced: one per shape for gradients; for Adam one per shape and steps per call
        # (at most three per run, see `_Adam.call_size`) on TF and JAX, one per shape on PyTorch.
        self.traces = 0

    def content_features(self, content: np.ndarray, params: StyleParams, precision: str = "fp32") -> Any:
        """Content target: float32 features of content pixels [B, H, W, 3] through the network
        `params` optimize with, at their content layer (the two must be those of the run)."""
        return ops.cast(self.extractor(content, precision, Variant.of(params))[params.content_layer], "float32")

    def style_grams(self, style: np.ndarray, precision: str = "fp32", mask: np.ndarray | None = None,
                    variant: Variant = Variant()) -> dict[str, Any]:
        """Gram targets of style pixels [B, h, w, 3] (opacity-weighted by `mask` [B, h, w, 1]);
        callers cache them per style, size, precision, alpha mode and pooling. A tileable `variant`
        (wrapped padding) for an output's Grams, seen as the losses see it."""
        masks = None if mask is None else losses.layer_masks(mask)
        return losses.style_targets(self.extractor(style, precision, variant), masks)

    def evaluate(self, pixels: np.ndarray, targets: Targets, params: StyleParams) -> dict[str, np.ndarray]:
        """Loss terms ([B] each) of fixed pixels in float32, e.g. the image as written.

        Always fp32 (with fp32 targets), so losses compare across the precisions items ran in.
        """
        image = ops.convert_to_tensor(pixels, "float32")
        features = self.extractor(image, "fp32", Variant.of(params))
        terms = losses.loss_terms(features, image, targets, loss_weights(params), **loss_options(params))
        return {k: ops.convert_to_numpy(v) for k, v in terms.items()}

    def run(self, init: np.ndarray, targets: Targets, params: StyleParams, on_step: ProgressCallback | None = None,
            precision: str = "fp32", resume: State | None = None, checkpoint: Checkpoint | None = None,
            checkpoint_every: int = 0) -> tuple[np.ndarray, list[list[float]]]:
        """Optimize a batch of pixels [B, H, W, 3] from `init`, the network in `precision`
        ("fp32" or "bf16"; `targets` computed in the same, one per item).

        Returns the pixels and each item's total loss per step (the loss of the image each step
        started from). With `params.stop_tol` an item stops once converged: its pixels are those
        after its last step and its history is as long as the steps it ran. Every
        `checkpoint_every` steps the whole `State` goes to `checkpoint`; a run given it as `resume`
        continues exactly where that one stood.
        """
        if params.optimizer == "lbfgs":
            from batch_nst.engine import lbfgs

            return lbfgs.run(self, init, targets, params, on_step, precision, resume, checkpoint, checkpoint_every)
        return _Adam(self, init, targets, params, precision, resume).run(on_step, checkpoint, checkpoint_every)

    def gradient(self, shape: tuple[int, ...], precision: str, params: StyleParams) -> Callable:
        """Compiled `(image, variables, targets, weights) -> ((sum of totals, terms), gradient)`:
        each item's own gradient where items are independent (an animation's frames are not)."""
        return self._compile("gradient", shape, precision, params,
                             lambda backend, gradient: backend.compile(gradient, self._traced))

    def adam_steps(self, shape: tuple[int, ...], precision: str, params: StyleParams) -> Callable:
        """Compiled `(k, (image, momentum, velocity), done, lr, variables, targets, weights) ->
        ((image, momentum, velocity), terms)`: k Adam steps after step `done` (a float32 scalar),
        each followed by the seed's clip to [0, 255]; each term stacked [k, B], one row a step."""
        return self._compile("adam", shape, precision, params,
                             lambda backend, gradient: backend.compile_steps(_adam_step(gradient), TERMS, self._traced))

    def _compile(self, kind: str, shape: tuple[int, ...], precision: str, params: StyleParams,
                 build: Callable[[Any, Callable], Callable]) -> Callable:
        """The step for what shapes its graph: the shape, the arithmetic, the padding and the loss
        options (constants of the graph). Weights and targets are arguments: changing them never retraces."""
        variant, options = Variant.of(params), loss_options(params)
        key = (kind, tuple(shape), precision, variant, *sorted(options.items()))
        if key not in self._compiled:
            model = self.extractor.model(precision, variant)  # built eagerly, never while tracing
            backend = autodiff.current()

            def objective(image, variables, targets, weights):
                targets = Targets(*targets)
                image = losses.as_written(image, targets.written)
                features = vgg.features(model, variables, image)
                terms = losses.loss_terms(features, image, targets, weights, **options)
                return ops.sum(terms["total"]), terms

            self._compiled[key] = build(backend, backend.value_and_grad(objective))
        return self._compiled[key]

    def _traced(self) -> None:
        self.traces += 1

    def variables(self, precision: str, variant: Variant) -> tuple:
        """The network's weights as compiled steps take them (see autodiff)."""
        return autodiff.current().variables(self.extractor.model(precision, variant))


def _adam_step(gradient: Callable) -> Callable:
    """One Adam step as `autodiff.compile_steps` loops it: `(state, t, *args) -> (state, terms)`."""

    def step(state, t, lr, variables, targets, weights):
        image, momentum, velocity = state
        (_, terms), grad = gradient(image, variables, targets, weights)
        image, momentum, velocity = adam_update(image, momentum, velocity, grad, t, lr)
        return (ops.clip(image, 0.0, 255.0), momentum, velocity), terms

    return step


def adam_update(image, momentum, velocity, grad, t, lr):
    """Keras' Adam update written out (`t` is the 1-based step, as a float tensor)."""
    alpha = lr * ops.sqrt(1.0 - ops.power(BETA_2, t)) / (1.0 - ops.power(BETA_1, t))
    momentum = momentum + (grad - momentum) * (1.0 - BETA_1)
    velocity = velocity + (ops.square(grad) - velocity) * (1.0 - BETA_2)
    return image - momentum * alpha / (ops.sqrt(velocity) + EPSILON), momentum, velocity


class _Adam:
    """One batch's Adam run: its tensors, histories and which items still run."""

    def __init__(self, optimizer: Optimizer, init: np.ndarray, targets: Targets, params: StyleParams,
                 precision: str, resume: State | None):
        self.params = params
        self.per_call = optimizer.steps_per_call
        self.program = optimizer.adam_steps(init.shape, precision, params)
        self.args = (ops.convert_to_tensor(params.learning_rate, "float32"),
                     optimizer.variables(precision, Variant.of(params)), targets.tensors(), loss_weights(params))
        start = resume or State(0, init.astype(np.float32), np.zeros(init.shape, np.float32),
                                np.zeros(init.shape, np.float32), tuple(() for _ in init), (False,) * len(init))
        self.done = start.step
        self.image, self.momentum, self.velocity = (ops.convert_to_tensor(a, "float32")
                                                    for a in (start.pixels, start.momentum, start.velocity))
        self.histories = [list(h) for h in start.histories]
        self.final = start.pixels.astype(np.float32)  # stopped items' pixels (and, at the end, all)
        self.running = {b for b, stopped in enumerate(start.stopped) if not stopped}

    def run(self, on_step, checkpoint, checkpoint_every) -> tuple[np.ndarray, list[list[float]]]:
        """Each compiled call runs several steps and their losses come back together: one
        dispatch and one read-back per step left the device idle between steps (measured on an
        H200 under JAX: a 512 px bf16 step took 6.8 ms read back each step, 4.1 ms read every
        10 steps, 1.9 ms on the device alone)."""
        every = checkpoint_every if checkpoint else 0
        while self.done < self.params.steps and self.running:
            k = self.call_size(every)
            done = ops.convert_to_tensor(float(self.done), "float32")
            (self.image, self.momentum, self.velocity), terms = self.program(
                k, (self.image, self.momentum, self.velocity), done, *self.args)
            rows = {name: ops.convert_to_numpy(v) for name, v in terms.items()}  # [k, B] each
            for i in range(k):
                self._report(self.done + i + 1, {name: v[i] for name, v in rows.items()}, on_step)
            self.done += k
            if every and self.done % every == 0 and self.done < self.params.steps and self.running:
                checkpoint(self._state(self.done))
        self._finish(sorted(self.running))
        return self.final, self.histories

    def call_size(self, every: int) -> int:
        """Steps in the next call: up to `steps_per_call`, never past the next checkpoint or the
        end, so both fall on a call's boundary. One under `stop_tol`: an item stops on the step
        that converged, its pixels those after that step. Calls count from the last checkpoint,
        so a resumed run makes the calls an uninterrupted one made, and a run compiles at most
        three sizes: `steps_per_call`, `checkpoint_every` mod it, and the end's remainder."""
        if self.params.stop_tol > 0:
            return 1
        left = self.params.steps - self.done
        if every:
            left = min(left, every - self.done % every)
        return min(self.per_call, left)

    def _report(self, step: int, terms: dict[str, np.ndarray], on_step) -> None:
        """One step's losses into the histories and the callback; items that converged stop."""
        stopped = [b for b in sorted(self.running) if record(self.histories[b], float(terms["total"][b]), self.params)]
        if on_step is not None:
            on_step(Progress(step=step, steps=self.params.steps, losses={k: float(v[0]) for k, v in terms.items()}))
        self._finish(stopped)

    def _finish(self, items: list[int]) -> None:
        """Items that stopped keep the pixels they have now."""
        if items:
            pixels = ops.convert_to_numpy(self.image)
            for b in items:
                self.final[b] = pixels[b]
            self.running.difference_update(items)

    def _state(self, step: int) -> State:
        pixels = ops.convert_to_numpy(self.image)
        stopped = tuple(b not in self.running for b in range(len(pixels)))
        pixels[list(np.flatnonzero(stopped))] = self.final[list(np.flatnonzero(stopped))]
        return State(step, pixels, ops.convert_to_numpy(self.momentum), ops.convert_to_numpy(self.velocity),
                     tuple(map(tuple, self.histories)), stopped)


def record(history: list[float], total: float, params: StyleParams) -> bool:
    """Append a step's loss; True when the item has converged (`stop_tol` over `stop_window`).

    Converged: the total loss fell by less than `stop_tol` (a fraction) over the last
    `stop_window` steps. Off when stop_tol is 0, the seed's fixed step count.
    """
    history.append(total)
    if params.stop_tol <= 0 or len(history) <= params.stop_window:
        return False
    before = history[-params.stop_window - 1]
    return before - total < params.stop_tol * abs(before)


def loss_options(params: StyleParams) -> dict[str, Any]:
    """The parameters that shape `losses.loss_terms`' graph, as its keyword arguments."""
    return {"wrap": params.tileable, "loss_scale": params.loss_scale, "style_norm": params.style_norm,
            "content_layer": params.content_layer}


def loss_weights(params: StyleParams) -> dict[str, Any]:
    """Loss weights as float32 scalar tensors by term name, and the style term's floor
    (`style_floor`; 0 holds nothing: the term is never negative), so changing them never retraces a step."""
    weights = {**params.loss_weights(), "style_floor": params.style_floor()}
    return {name: ops.convert_to_tensor(w, "float32") for name, w in weights.items()}
