"""One item end to end on pixels: prepare -> optimize -> quantize -> restore size and alpha.

`stylize()` is the public entry point. It takes arrays, PIL images or `Picture`s and returns a
`Result` whose losses are those of the image as written (8-bit, at the content's own size), so
anyone can recompute them from the stored file with `evaluate()`. No Ray, no storage, no printing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import tensorflow as tf

from batch_nst import images
from batch_nst.images import Picture
from batch_nst.losses import Targets
from batch_nst.optimize import Optimizer, ProgressCallback, State
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
    better than one at a time. `checkpoint`, `checkpoint_every` and `resume` pass through to
    `Optimizer.run`: a preempted item continues where its last checkpoint stood.
    """
    started = time.perf_counter()
    optimizer = extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
    content_pics = [images.to_picture(c, "content") for c in contents]
    style_pics = [_style_set(s) for s in styles]
    keys = list(style_keys) if style_keys is not None else [None] * len(content_pics)
    sizes = {_opt_size(pic, params) for pic in content_pics}
    if len(sizes) != 1 or len(style_pics) != len(content_pics) or len(keys) != len(content_pics):
        raise ValueError(f"one batch needs one optimization size and a style per content, got sizes {sizes}")
    precision = effective_precision(params.precision)

    def targets(prec: str) -> Targets:
        return _stack([_targets(optimizer, c, s, params, style_cache, k, prec)
                       for c, s, k in zip(content_pics, style_pics, keys)])

    run_targets = targets(precision)
    init = np.concatenate([_initial(pic, params) for pic in content_pics])
    optimize_started = time.perf_counter()
    pixels, histories = optimizer.run(init, run_targets, params, on_step, precision, resume, checkpoint,
                                      checkpoint_every)
    optimize_seconds = (time.perf_counter() - optimize_started) / len(content_pics)
    written = [_restore(pic, px, params) for pic, px in zip(content_pics, pixels)]
    # Recorded losses are always fp32 on the images as written, comparable across precisions.
    eval_targets = run_targets if precision == "fp32" else targets("fp32")
    terms = optimizer.evaluate(np.concatenate([_prepared(w, params) for w in written]), eval_targets, params)
    height, width = sizes.pop()
    seconds = (time.perf_counter() - started) / len(content_pics)
    return [
        Result(image, Losses(**{k: float(v[b]) for k, v in terms.items()}), tuple(history), len(history),
               height, width, seconds, optimize_seconds, precision)
        for b, (image, history) in enumerate(zip(written, histories))
    ]


def batch_key(content: Picture, params: StyleParams) -> tuple:
    """Items with equal keys can share a batch: same optimization size, same parameters."""
    return (_opt_size(content, params), params)


def evaluate(
    content: Any, style: Any, output: Any, *, params: StyleParams, extractor: Extractor | Optimizer
) -> Losses:
    """Losses of `output` (e.g. a stored result) against content and style under `params`."""
    optimizer = extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
    content_pic, style_pic = images.to_picture(content, "content"), _style_set(style)
    targets = _targets(optimizer, content_pic, style_pic, params, None, None, "fp32")
    terms = optimizer.evaluate(_prepared(images.to_picture(output, "output"), params), targets, params)
    return Losses(**{name: float(value[0]) for name, value in terms.items()})


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


def _prepared(picture: Picture, params: StyleParams) -> np.ndarray:
    """[1, h, w, 3] float32 pixels at the optimization size: the one path inputs and outputs take
    (luminance in all channels with `preserve_color`, as in Gatys et al. 2016's luminance-only
    transfer: the optimization never sees colour, the output takes the content's)."""
    rgb = images.resize(picture.rgb, *_opt_size(picture, params))
    return (images.gray(rgb) if params.preserve_color else rgb)[None].astype(np.float32)


def _style_set(style: Any) -> list[Picture]:
    """One style image, or a list or tuple of them to blend (params.style_blend)."""
    return [images.to_picture(s, "style") for s in (style if isinstance(style, (list, tuple)) else [style])]


def _targets(optimizer, content, styles, params, cache, key, precision: str) -> Targets:
    """Content features and style Grams through the network in `precision`. Several styles'
    Grams are blended by params.style_blend; each comes from the cache when that style was seen
    at this size and precision (`key`: one key, or one per style)."""
    height, width = _opt_size(content, params)
    keys = key if isinstance(key, tuple) else ((key,) if len(styles) == 1 else (None,) * len(styles))
    per_style = [_grams(optimizer, style, max(height, width), params, cache, k, precision)
                 for style, k in zip(styles, keys)]
    weights = params.blend_weights(len(styles))
    grams = {n: tf.add_n([w * g[n] for w, g in zip(weights, per_style)]) for n in per_style[0]}
    features = optimizer.content_features(_prepared(content, params), precision, params.tileable)
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


def _initial(content: Picture, params: StyleParams) -> np.ndarray:
    """Start from the content (the seed) or, with init="noise", from seeded uniform noise."""
    pixels = _prepared(content, params)
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
