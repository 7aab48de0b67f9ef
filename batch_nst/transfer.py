"""One item end to end on pixels: prepare -> optimize -> quantize -> restore size and alpha.

`stylize()` is the public entry point. It takes arrays, PIL images or `Picture`s and returns a
`Result` whose losses are those of the image as written (8-bit, at the content's own size), so
anyone can recompute them from the stored file with `evaluate()`, and likewise its style distance
(comparable across items of any size) with `style_distance()`. No Ray, no storage, no printing.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from batch_nst import distance, images, prepare
from batch_nst.batch import Batch
from batch_nst.checkpoint import State
from batch_nst.images import Picture
from batch_nst.optimize import Optimizer, ProgressCallback
from batch_nst.params import TERMS, StyleParams
from batch_nst.vgg import Extractor

Losses = dataclasses.make_dataclass(
    "Losses", [(name, float) for name in TERMS], frozen=True,
    namespace={"__doc__": "Loss terms of one image, one field per params.TERMS: `total` weighted, the others "
                          "unweighted (see losses.loss_terms)."})


@dataclass(frozen=True)
class Result:
    """A stylized image and how it was made."""

    image: Picture  # content's exact width and height, alpha restored
    losses: Losses  # of `image` as written (8-bit)
    style_distance: float  # of `image` to its style at distance.REFERENCE_SIDE (see `style_distance`)
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
    sheets = [prepare.cells(images.to_picture(c, "content"), params) for c in contents]
    keys = list(style_keys) if style_keys is not None else [None] * len(sheets)
    if len(styles) != len(sheets) or len(keys) != len(sheets):
        raise ValueError(f"one batch needs a style per content, got {len(sheets)} contents, {len(styles)} styles")
    style_sets = [prepare.style_set(s) for s in styles]
    batch = Batch.of(_as_optimizer(extractor), params, style_cache,
                     [(cell, st, k) for sheet, st, k in zip(sheets, style_sets, keys) for cell in sheet])
    optimize_started = time.perf_counter()
    pixels, histories, final_targets = batch.optimize(on_step, resume, checkpoint, checkpoint_every)
    optimize_seconds = (time.perf_counter() - optimize_started) / len(sheets)
    written = [prepare.restore(cell, px, params) for cell, px in zip(batch.contents, pixels)]
    # Recorded losses are always fp32 on the images as written, comparable across precisions.
    terms = batch.written_terms(written, final_targets if batch.precision == "fp32" else None)
    joined = [prepare.join(written[part], params) for part in _parts(sheets)]
    distances = distance.style_distances(joined, style_sets, params=params, optimizer=batch.optimizer,
                                         cache=style_cache, keys=keys)
    height, width = batch.size
    seconds = (time.perf_counter() - started) / len(sheets)
    results = []
    for part, image, style_distance in zip(_parts(sheets), joined, distances):
        history = prepare.mean_history(histories[part])
        results.append(Result(
            image, Losses(**{k: float(np.mean(v[part])) for k, v in terms.items()}), style_distance,
            history, len(history), height, width, seconds, optimize_seconds, batch.precision))
    return results


def _parts(sheets: list[list[Picture]]) -> list[slice]:
    """Each sheet's cells among all the batch's cells."""
    ends = np.cumsum([len(sheet) for sheet in sheets]).tolist()
    return [slice(end - len(sheet), end) for sheet, end in zip(sheets, ends)]


def batch_key(content: Picture, params: StyleParams, name: str = "content") -> tuple:
    """Items with equal keys can share a batch: same optimization size, same parameters (a sprite
    sheet's cell size; ImageError naming `name` when the sheet does not split into params.grid)."""
    return (prepare.opt_size(prepare.cells(content, params, name)[0], params), params)


def evaluate(
    content: Any, style: Any, output: Any, *, params: StyleParams, extractor: Extractor | Optimizer
) -> Losses:
    """Losses of `output` (e.g. a stored result) against content and style under `params`."""
    cells = prepare.cells(images.to_picture(content, "content"), params)
    outputs = prepare.cells(images.to_picture(output, "output"), params, "output")
    styles = prepare.style_set(style)
    batch = Batch.of(_as_optimizer(extractor), params, None, [(cell, styles, None) for cell in cells])
    terms = batch.written_terms(outputs)
    return Losses(**{name: float(np.mean(value)) for name, value in terms.items()})


def style_distance(output: Any, style: Any, *, params: StyleParams, extractor: Extractor | Optimizer) -> float:
    """The fp32 Gram distance of `output` (e.g. a stored result) to `style` (a list blends, as in
    `stylize`), both at one reference long side, so it compares across items of any size; a sprite
    sheet's is the mean over its cells. Equals the `Result.style_distance` of the item as written."""
    return distance.style_distances([output], [style], params=params, optimizer=_as_optimizer(extractor))[0]


def _as_optimizer(extractor: Extractor | Optimizer) -> Optimizer:
    return extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
