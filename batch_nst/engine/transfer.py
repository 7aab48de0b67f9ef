"""One item end to end on pixels: prepare -> optimize -> quantize -> restore size and alpha.

`stylize()` is the public entry point. It takes arrays, PIL images or `Picture`s and returns a
`Result` whose losses are those of the image as written (8-bit, at the content's own size), so
anyone can recompute them from the stored file with `evaluate()`, and likewise its style distance
(comparable across items of any size) with `style_distance()`. No Ray, no storage, no printing.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from batch_nst.assets import animation, images, quality
from batch_nst.engine import distance, prepare, sequence
from batch_nst.assets.animation import Animation
from batch_nst.engine.batch import Batch, batch_precision
from batch_nst.engine.checkpoint import State
from batch_nst.assets.images import Picture
from batch_nst.engine.optimize import Optimizer, ProgressCallback
from batch_nst.engine.style_cache import StyleCache
from batch_nst.params import TERMS, StyleParams
from batch_nst.engine.vgg import Extractor
from batch_nst.errors import DivergedError

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
    quality: quality.Figures  # speckle of `image` and of the content, edges kept (assets.quality)
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
    max_cells: int | None = None,
) -> list[Result]:
    """Stylize several items in one batch: each gets exactly its solo result (up to round-off).

    All contents must share one optimization size (`batch_key`); each item keeps its own style
    targets, losses, history and early stop. Many small sprites per step use the hardware far
    better than one at a time. A sprite sheet (`params.grid`) enters the batch as its cells, all
    with the sheet's style targets, and comes out reassembled, its losses and history the means of
    its cells'. An animation (an `animation.Animation`, or a sheet with `params.frames`) enters as
    its frames, tied by the temporal term, and comes out in its own container. A lone animation of
    more frames than `max_cells` (a memory bound) runs `max_cells` frames at a time.
    `checkpoint`, `checkpoint_every` and `resume` pass through to `Optimizer.run` (one state entry
    per cell): a preempted item continues where its last checkpoint stood.
    """
    started = time.perf_counter()
    optimizer = _as_optimizer(extractor)
    units = [prepare.content_cells(c, params) for c in contents]
    keys = list(style_keys) if style_keys is not None else [None] * len(units)
    if len(styles) != len(units) or len(keys) != len(units):
        raise ValueError(f"one batch needs a style per content, got {len(units)} contents, {len(styles)} styles")
    style_sets = [prepare.style_set(s) for s in styles]
    run = _Run(optimizer, params, style_cache, on_step, resume, checkpoint, checkpoint_every)
    optimize_started = time.perf_counter()
    cells, linked = units[0]
    if params.strength == 0:
        written, histories, terms = run.unchanged(contents, units, style_sets, keys)
    elif len(units) == 1 and linked and max_cells is not None and len(cells) > max_cells:  # a long animation
        written, histories, terms = run.chunked(contents[0], cells, style_sets[0], keys[0], max_cells)
    else:
        written, histories, terms = run.together(contents, units, style_sets, keys)
    optimize_seconds = (time.perf_counter() - optimize_started) / len(units)  # with the written images' losses
    parts = _parts([cells for cells, _ in units])
    images_out = [_assemble(content, written[part], params) for content, part in zip(contents, parts)]
    distances = distance.style_distances(images_out, style_sets, params=params, optimizer=optimizer,
                                         cache=style_cache, keys=keys)
    height, width = prepare.opt_size(cells[0], params)
    seconds = (time.perf_counter() - started) / len(units)
    results = []
    for content, part, image, style_distance in zip(contents, parts, images_out, distances):
        history = prepare.mean_history(histories[part])
        source = content if isinstance(content, Animation) else images.to_picture(content)
        results.append(Result(
            image=image, losses=Losses(**{k: float(np.mean(v[part])) for k, v in terms.items()}),
            style_distance=style_distance, quality=quality.figures(source, image), history=history,
            steps=len(history),
            height=height, width=width, seconds=seconds, optimize_seconds=optimize_seconds,
            precision=run.precision))
    return results


@dataclass(frozen=True)
class _Run:
    """What every batch of one `stylize_many` call shares."""

    optimizer: Optimizer
    params: StyleParams
    cache: Any
    on_step: ProgressCallback | None
    resume: State | None
    checkpoint: Callable[[State], None] | None
    every: int

    @property
    def precision(self) -> str:
        return batch_precision(self.params)

    def batch(self, cells: list[Picture], styles: list[Picture], key, previous: list) -> Batch:
        return Batch.of(self.optimizer, self.params, self.cache, [(cell, styles, key) for cell in cells], previous)

    def together(self, contents: Sequence[Any], units: list[tuple[list[Picture], bool]], style_sets: list,
                 keys: list) -> tuple:
        """Every content's cells in one batch: (written cells, histories, recorded terms per cell)."""
        items = [(cell, st, k) for (cells, _), st, k in zip(units, style_sets, keys) for cell in cells]
        previous = [p for cells, linked in units for p in sequence.links(cells, linked)]
        batch = Batch.of(self.optimizer, self.params, self.cache, items, previous)
        resume = self.resume
        if resume is not None and (resume.finished is not None or resume.pixels.shape[0] != len(items)):
            resume = None  # saved in chunks of another size (the memory bound changed): start over
        pixels, histories, final = batch.optimize(self.on_step, resume, self.checkpoint, self.every)
        _check_finite(pixels, histories)
        restored = [prepare.restore(cell, px, self.params) for cell, px in zip(batch.contents, pixels)]
        parts = _parts([cells for cells, _ in units])
        written = [cell for content, part in zip(contents, parts) for cell in _stored(content, restored[part],
                                                                                      self.params)]
        # Recorded losses are always fp32 on the images as written, comparable across precisions.
        return written, histories, batch.written_terms(written, final if batch.precision == "fp32" else None)

    def unchanged(self, contents: Sequence[Any], units: list[tuple[list[Picture], bool]], style_sets: list,
                  keys: list) -> tuple:
        """strength 0 is the content unchanged, exactly, and no step is taken: from the content the
        loss is zero, but the targets' round-off (bf16, or another kernel than the step's) is not,
        and Adam's normalized steps would turn it into pixel noise of the learning rate's size.
        The content's own losses are recorded, as for any written image."""
        items = [(cell, st, k) for (cells, _), st, k in zip(units, style_sets, keys) for cell in cells]
        previous = [p for cells, linked in units for p in sequence.links(cells, linked)]
        written = [cell for content, (cells, _) in zip(contents, units) for cell in _stored(content, cells, self.params)]
        batch = Batch.of(self.optimizer, self.params, self.cache, items, previous)
        return written, [() for _ in written], batch.written_terms(written)

    def chunked(self, content: Any, frames: list[Picture], styles: list[Picture], key, chunk: int) -> tuple:
        """One animation `chunk` frames at a time (sequence.run_chunks); the recorded terms chunk by
        chunk too, each chunk's first frame tied to the frame before as written, so they equal
        what `evaluate` gives the stored animation whole."""
        def optimize(cells, previous, on_step, resume, checkpoint):
            pixels, histories, _ = self.batch(cells, styles, key, previous).optimize(on_step, resume, checkpoint,
                                                                                      self.every)
            _check_finite(pixels, histories)
            return pixels, histories

        pixels, histories = sequence.run_chunks(optimize, frames, chunk, self.on_step, self.resume, self.checkpoint)
        written = _stored(content, [prepare.restore(cell, px, self.params) for cell, px in zip(frames, pixels)],
                          self.params)
        size, terms = prepare.opt_size(frames[0], self.params), []
        for start in range(0, len(frames), chunk):
            before = sequence.Previous(frames[start - 1], prepare.prepared(written[start - 1], self.params, size))
            cells = frames[start:start + chunk]
            batch = self.batch(cells, styles, key, sequence.links(cells, True, before if start else None))
            terms.append(batch.written_terms(written[start:start + chunk]))
        return written, histories, {name: np.concatenate([t[name] for t in terms]) for name in terms[0]}


def _check_finite(pixels: Sequence[np.ndarray], histories: Sequence[Sequence[float]]) -> None:
    """DivergedError when a loss or a final pixel is inf or NaN. Quantizing would turn such pixels
    into a black image whose written losses look fine: the item must fail instead, and say why.
    (A non-finite gradient shows here too: the step after it gives non-finite pixels and loss.)"""
    for cell, history in enumerate(histories):
        bad = np.flatnonzero(~np.isfinite(np.asarray(history, np.float64)))
        if bad.size:
            raise DivergedError(f"the loss became {history[bad[0]]} at step {bad[0] + 1} (cell {cell}): a weight "
                                "too large for float32 arithmetic; lower style_weight, content_weight, tv_weight "
                                "or temporal_weight")
    if not all(np.isfinite(p).all() for p in pixels):
        raise DivergedError("the optimization's pixels became inf or NaN (a non-finite gradient): a weight too "
                            "large for float32 arithmetic; lower style_weight, content_weight, tv_weight or "
                            "temporal_weight")


def _stored(content: Any, written: list[Picture], params: StyleParams) -> list[Picture]:
    """An animation's written cells as its container gives them back (a GIF's palette) and the
    losses see them (`animation.hidden_as_content`), so the recorded losses are those of the
    stored file; other cells as they are."""
    if not isinstance(content, Animation):
        return written
    frames = animation.as_stored(content.with_frames(prepare.frames_of(content, written, params)))
    return prepare.cells_of(content, animation.hidden_as_content(frames, content), params)


def _assemble(content: Any, written: list[Picture], params: StyleParams) -> Picture | Animation:
    """The written cells as the content came: an animation in its container, a sheet joined."""
    if isinstance(content, Animation):
        return content.with_frames(prepare.frames_of(content, written, params))
    return prepare.join(written, params)


def _parts(sheets: list[list[Picture]]) -> list[slice]:
    """Each content's cells among all the batch's cells."""
    ends = np.cumsum([len(sheet) for sheet in sheets]).tolist()
    return [slice(end - len(sheet), end) for sheet, end in zip(sheets, ends)]


def batch_key(content: Picture | Animation, params: StyleParams, name: str = "content") -> tuple:
    """Items with equal keys can share a batch: same optimization size, same parameters, same
    number of cells (a sprite sheet's cells, an animation's frames; ImageError naming `name` when
    the sheet does not split into params.grid)."""
    cells, _ = prepare.content_cells(content, params, name)
    return prepare.opt_size(cells[0], params), params, len(cells)


def evaluate(
    content: Any, style: Any, output: Any, *, params: StyleParams, extractor: Extractor | Optimizer
) -> Losses:
    """Losses of `output` (e.g. a stored result) against content and style under `params`; an
    animation's colour under alpha 0 as the recorded losses see it (`animation.hidden_as_content`)."""
    cells, linked = prepare.content_cells(content, params)
    outputs, _ = prepare.content_cells(output, params, "output")
    if isinstance(content, Animation) and len(outputs) == len(cells):
        frames = animation.hidden_as_content(prepare.frames_of(content, outputs, params), content)
        outputs = prepare.cells_of(content, frames, params)
    styles = prepare.style_set(style)
    batch = Batch.of(_as_optimizer(extractor), params, None, [(cell, styles, None) for cell in cells],
                     sequence.links(cells, linked))
    terms = batch.written_terms(outputs)
    return Losses(**{name: float(np.mean(value)) for name, value in terms.items()})


def style_distance(output: Any, style: Any, *, params: StyleParams, extractor: Extractor | Optimizer) -> float:
    """The fp32 Gram distance of `output` (e.g. a stored result) to `style` (a list blends, as in
    `stylize`), both at one reference long side, so it compares across items of any size; a sprite
    sheet's is the mean over its cells. Equals the `Result.style_distance` of the item as written."""
    return distance.style_distances([output], [style], params=params, optimizer=_as_optimizer(extractor))[0]


def _as_optimizer(extractor: Extractor | Optimizer) -> Optimizer:
    return extractor if isinstance(extractor, Optimizer) else Optimizer(extractor)
