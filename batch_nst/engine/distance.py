"""How far an output's style is from its style image, on one scale for every item: `style_distances`.

The recorded style loss is measured at each item's own optimization size, so a 64 px sprite's and a
512 px splash's losses do not compare. This distance brings the output (as written) and its style
to one reference long side, REFERENCE_SIDE, and takes the fp32 Gram distance there, averaged over
the style layers: a library's items compare, and an item far from the others sharing its style is
an outlier worth a look. It never depends on style_scale or style_size (the style is taken at the
reference size itself) nor on the precision the item ran in.

It scores what a player sees: Grams weighted by the output's opacity, whatever `alpha_mode` the item
ran in. Under `restore` the optimization also stylizes the colour under transparent pixels, which no
one sees; counted, it made a walk frame (65% transparent) score 0.24 of its content's distance as
written, 0.66 as seen.
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

import numpy as np
from keras import ops

from batch_nst.engine import losses, prepare
from batch_nst.engine.batch import style_grams
from batch_nst.assets.images import Picture
from batch_nst.engine.optimize import Optimizer
from batch_nst.engine.vgg import Variant
from batch_nst.params import StyleParams

REFERENCE_SIDE = 256  # the long side both images are brought to, in pixels
CHUNK_PIXELS = 4 * REFERENCE_SIDE * REFERENCE_SIDE  # outputs through the network at once: a forward pass only
# An animation's distance is the mean over at most this many frames, evenly spaced: frames look
# alike, and every frame at the reference side cost 62 of 78 s of a 100-frame GIF's item.
SAMPLED_FRAMES = 8


def style_distances(outputs: Sequence[Any], styles: Sequence[Any], *, params: StyleParams, optimizer: Optimizer,
                    cache: Any = None, keys: Sequence[Hashable | None] | None = None) -> list[float]:
    """Each output's distance to its style (a list of styles is blended by params.style_blend).

    A sprite sheet (params.grid) gets the mean over its cells, an animation over a sample of its
    frames (`sampled`), each against the item's style.
    The styles' reference Grams go through `cache` under `keys` (as the optimization's targets do).
    """
    keys = list(keys) if keys is not None else [None] * len(outputs)
    sheets = [sampled(*prepare.content_cells(o, params, "output")) for o in outputs]
    targets = [style_grams(optimizer, params, cache, prepare.style_set(s), k, REFERENCE_SIDE, "fp32")
               for s, k in zip(styles, keys)]
    cells = [(cell, grams) for sheet, grams in zip(sheets, targets) for cell in sheet]
    per_cell = _cell_distances(optimizer, params, cells)
    out, start = [], 0
    for sheet in sheets:
        out.append(float(np.mean(per_cell[start:start + len(sheet)])))
        start += len(sheet)
    return out


def sampled(cells: list[Picture], linked: bool) -> list[Picture]:
    """An animation's frames evenly spaced, first and last included, at most SAMPLED_FRAMES of them,
    so its cost and memory do not grow with its frame count; a sheet's independent cells all."""
    if not linked or len(cells) <= SAMPLED_FRAMES:
        return cells
    return [cells[i] for i in np.linspace(0, len(cells) - 1, SAMPLED_FRAMES).round().astype(int)]


def _cell_distances(optimizer: Optimizer, params: StyleParams, cells: list[tuple[Picture, dict]]) -> np.ndarray:
    """Each cell's distance; cells of one reference size go through the network together."""
    distances = np.zeros(len(cells))
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (cell, _) in enumerate(cells):
        groups.setdefault(prepare.scaled(cell, REFERENCE_SIDE), []).append(i)
    for size, members in groups.items():
        step = max(1, CHUNK_PIXELS // (size[0] * size[1]))
        for start in range(0, len(members), step):
            chunk = members[start:start + step]
            distances[chunk] = _distances(optimizer, params, size, [cells[i] for i in chunk])
    return distances


def _distances(optimizer: Optimizer, params: StyleParams, size: tuple[int, int],
               cells: list[tuple[Picture, dict]]) -> np.ndarray:
    """The style term of same-size cells against their style Grams, [B]: the losses' own path
    (layers weighed by params.style_norm, luminance with preserve_color, wrapped padding when
    tileable), in fp32, each cell's Grams weighted by its opacity."""
    pixels = np.concatenate([prepare.prepared(cell, params, size) for cell, _ in cells])
    masks = [prepare.opacity(cell, size) for cell, _ in cells]
    mask = None
    if any(m is not None for m in masks):  # cells without alpha count as opaque
        mask = np.concatenate([np.ones((1, *size, 1), np.float32) if m is None else m for m in masks])
    grams = optimizer.style_grams(pixels, "fp32", mask, Variant.of(params))
    targets = {name: ops.concatenate([g[name] for _, g in cells], axis=0) for name in losses.STYLE_LAYERS}
    return ops.convert_to_numpy(losses.style_term(grams, targets, params.style_norm)).astype(np.float64)
