"""Animations in the engine: frames tied by the temporal term, run in chunks that fit memory.

An animation (an animated GIF, APNG or WebP, or a sheet's cells with `params.frames`) enters a
batch as its frames, in order. Each frame but the first has a `Previous`: the content frame before
it, and the stylized frame before it where that one is not in the same batch (the anchor). From
them come the temporal targets (`losses.temporal_loss`): consecutive output frames are held
together where consecutive content frames agree, so still backgrounds stay still and moving parts
move. Frames that do not fit one batch run in chunks, each anchored on the last frame of the one
before; a checkpoint carries the finished chunks' frames. No I/O here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from batch_nst.engine import prepare
from batch_nst.engine.checkpoint import State
from batch_nst.assets.images import Picture
from batch_nst.engine.optimize import ProgressCallback

# Content change (RMS over channels and alpha, in 0..255 levels) at which a pixel's tie has fallen
# to 1/e: the change of a moving edge is tens to hundreds of levels, resampling noise a few.
SIGMA = 12.0


@dataclass(frozen=True)
class Previous:
    """The frame before an item: its content, and its stylized pixels when it is not the item
    before in the same batch ([1, H, W, 3] float at the optimization's final size; None when it is)."""

    content: Picture
    pixels: np.ndarray | None = None


def links(cells: list[Picture], linked: bool, first: Previous | None = None) -> list[Previous | None]:
    """Each cell's `Previous`: none for independent cells (a sprite sheet's), else the cell before,
    and `first` (an anchor, or None for an animation's first frame) for the first."""
    if not linked:
        return [None] * len(cells)
    return [first, *(Previous(cell) for cell in cells[:-1])]


def targets(previous: list[Previous | None], contents: list[Picture], params, size: tuple[int, int]) -> dict | None:
    """The batch's temporal targets at `size` (see losses.temporal_loss); None when no item has a
    frame before it (still images: the term is then zero and costs nothing)."""
    if all(p is None for p in previous):
        return None
    height, width = size
    weight = np.zeros((len(contents), height, width, 1), np.float32)
    linked = np.zeros((len(contents), 1, 1, 1), np.float32)
    anchor = np.zeros((len(contents), height, width, 3), np.float32)
    for b, (before, content) in enumerate(zip(previous, contents)):
        if before is None:
            continue
        weight[b] = agreement(before.content, content, params, size)[0]
        if before.pixels is None:
            linked[b] = 1.0
        else:
            anchor[b] = before.pixels[0] if before.pixels.shape[1:3] == size else prepare.upscaled(before.pixels, size)[0]
    return {"weight": weight, "linked": linked, "anchor": anchor}


def agreement(before: Picture, after: Picture, params, size: tuple[int, int]) -> np.ndarray:
    """[1, H, W, 1] in (0, 1]: 1 where two consecutive content frames agree at `size`, falling
    as exp(-(change / SIGMA)^2) where they differ (colour as the optimization sees it, and alpha)."""
    squares = np.square(prepare.prepared(after, params, size) - prepare.prepared(before, params, size))
    opacities = [prepare.opacity(p, size) for p in (after, before)]
    if all(o is not None for o in opacities):
        squares = np.concatenate([squares, np.square(255.0 * (opacities[0] - opacities[1]))], axis=-1)
    rms = np.sqrt(np.mean(squares, axis=-1, keepdims=True))
    return np.exp(-np.square(rms / SIGMA)).astype(np.float32)


def run_chunks(optimize: Callable[[list[Picture], list[Previous | None], Any, Any, Any], tuple],
               cells: list[Picture], chunk: int, on_step: ProgressCallback | None, resume: State | None,
               checkpoint: Callable[[State], None] | None) -> tuple[np.ndarray, list]:
    """One animation's frames `chunk` at a time, each chunk anchored on the stylized frame before it.

    `optimize(cells, previous, on_step, resume, checkpoint)` runs one batch and returns its
    (pixels, histories); progress restarts with each chunk. A checkpoint of a chunk carries the frames finished before it
    (`State.finished`), so a resumed animation skips them; a chunk whose saved state has another
    size (the worker's memory bound changed) restarts, its finished frames kept.
    """
    finished = [] if resume is None or resume.finished is None else list(resume.finished)
    histories = list(resume.finished_histories) if resume is not None else []
    here = resume
    while len(finished) < len(cells):
        start = len(finished)
        part = cells[start:start + chunk]
        first = Previous(cells[start - 1], finished[-1][None]) if start else None
        if here is not None and here.pixels.shape[0] != len(part):
            here = None
        save = None if checkpoint is None else _carrying(checkpoint, np.stack(finished) if finished else None,
                                                         tuple(histories))
        pixels, part_histories = optimize(part, links(part, True, first), on_step, here, save)
        finished += list(pixels)
        histories += list(part_histories)
        here = None
    return np.stack(finished), histories


def _carrying(checkpoint: Callable[[State], None], finished: np.ndarray | None, histories: tuple) -> Callable:
    return lambda state: checkpoint(dataclasses.replace(state, finished=finished, finished_histories=histories))
