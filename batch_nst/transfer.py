"""One item end to end on pixels: prepare -> optimize -> quantize -> restore size and alpha.

`stylize()` is the public entry point. It takes arrays, PIL images or `Picture`s and returns a
`Result` whose losses are those of the image as written (8-bit, at the content's own size), so
anyone can recompute them from the stored file with `evaluate()`. No Ray, no storage, no printing.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import tensorflow as tf

from batch_nst import images
from batch_nst.images import Picture
from batch_nst.losses import Targets
from batch_nst.optimize import Optimizer, Progress, ProgressCallback, State
from batch_nst.params import StyleParams
from batch_nst.vgg import MIN_SIDE, Extractor, effective_precision


@dataclass(frozen=True)
class Losses:
    """Loss terms of one image: `total` weighted, the others unweighted (see losses.loss_terms)."""

    total: float
    style: float
    content: float
    tv: float


@dataclass(frozen=True)
class Result:
    """A stylized image and how it was made."""

    image: Picture  # content's exact width and height, alpha restored
    losses: Losses  # of `image` as written (8-bit)
    history: tuple[float, ...]  # total loss at each step, before its update
    steps: int  # steps run: params.steps, or fewer where stop_tol ended the item early
    height: int  # size the optimization ran at
    width: int
    seconds: float  # the whole call (a batch's time shared among its items)
    optimize_seconds: float  # inside the optimization steps only (likewise shared)
    precision: str  # the network's arithmetic that ran: "fp32" or "bf16"

    def to_pil(self):
        """The image as a PIL image (RGB, or RGBA where the content had alpha)."""
        from PIL import Image

        if self.image.alpha is None:
            return Image.fromarray(self.image.rgb, "RGB")
        return Image.fromarray(np.dstack([self.image.rgb, self.image.alpha]), "RGBA")


class StyleCache:
    """A small LRU of per-style values (Gram targets per style, size, precision; decoded style
    images in the worker): a library that shares a few styles computes each once per process."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self.misses = 0

    def get(self, key: Hashable, compute) -> Any:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        self.misses += 1
        value = self._values[key] = compute()
        if len(self._values) > self.capacity:
            self._values.popitem(last=False)
        return value


def stylize(
    content: Any,
    style: Any,
    *,
    params: StyleParams = StyleParams(),
    extractor: Extractor | Optimizer,
    on_step: ProgressCallback | None = None,
    style_cache: StyleCache | None = None,
    style_key: Hashable | None = None,
) -> Result:
    """Stylize `content` after `style`. Pass an `Optimizer` to reuse its compiled steps across calls.

    `style_cache` with a `style_key` (anything naming the style image's bytes) skips recomputing
    the style's Grams for a style already seen at this size.
    """
    return stylize_many([content], [style], params=params, extractor=extractor, on_step=on_step,
                        style_cache=style_cache, style_keys=[style_key])[0]


def stylize_many(
    contents: Sequence[Any],
    styles: Sequence[Any],
    *,
    params: StyleParams = StyleParams(),
    extractor: Extractor | Optimizer,
    on_step: ProgressCallback | None = None,
    style_cache: StyleCache | None = None,
    style_keys: Sequence[Hashable | None] | None = None,
    resume: State | None = None,
    checkpoint: Callable[[State], None] | None = None,
    checkpoint_every: int = 0,
) -> list[Result]:
    """Stylize several items in one batch: each gets exactly its solo result (up to round-off).

    All contents must share one optimization size (`batch_key`); each item keeps its own style
    targets, losses, history and early stop. Many small sprites per step use the hardware far
    better than one at a time. A sprite sheet (`params.grid`) enters the batch as its cells, all
    with the sheet's style targets, and comes out reassembled, its losses and history the means of
    its cells'. `checkpoint`, `checkpoint_every` and `resume` pass through to `Optimizer.run` (one
    state entry per cell): a preempted item continues where its last checkpoint stood.
    """
    started = time.perf_counter()
    optimizer = _as_optimizer(extractor)
    sheets = [_cells(images.to_picture(c, "content"), params) for c in contents]
    style_sets = [_style_set(s) for s in styles]
    keys = list(style_keys) if style_keys is not None else [None] * len(sheets)
    cells = [cell for sheet in sheets for cell in sheet]
    cell_styles = [s for s, sheet in zip(style_sets, sheets) for _ in sheet]
    cell_keys = [k for k, sheet in zip(keys, sheets) for _ in sheet]
    sizes = {_opt_size(cell, params) for cell in cells}
    if len(sizes) != 1 or len(style_sets) != len(sheets) or len(keys) != len(sheets):
        raise ValueError(f"one batch needs one optimization size and a style per content, got sizes {sizes}")
    precision = _precision(params)
    optimize_started = time.perf_counter()
    pixels, histories, final_targets = _optimize(optimizer, cells, cell_styles, cell_keys, params, precision,
                                                 style_cache, on_step, resume, checkpoint, checkpoint_every)
    optimize_seconds = (time.perf_counter() - optimize_started) / len(sheets)
    written = [_restore(cell, px, params) for cell, px in zip(cells, pixels)]
    # Recorded losses are always fp32 on the images as written, comparable across precisions.
    terms = _written_terms(optimizer, cells, cell_styles, cell_keys, written, params, style_cache,
                           final_targets if precision == "fp32" else None)
    height, width = sizes.pop()
    seconds = (time.perf_counter() - started) / len(sheets)
    results, start = [], 0
    for sheet in sheets:
        part = slice(start, start + len(sheet))
        start += len(sheet)
        history = _mean_history(histories[part])
        results.append(Result(
            _join(written[part], params), Losses(**{k: float(np.mean(v[part])) for k, v in terms.items()}),
            history, len(history), height, width, seconds, optimize_seconds, precision))
    return results


def batch_key(content: Picture, params: StyleParams, name: str = "content") -> tuple:
    """Items with equal keys can share a batch: same optimization size, same parameters (a sprite
    sheet's cell size; ImageError naming `name` when the sheet does not split into params.grid)."""
    return (_opt_size(_cells(content, params, name)[0], params), params)


def evaluate(
    content: Any, style: Any, output: Any, *, params: StyleParams, extractor: Extractor | Optimizer
) -> Losses:
    """Losses of `output` (e.g. a stored result) against content and style under `params`."""
    cells = _cells(images.to_picture(content, "content"), params)
    outputs = _cells(images.to_picture(output, "output"), params, "output")
    styles = [_style_set(style)] * len(cells)
    terms = _written_terms(_as_optimizer(extractor), cells, styles, [None] * len(cells), outputs, params, None)
    return Losses(**{name: float(np.mean(value)) for name, value in terms.items()})


def _precision(params: StyleParams) -> str:
    """The network's arithmetic for this run. `auto` gives L-BFGS fp32: its line searches stall on
    bf16's noisier gradients (measured: 83 of 100 iterations, then no step it would accept)."""
    if params.optimizer == "lbfgs" and params.precision == "auto":
        return "fp32"
    return effective_precision(params.precision)


def _as_optimizer(extractor: Extractor | Optimizer) -> Optimizer:
    return extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)


def _optimize(optimizer, contents, styles, keys, params, precision, cache, on_step, resume, checkpoint, every):
    """Run params' schedule on a batch: one stage, or coarse to fine, each stage's pixels scaled up
    to start the next. Returns the final pixels, each item's history over all stages and the
    final stage's targets."""
    stages = params.stages()
    sizes = _stage_sizes(_opt_size(contents[0], params), len(stages))
    report = _Staged(on_step, sum(stages))
    earlier: list[tuple[float, ...]] = [()] * len(contents)
    pixels = targets = None
    for stage, (size, steps) in enumerate(zip(sizes, stages)):
        report.done = sum(stages[:stage])
        if resume is not None and resume.stage > stage:
            continue  # finished before the checkpoint; its history is in resume.earlier
        here = resume if resume is not None and resume.stage == stage else None
        if here is not None:
            earlier, init = list(here.earlier) or earlier, here.pixels
        elif pixels is None:
            init = np.concatenate([_initial(c, params, size) for c in contents])
        else:
            init = tf.clip_by_value(tf.image.resize(pixels, size, method="bicubic"), 0.0, 255.0).numpy()
        targets = _batch_targets(optimizer, contents, styles, keys, params, cache, precision, size)
        save = None if checkpoint is None else _stage_saver(checkpoint, stage, tuple(earlier))
        pixels, histories = optimizer.run(init, targets, params.with_overrides({"steps": steps}), report, precision,
                                          here, save, every)
        earlier = [before + tuple(h) for before, h in zip(earlier, histories)]
    return pixels, earlier, targets


def _stage_saver(checkpoint: Callable[[State], None], stage: int, earlier: tuple) -> Callable[[State], None]:
    return lambda state: checkpoint(dataclasses.replace(state, stage=stage, earlier=earlier))


class _Staged:
    """Progress over all stages: step numbers continue from stage to stage."""

    def __init__(self, on_step: ProgressCallback | None, steps: int):
        self.on_step, self.steps, self.done = on_step, steps, 0

    def __call__(self, progress: Progress) -> None:
        if self.on_step is not None:
            self.on_step(Progress(self.done + progress.step, self.steps, progress.losses))


def _stage_sizes(final: tuple[int, int], stages: int) -> list[tuple[int, int]]:
    """Each stage twice the previous one's size, the last at `final` (sides at least MIN_SIDE)."""
    return [tuple(max(MIN_SIDE, round(side / 2 ** (stages - 1 - k))) for side in final) for k in range(stages)]


def _written_terms(optimizer, contents, styles, keys, written, params, cache, targets=None) -> dict[str, np.ndarray]:
    """fp32 loss terms ([B] each) of the images as written, at the optimization size."""
    size = _opt_size(contents[0], params)
    if targets is None:
        targets = _batch_targets(optimizer, contents, styles, keys, params, cache, "fp32", size)
    return optimizer.evaluate(np.concatenate([_prepared(w, params, size) for w in written]), targets, params)


def _batch_targets(optimizer, contents, styles, keys, params, cache, precision: str, size) -> Targets:
    """One batch's targets at `size`, item by item (each style's Grams from the cache when seen)."""
    return _stack([_targets(optimizer, c, s, params, cache, k, precision, size) for c, s, k in zip(contents, styles, keys)])


def _cells(picture: Picture, params: StyleParams, name: str = "content") -> list[Picture]:
    """The picture's grid cells (itself alone without a grid)."""
    columns, rows = params.cells()
    return [picture] if (columns, rows) == (1, 1) else images.split(picture, columns, rows, name)


def _join(cells: list[Picture], params: StyleParams) -> Picture:
    return cells[0] if len(cells) == 1 else images.join(cells, params.cells()[0])


def _mean_history(histories: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """A sheet's loss per step: its cells' mean (a cell stopped early holds its last value)."""
    if len(histories) == 1:
        return tuple(histories[0])
    steps = max(len(h) for h in histories)
    return tuple(float(np.mean([h[min(i, len(h) - 1)] for h in histories])) for i in range(steps))


def _opt_size(content: Picture, params: StyleParams) -> tuple[int, int]:
    """Content's size scaled down to `max_size` on its long side, never up, except that each side
    is at least the network's MIN_SIDE (tiny and thin sprites are stretched for the optimization only)."""
    height, width = images.fit(content.height, content.width, params.max_size)
    return max(height, MIN_SIDE), max(width, MIN_SIDE)


def _style_pixels(style: Picture, long_side: int, params: StyleParams) -> np.ndarray:
    """The style image scaled (up or down) so its long side is `style_scale` times the
    optimization's: larger gives coarser strokes. Luminance only with `preserve_color`."""
    scale = long_side * params.style_scale / max(style.height, style.width)
    height, width = (max(MIN_SIDE, round(side * scale)) for side in (style.height, style.width))
    rgb = images.resize(style.rgb, height, width)
    return images.gray(rgb) if params.preserve_color else rgb


def _prepared(picture: Picture, params: StyleParams, size: tuple[int, int]) -> np.ndarray:
    """[1, h, w, 3] float32 pixels at `size`: the one path inputs and outputs take
    (luminance in all channels with `preserve_color`, as in Gatys et al. 2016's luminance-only
    transfer: the optimization never sees colour, the output takes the content's)."""
    rgb = images.resize(picture.rgb, *size)
    return (images.gray(rgb) if params.preserve_color else rgb)[None].astype(np.float32)


def _style_set(style: Any) -> list[Picture]:
    """One style image, or a list or tuple of them to blend (params.style_blend)."""
    return [images.to_picture(s, "style") for s in (style if isinstance(style, (list, tuple)) else [style])]


def _targets(optimizer, content, styles, params, cache, key, precision: str, size: tuple[int, int]) -> Targets:
    """Content features and style Grams at `size` through the network in `precision`. Several
    styles' Grams are blended by params.style_blend; each comes from the cache when that style was
    seen at this size and precision (`key`: one key, or one per style)."""
    height, width = size
    keys = key if isinstance(key, tuple) else ((key,) if len(styles) == 1 else (None,) * len(styles))
    per_style = [_grams(optimizer, style, max(height, width), params, cache, k, precision)
                 for style, k in zip(styles, keys)]
    weights = params.blend_weights(len(styles))
    grams = {n: tf.add_n([w * g[n] for w, g in zip(weights, per_style)]) for n in per_style[0]}
    features = optimizer.content_features(_prepared(content, params, size), precision, params.tileable)
    mask = _mask(content, (height, width), params)
    return Targets(features, grams, None if mask is None else tf.constant(mask))


def _grams(optimizer, style, long_side, params, cache, key, precision: str) -> dict[str, tf.Tensor]:
    style_px = _style_pixels(style, long_side, params)[None].astype(np.float32)
    style_mask = _mask(style, style_px.shape[1:3], params)
    compute = lambda: optimizer.style_grams(style_px, precision, style_mask)  # noqa: E731
    cache_key = (key, style_px.shape, precision, params.alpha_mode)
    return compute() if cache is None or key is None else cache.get(cache_key, compute)


def _mask(picture: Picture, size: tuple[int, int], params: StyleParams) -> np.ndarray | None:
    """[1, h, w, 1] opacity in [0, 1] at `size` with alpha_mode="mask" and an alpha; else None."""
    if params.alpha_mode != "mask" or picture.alpha is None:
        return None
    alpha = images.resize(np.repeat(picture.alpha[..., None], 3, axis=2), *size)[..., :1]
    return (alpha[None] / 255.0).astype(np.float32)


def _initial(content: Picture, params: StyleParams, size: tuple[int, int]) -> np.ndarray:
    """Start from the content (the seed) or, with init="noise", from seeded uniform noise."""
    pixels = _prepared(content, params, size)
    if params.init == "noise":
        rng = np.random.default_rng(params.seed)
        pixels = rng.uniform(0.0, 255.0, pixels.shape).astype(np.float32)
    return pixels


def _restore(content: Picture, pixels: np.ndarray, params: StyleParams) -> Picture:
    """Quantize to 8 bits, scale back to the content's exact size, re-attach its alpha; with
    `preserve_color`, the result's luminance under the content's own colours (full resolution)."""
    rgb = images.resize(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), content.height, content.width)
    if params.preserve_color:
        rgb = images.with_luminance(content.rgb, images.luminance(rgb))
    if params.alpha_mode == "mask" and content.alpha is not None:
        clear = content.alpha == 0
        rgb = rgb.copy()
        rgb[clear] = content.rgb[clear]  # fully transparent pixels keep their colour exactly
    return Picture(rgb=rgb, alpha=content.alpha)


def _stack(items: list[Targets]) -> Targets:
    """Per-item targets ([1, ...] each) as one batch ([B, ...]); items without a mask count as opaque."""
    if len(items) == 1:
        return items[0]
    masks = None
    if any(t.mask is not None for t in items):
        opaque = tf.ones_like(next(t.mask for t in items if t.mask is not None))
        masks = tf.concat([opaque if t.mask is None else t.mask for t in items], axis=0)
    return Targets(
        content=tf.concat([t.content for t in items], axis=0),
        grams={name: tf.concat([t.grams[name] for t in items], axis=0) for name in items[0].grams},
        mask=masks,
    )
