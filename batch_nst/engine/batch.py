"""One batch's optimization: its items, their targets at each size, the schedule, the written losses.

A `Batch` holds what every step of a batch shares (the optimizer, the parameters, the style cache,
the precision, each item's content cell, styles and style key), so the schedule, the targets and
the loss evaluation read it from one object instead of passing the same values along.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import numpy as np
from keras import ops

from batch_nst.engine import losses, prepare, sequence
from batch_nst.engine.checkpoint import State
from batch_nst.assets.images import Picture
from batch_nst.engine.losses import Targets
from batch_nst.engine.optimize import Optimizer, Progress, ProgressCallback
from batch_nst.params import StyleParams
from batch_nst.engine.sequence import Previous
from batch_nst.engine.style_cache import StyleCache
from batch_nst.engine.vgg import Variant, effective_precision


@dataclass(frozen=True)
class Batch:
    optimizer: Optimizer
    params: StyleParams
    cache: StyleCache | None  # Gram targets per style, size, precision and alpha mode
    contents: list[Picture]  # one cell each (a sprite sheet contributes all its cells)
    styles: list[list[Picture]]  # each item's style images (several are blended)
    keys: list[Hashable | None]  # each item's style key for the cache (a tuple: one per style)
    precision: str  # the network's arithmetic for this batch
    size: tuple[int, int]  # the optimization size every item shares
    previous: list[Previous | None]  # each item's frame before it (animations; None for still images)

    @classmethod
    def of(cls, optimizer: Optimizer, params: StyleParams, cache: StyleCache | None,
           items: list[tuple[Picture, list[Picture], Hashable | None]],
           previous: list[Previous | None] | None = None) -> "Batch":
        """A batch of (content cell, styles, style key) items, and each one's frame before it where
        it is an animation's frame; ValueError if sizes differ."""
        contents, styles, keys = (list(column) for column in zip(*items))
        sizes = {prepare.opt_size(cell, params) for cell in contents}
        if len(sizes) != 1:
            raise ValueError(f"one batch needs one optimization size, got sizes {sizes}")
        previous = previous if previous is not None else [None] * len(contents)
        return cls(optimizer, params, cache, contents, styles, keys, batch_precision(params), sizes.pop(), previous)

    def optimize(self, on_step: ProgressCallback | None, resume: State | None,
                 checkpoint: Callable[[State], None] | None, every: int) -> tuple[np.ndarray, list, Targets]:
        """Run params' schedule: one stage, or coarse to fine, each stage's pixels scaled up to
        start the next. Returns the final pixels, each item's history over all stages and the
        final stage's targets."""
        stages = self.params.stages()
        report = _Staged(on_step, sum(stages))
        earlier: list[tuple[float, ...]] = [()] * len(self.contents)
        pixels = targets = None
        for stage, (size, steps) in enumerate(zip(prepare.stage_sizes(self.size, len(stages)), stages)):
            report.done = sum(stages[:stage])
            if resume is not None and resume.stage > stage:
                continue  # finished before the checkpoint; its history is in resume.earlier
            here = resume if resume is not None and resume.stage == stage else None
            if here is not None:
                earlier, init = list(here.earlier) or earlier, here.pixels
            elif pixels is None:
                init = np.concatenate([prepare.initial(c, self.params, size) for c in self.contents])
            else:
                init = prepare.upscaled(pixels, size)
            targets = self.targets(self.precision, size)
            save = None if checkpoint is None else _stage_saver(checkpoint, stage, tuple(earlier))
            pixels, histories = self.optimizer.run(init, targets, self.params.with_overrides({"steps": steps}),
                                                   report, self.precision, here, save, every)
            earlier = [before + tuple(h) for before, h in zip(earlier, histories)]
        return pixels, earlier, targets

    def written_terms(self, written: list[Picture], targets: Targets | None = None) -> dict[str, np.ndarray]:
        """fp32 loss terms ([B] each) of the images as written, at the optimization size."""
        targets = targets if targets is not None else self.targets("fp32", self.size)
        pixels = np.concatenate([prepare.prepared(w, self.params, self.size) for w in written])
        return self.optimizer.evaluate(pixels, targets, self.params)

    def targets(self, precision: str, size: tuple[int, int]) -> Targets:
        """The batch's targets at `size`, item by item (each style's Grams from the cache when seen),
        and the temporal targets that tie an animation's frames."""
        stacked = _stack([self._item_targets(c, s, k, precision, size)
                          for c, s, k in zip(self.contents, self.styles, self.keys)], size)
        temporal = sequence.targets(self.previous, self.contents, self.params, size)
        return stacked if temporal is None else dataclasses.replace(stacked, temporal=temporal)

    def _item_targets(self, content: Picture, styles: list[Picture], key, precision: str, size) -> Targets:
        """Content features and style Grams at `size` through the network in `precision`."""
        side = prepare.style_side(self.params, size, content)
        grams = style_grams(self.optimizer, self.params, self.cache, styles, key, side, precision)
        # One pass of the content: its features at the content layer, and its own Grams, whose
        # distance from the style's is what relative_style divides by.
        seen = self.optimizer.extractor(prepare.prepared(content, self.params, size), precision, Variant.of(self.params))
        mask = prepare.mask(content, size, self.params)
        masks = None if mask is None else losses.layer_masks(mask)
        own = None
        if self.params.relative_style:
            own = ops.maximum(losses.style_term(losses.style_targets(seen, masks), grams, self.params.style_norm), 1e-12)
        return Targets(ops.cast(seen[self.params.content_layer], "float32"), grams, masks,
                       written=prepare.round_trips(content, size, self.params), own_style=own)


def style_grams(optimizer: Optimizer, params: StyleParams, cache: StyleCache | None, styles: list[Picture], key: Hashable | None,
                long_side: int, precision: str) -> dict[str, Any]:
    """Style Grams for an optimization of `long_side` (scaled by params.style_scale) through the
    network in `precision`. Several styles' Grams are blended by params.style_blend; each comes
    from `cache` when that style was seen at this size, precision and preparation (`key`: one key,
    or one per style; None computes). Shared by the targets and `distance`, so both see one style
    the same way and a worker computes each style's Grams once."""
    keys = key if isinstance(key, tuple) else ((key,) if len(styles) == 1 else (None,) * len(styles))
    per_style = [_grams(optimizer, params, cache, style, long_side, k, precision) for style, k in zip(styles, keys)]
    weights = params.blend_weights(len(styles))
    return {n: sum(w * g[n] for w, g in zip(weights, per_style)) for n in per_style[0]}


def _grams(optimizer: Optimizer, params: StyleParams, cache: Any, style: Picture, long_side: float, key,
           precision: str) -> dict[str, Any]:
    style_px = prepare.style_pixels(style, long_side, params)
    style_mask = prepare.mask(style, style_px.shape[1:3], params)
    compute = lambda: optimizer.style_grams(style_px, precision, style_mask, Variant(pooling=params.pooling))  # noqa: E731
    # Everything the pixels and the mask depend on besides the style itself (style_scale and
    # style_size are in the shape).
    cache_key = (key, style_px.shape, precision, params.alpha_mode, params.preserve_color, params.pooling)
    return compute() if cache is None or key is None else cache.get(cache_key, compute)


def batch_precision(params: StyleParams) -> str:
    """The network's arithmetic for this run. `auto` gives L-BFGS fp32: its line searches stall on
    bf16's noisier gradients (measured: 83 of 100 iterations, then no step it would accept)."""
    if params.optimizer == "lbfgs" and params.precision == "auto":
        return "fp32"
    return effective_precision(params.precision)


def _stage_saver(checkpoint: Callable[[State], None], stage: int, earlier: tuple) -> Callable[[State], None]:
    return lambda state: checkpoint(dataclasses.replace(state, stage=stage, earlier=earlier))


class _Staged:
    """Progress over all stages: step numbers continue from stage to stage."""

    def __init__(self, on_step: ProgressCallback | None, steps: int):
        self.on_step, self.steps, self.done = on_step, steps, 0

    def __call__(self, progress: Progress) -> None:
        if self.on_step is not None:
            self.on_step(Progress(self.done + progress.step, self.steps, progress.losses))


def _stack(items: list[Targets], size: tuple[int, int]) -> Targets:
    """Per-item targets ([1, ...] each) at `size` as one batch ([B, ...]); items without a mask count
    as opaque."""
    if len(items) == 1:
        return items[0]
    concat = lambda tensors: ops.concatenate(tensors, axis=0)  # noqa: E731
    masks = None
    if any(t.masks is not None for t in items):
        shapes = next(t.masks for t in items if t.masks is not None)
        masks = {name: concat([ops.ones_like(shapes[name]) if t.masks is None else t.masks[name] for t in items])
                 for name in shapes}
    written = None
    if any(t.written is not None for t in items):  # items seen as they are get identities
        eye = lambda n: np.eye(n, dtype=np.float32)[None]  # noqa: E731
        written = tuple(np.concatenate([eye(n) if t.written is None else t.written[axis] for t in items])
                        for axis, n in enumerate(size))
    own = None
    if any(t.own_style is not None for t in items):  # relative_style is the batch's: all or none
        own = concat([t.own_style for t in items])
    return Targets(concat([t.content for t in items]),
                   {name: concat([t.grams[name] for t in items]) for name in items[0].grams}, masks,
                   written=written, own_style=own)
