"""The optimization loop: Adam on the pixels, one compiled step, traced once per image shape;
or L-BFGS-B (SciPy's, the original paper's optimizer) driving one compiled loss-and-gradient.

No I/O and no printing: progress leaves through a callback and the loss history is returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from batch_nst import losses
from batch_nst.losses import Targets
from batch_nst.params import StyleParams
from batch_nst.vgg import Extractor

# The tutorial's Adam settings carried from [0, 1] pixels to [0, 255] (epsilon scales with pixels).
BETA_1 = 0.99
EPSILON = 0.1 / 255.0


@dataclass(frozen=True)
class Progress:
    """One step's report to the caller's callback (losses of item 0 of the batch)."""

    step: int  # 1-based
    steps: int
    losses: dict[str, float]


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class State:
    """Where a run stands after `step` steps: enough to continue it exactly (a checkpoint)."""

    step: int
    pixels: np.ndarray  # [B, H, W, 3]; for items already stopped (stop_tol), their final pixels
    momentum: np.ndarray  # Adam's first moments, [B, H, W, 3]
    velocity: np.ndarray  # Adam's second moments, [B, H, W, 3]
    histories: tuple[tuple[float, ...], ...]  # each item's total loss per step of this stage so far
    stopped: tuple[bool, ...]
    stage: int = 0  # multiscale: the stage this state is in (stylize's business, carried along)
    earlier: tuple[tuple[float, ...], ...] = ()  # each item's history of the stages before

    def part(self, start: int, stop: int) -> "State":
        """Items start..stop-1's share (one item, or a sprite sheet's cells), as a batch of their own."""
        return State(self.step, self.pixels[start:stop], self.momentum[start:stop], self.velocity[start:stop],
                     self.histories[start:stop], self.stopped[start:stop], self.stage, self.earlier[start:stop])


class _Slot:
    """The image variable, its Adam state and the compiled step for one [B, H, W, 3] shape."""

    def __init__(self, shape: tuple[int, ...], precision: str, tileable: bool, step_fn: Callable, jit_compile: bool):
        self.precision, self.tileable = precision, tileable
        self.image = tf.Variable(tf.zeros(shape, tf.float32), trainable=True, name="image")
        self.adam = keras.optimizers.Adam(learning_rate=1.0, beta_1=BETA_1, epsilon=EPSILON)
        self.adam.build([self.image])
        # Targets travel as plain tensors (a dataclass argument would retrace per instance).
        self.step = tf.function(
            lambda content, grams, mask, w: step_fn(self, Targets(content, grams, mask), w), jit_compile=jit_compile
        )

    def reset(self, init: np.ndarray, learning_rate: float) -> None:
        """Start a new item: its pixels in the variable, Adam's moments and step count at zero."""
        for var in self.adam.variables:
            var.assign(tf.zeros_like(var))
        self.adam.learning_rate.assign(learning_rate)
        self.image.assign(init)

    def _moments(self) -> tuple[tf.Variable, tf.Variable]:
        by_path = {v.path.rsplit("_", 1)[-1]: v for v in self.adam.variables}
        return by_path["momentum"], by_path["velocity"]

    def state(self, step: int, final: np.ndarray, running: set[int], histories: list[list[float]]) -> State:
        pixels = self.image.numpy()
        stopped = tuple(b not in running for b in range(pixels.shape[0]))
        for b in range(pixels.shape[0]):
            if stopped[b]:
                pixels[b] = final[b]
        momentum, velocity = self._moments()
        return State(step, pixels, momentum.numpy(), velocity.numpy(), tuple(map(tuple, histories)), stopped)

    def restore(self, state: State) -> None:
        """Continue from a checkpoint: pixels, Adam's moments and step count as they were."""
        momentum, velocity = self._moments()
        self.image.assign(state.pixels)
        momentum.assign(state.momentum)
        velocity.assign(state.velocity)
        self.adam.iterations.assign(state.step)


class Optimizer:
    """Runs the seed's Adam loop on an extractor; reuses one trace per (shape, precision) across items."""

    def __init__(self, extractor: Extractor, jit_compile: bool = False):
        self.extractor = extractor
        self.jit_compile = jit_compile
        self._slots: dict[tuple[tuple[int, ...], str, bool], _Slot] = {}
        self._gradients: dict[tuple[tuple[int, ...], str, bool], Callable] = {}  # L-BFGS's, per shape
        self.traces = 0  # how many times a step was traced: tests pin "once per shape"

    def content_features(self, content: np.ndarray, precision: str = "fp32", tileable: bool = False) -> tf.Tensor:
        """Content target: float32 features of content pixels [B, H, W, 3] at the content layer."""
        features = self.extractor(tf.constant(content), precision, tileable)[losses.CONTENT_LAYER]
        return tf.cast(features, tf.float32)

    def style_grams(self, style: np.ndarray, precision: str = "fp32", mask: np.ndarray | None = None) -> dict[str, tf.Tensor]:
        """Gram targets of style pixels [B, h, w, 3] (opacity-weighted by `mask` [B, h, w, 1]);
        callers cache them per style, size, precision and alpha mode."""
        mask = None if mask is None else tf.constant(mask, tf.float32)
        return losses.style_targets(self.extractor(tf.constant(style), precision), mask)

    def evaluate(self, pixels: np.ndarray, targets: Targets, params: StyleParams) -> dict[str, np.ndarray]:
        """Loss terms ([B] each) of fixed pixels in float32, e.g. the image as written.

        Always fp32 (with fp32 targets), so losses compare across the precisions items ran in.
        """
        image = tf.constant(pixels, tf.float32)
        features = self.extractor(image, "fp32", params.tileable)
        terms = losses.loss_terms(features, image, targets, _weights(params), params.tileable)
        return {k: v.numpy() for k, v in terms.items()}

    def run(
        self,
        init: np.ndarray,
        targets: Targets,
        params: StyleParams,
        on_step: ProgressCallback | None = None,
        precision: str = "fp32",
        resume: State | None = None,
        checkpoint: Callable[[State], None] | None = None,
        checkpoint_every: int = 0,
    ) -> tuple[np.ndarray, list[list[float]]]:
        """Optimize a batch of pixels [B, H, W, 3] from `init`, the network in `precision`
        ("fp32" or "bf16"; `targets` computed in the same, one per item).

        Returns the pixels and each item's total loss per step (the loss of the image each step
        started from). With `params.stop_tol` an item stops once converged: its pixels are those
        after its last step and its history is as long as the steps it ran. Every
        `checkpoint_every` steps the whole `State` goes to `checkpoint`; a run given it as `resume`
        continues exactly where that one stood.
        """
        if params.optimizer == "lbfgs":
            # Items run one after another; only a lone item checkpoints (a sheet's cells restart).
            alone = init.shape[0] == 1
            runs = [self._lbfgs(init[b:b + 1], targets.part(b), params, on_step if b == 0 else None, precision,
                                resume if alone else None, checkpoint if alone else None, checkpoint_every)
                    for b in range(init.shape[0])]
            return np.concatenate([pixels for pixels, _ in runs]), [history for _, history in runs]
        slot = self._slot(init.shape, precision, params.tileable)
        slot.reset(init.astype(np.float32), params.learning_rate)
        weights = _weights(params)
        histories: list[list[float]] = [[] for _ in range(init.shape[0])]
        final = np.empty(init.shape, np.float32)
        running = set(range(init.shape[0]))
        if resume is not None:
            slot.restore(resume)
            histories = [list(h) for h in resume.histories]
            for b in [b for b, stopped in enumerate(resume.stopped) if stopped]:
                final[b] = resume.pixels[b]
                running.discard(b)
        for step in range(resume.step + 1 if resume else 1, params.steps + 1):
            terms = {k: v.numpy() for k, v in slot.step(targets.content, targets.grams, targets.mask, weights).items()}
            stopped = [b for b in running if _record(histories[b], float(terms["total"][b]), params)]
            if on_step is not None:
                on_step(Progress(step=step, steps=params.steps, losses={k: float(v[0]) for k, v in terms.items()}))
            if stopped:
                pixels = slot.image.numpy()
                for b in stopped:
                    final[b] = pixels[b]
                running.difference_update(stopped)
            if not running:
                break
            if checkpoint and checkpoint_every and step % checkpoint_every == 0 and step < params.steps:
                checkpoint(slot.state(step, final, running, histories))
        if running:
            pixels = slot.image.numpy()
            for b in running:
                final[b] = pixels[b]
        return final, histories

    def _lbfgs(self, init, targets, params, on_step, precision, resume, checkpoint, checkpoint_every):
        """One item by L-BFGS-B: items run alone because line searches would couple a batch's items.

        The [0, 255] box is a bound, not a clip. A step is an iteration (about one loss and gradient
        each). A checkpoint holds the pixels and history; a resumed run rebuilds L-BFGS's curvature
        memory from there, so it ends close to, not exactly at, the uninterrupted result.
        """
        from scipy.optimize import Bounds, minimize

        shape, weights = init.shape, _weights(params)
        compiled = self._gradient_fn(shape, precision, params.tileable)
        history = list(resume.histories[0]) if resume else []
        last: dict[str, np.ndarray] = {}

        def loss_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
            terms, grad = compiled(tf.constant(x.reshape(shape), tf.float32), targets.content, targets.grams,
                                   targets.mask, weights)
            last.update({k: v.numpy() for k, v in terms.items()})
            return float(last["total"][0]), grad.numpy().astype(np.float64).ravel()

        x0 = (resume.pixels if resume else init).astype(np.float64).ravel()
        loss_and_gradient(x0)
        current = [dict(last)]  # loss terms of the point each iteration starts from

        def iteration(intermediate_result) -> None:  # SciPy passes the new iterate by this name
            terms, current[0] = current[0], dict(last)  # its line search ended on the new iterate
            stop = _record(history, float(terms["total"][0]), params)
            step = len(history)  # a resumed history holds the steps already run
            if on_step is not None:
                on_step(Progress(step=step, steps=params.steps, losses={k: float(v[0]) for k, v in terms.items()}))
            if checkpoint and checkpoint_every and step % checkpoint_every == 0 and step < params.steps:
                pixels = intermediate_result.x.reshape(shape).astype(np.float32)
                checkpoint(State(step, pixels, np.zeros_like(pixels), np.zeros_like(pixels), (tuple(history),),
                                 (False,)))
            if stop:
                raise StopIteration

        remaining = params.steps - len(history)
        result = minimize(loss_and_gradient, x0, jac=True, method="L-BFGS-B", bounds=Bounds(0.0, 255.0),
                          callback=iteration,
                          options={"maxiter": remaining, "maxfun": 20 * remaining, "ftol": 0.0, "gtol": 0.0})
        return result.x.reshape(shape).astype(np.float32), history

    def _gradient_fn(self, shape: tuple[int, ...], precision: str, tileable: bool) -> Callable:
        """The compiled loss terms and pixel gradient for one image shape (L-BFGS's function)."""
        key = (tuple(shape), precision, tileable)
        if key not in self._gradients:
            self.extractor.model(precision, tileable)  # build the network eagerly, never while tracing
            self._gradients[key] = tf.function(
                lambda image, content, grams, mask, w: self._terms_and_gradient(
                    image, Targets(content, grams, mask), w, precision, tileable),
                jit_compile=self.jit_compile,
            )
        return self._gradients[key]

    def _terms_and_gradient(self, image, targets: Targets, weights, precision: str, tileable: bool):
        """Loss terms ([B] each) of `image` and the gradient of their sum: each item's own gradient,
        since items are independent."""
        self.traces += 1  # Python side effect: runs only while tracing
        with tf.GradientTape() as tape:
            tape.watch(image)
            features = self.extractor(image, precision, tileable)
            terms = losses.loss_terms(features, image, targets, weights, tileable)
            total = tf.reduce_sum(terms["total"])
        return terms, tape.gradient(total, image)

    def _slot(self, shape: tuple[int, ...], precision: str, tileable: bool) -> _Slot:
        key = (tuple(shape), precision, tileable)
        if key not in self._slots:
            self.extractor.model(precision, tileable)  # build the network eagerly, never while tracing
            self._slots[key] = _Slot(tuple(shape), precision, tileable, self._step, self.jit_compile)
        return self._slots[key]

    def _step(self, slot: _Slot, targets: Targets, weights: tf.Tensor) -> dict[str, tf.Tensor]:
        """One Adam step on `slot.image`, then the seed's clip to [0, 255]."""
        terms, grad = self._terms_and_gradient(slot.image, targets, weights, slot.precision, slot.tileable)
        slot.adam.apply_gradients([(grad, slot.image)])
        slot.image.assign(tf.clip_by_value(slot.image, 0.0, 255.0))
        return terms


def _record(history: list[float], total: float, params: StyleParams) -> bool:
    """Append a step's loss; True when the item has converged (`stop_tol` over `stop_window`).

    Converged: the total loss fell by less than `stop_tol` (a fraction) over the last
    `stop_window` steps. Off when stop_tol is 0, the seed's fixed step count.
    """
    history.append(total)
    if params.stop_tol <= 0 or len(history) <= params.stop_window:
        return False
    before = history[-params.stop_window - 1]
    return before - total < params.stop_tol * abs(before)


def _weights(params: StyleParams) -> tf.Tensor:
    """Loss weights as one tensor, so changing them never retraces the step."""
    return tf.constant([params.style_weight, params.content_weight, params.tv_weight], tf.float32)
