"""One item end to end on pixels: prepare -> optimize -> quantize -> restore size and alpha.

`stylize()` is the public entry point. It takes arrays, PIL images or `Picture`s and returns a
`Result` whose losses are those of the image as written (8-bit, at the content's own size), so
anyone can recompute them from the stored file with `evaluate()`. No Ray, no storage, no printing.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np
import tensorflow as tf

from batch_nst import images
from batch_nst.images import Picture
from batch_nst.losses import Targets
from batch_nst.optimize import Optimizer, ProgressCallback
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
    steps: int
    height: int  # size the optimization ran at
    width: int
    seconds: float  # the whole call
    optimize_seconds: float  # inside the optimization steps only
    precision: str  # the network's arithmetic that ran: "fp32" or "bf16"

    def to_pil(self):
        """The image as a PIL image (RGB, or RGBA where the content had alpha)."""
        from PIL import Image

        if self.image.alpha is None:
            return Image.fromarray(self.image.rgb, "RGB")
        return Image.fromarray(np.dstack([self.image.rgb, self.image.alpha]), "RGBA")


class StyleCache:
    """Gram targets per (style key, size), least recently used dropped first.

    A library that shares a few styles computes each style's Grams once per process.
    """

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._grams: OrderedDict[Hashable, dict[str, tf.Tensor]] = OrderedDict()
        self.misses = 0

    def get(self, key: Hashable, compute) -> dict[str, tf.Tensor]:
        if key in self._grams:
            self._grams.move_to_end(key)
            return self._grams[key]
        self.misses += 1
        grams = self._grams[key] = compute()
        if len(self._grams) > self.capacity:
            self._grams.popitem(last=False)
        return grams


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
    started = time.perf_counter()
    optimizer = extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
    content_pic, style_pic = images.to_picture(content, "content"), images.to_picture(style, "style")
    precision = effective_precision(params.precision)
    targets = _targets(optimizer, content_pic, style_pic, params, style_cache, style_key, precision)
    init = _initial(content_pic, params)
    optimize_started = time.perf_counter()
    pixels, history = optimizer.run(init, targets, params, on_step, precision)
    optimize_seconds = time.perf_counter() - optimize_started
    written = _restore(content_pic, pixels[0])
    if precision != "fp32":  # recorded losses are always fp32, comparable across precisions
        targets = _targets(optimizer, content_pic, style_pic, params, style_cache, style_key, "fp32")
    losses = _losses(optimizer, written, targets, params)
    height, width = _opt_size(content_pic, params)
    return Result(written, losses, tuple(history), params.steps, height, width,
                  time.perf_counter() - started, optimize_seconds, precision)


def evaluate(
    content: Any, style: Any, output: Any, *, params: StyleParams, extractor: Extractor | Optimizer
) -> Losses:
    """Losses of `output` (e.g. a stored result) against content and style under `params`."""
    optimizer = extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
    content_pic, style_pic = images.to_picture(content, "content"), images.to_picture(style, "style")
    targets = _targets(optimizer, content_pic, style_pic, params, None, None, "fp32")
    return _losses(optimizer, images.to_picture(output, "output"), targets, params)


def _opt_size(content: Picture, params: StyleParams) -> tuple[int, int]:
    """Content's size scaled down to `max_size` on its long side, never up, except that each side
    is at least the network's MIN_SIDE (tiny and thin sprites are stretched for the optimization only)."""
    height, width = images.fit(content.height, content.width, params.max_size)
    return max(height, MIN_SIDE), max(width, MIN_SIDE)


def _style_pixels(style: Picture, long_side: int) -> np.ndarray:
    """The style image scaled (up or down) so its long side matches the optimization's."""
    scale = long_side / max(style.height, style.width)
    height, width = (max(MIN_SIDE, round(side * scale)) for side in (style.height, style.width))
    return images.resize(style.rgb, height, width)


def _prepared(picture: Picture, params: StyleParams) -> np.ndarray:
    """[1, h, w, 3] float32 pixels at the optimization size: the one path inputs and outputs take."""
    return images.resize(picture.rgb, *_opt_size(picture, params))[None].astype(np.float32)


def _targets(optimizer, content, style, params, cache, key, precision: str) -> Targets:
    """Content features and style Grams through the network in `precision` (Grams from the cache
    when this style was seen at this size and precision)."""
    height, width = _opt_size(content, params)
    style_px = _style_pixels(style, max(height, width))[None].astype(np.float32)
    compute = lambda: optimizer.style_grams(style_px, precision)  # noqa: E731
    grams = compute() if cache is None or key is None else cache.get((key, style_px.shape, precision), compute)
    return Targets(content=optimizer.content_features(_prepared(content, params), precision), grams=grams)


def _initial(content: Picture, params: StyleParams) -> np.ndarray:
    """Start from the content (the seed) or, with init="noise", from seeded uniform noise."""
    pixels = _prepared(content, params)
    if params.init == "noise":
        rng = np.random.default_rng(params.seed)
        pixels = rng.uniform(0.0, 255.0, pixels.shape).astype(np.float32)
    return pixels


def _restore(content: Picture, pixels: np.ndarray) -> Picture:
    """Quantize to 8 bits, scale back to the content's exact size, re-attach its alpha."""
    rgb = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    rgb = images.resize(rgb, content.height, content.width)
    return Picture(rgb=rgb, alpha=content.alpha)


def _losses(optimizer: Optimizer, written: Picture, targets: Targets, params: StyleParams) -> Losses:
    terms = optimizer.evaluate(_prepared(written, params), targets, params)
    return Losses(**{name: float(value[0]) for name, value in terms.items()})
