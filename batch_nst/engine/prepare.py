"""Pixels into and out of the optimization, in NumPy: sizes, cells, style scale, masks, init, restore.

Everything an item's arrays go through before the network sees them and after it is done, the
same on every backend (no framework here), so a backend changes only the optimization itself.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
from PIL import Image

from batch_nst.assets import images
from batch_nst.assets.animation import Animation
from batch_nst.errors import ImageError, ParamsError
from batch_nst.assets.images import Picture
from batch_nst.params import StyleParams
from batch_nst.engine.vgg import MIN_SIDE


def content_cells(content: Any, params: StyleParams, name: str = "content") -> tuple[list[Picture], bool]:
    """What a content (or an output) enters a batch as: its cells, and whether they are the frames
    of one animation (an Animation's frames; a sheet's cells with params.frames) or independent.
    A one-frame animation (a still GIF) is optimized as the still it is; only its container stays."""
    if not isinstance(content, Animation):
        return cells(images.to_picture(content, name), params, name), params.frames
    if len(content.frames) == 1:
        return content_cells(content.frames[0], params, name)
    frames = len(content.frames)
    if params.cells() != (1, 1):
        raise ImageError(f"{name}: an animation of {frames} frames cannot be split by grid={params.grid!r}")
    if params.optimizer == "lbfgs" or params.stop_tol > 0:
        raise ParamsError(f"{name}: an animation of {frames} frames needs optimizer=adam and stop_tol=0: its "
                          "frames are optimized together and stop together")
    return list(content.frames), True


def cells(picture: Picture, params: StyleParams, name: str = "content") -> list[Picture]:
    """The picture's grid cells (itself alone without a grid)."""
    columns, rows = params.cells()
    return [picture] if (columns, rows) == (1, 1) else images.split(picture, columns, rows, name)


def join(parts: list[Picture], params: StyleParams) -> Picture:
    return parts[0] if len(parts) == 1 else images.join(parts, params.cells()[0])


def frames_of(content: Any, written: list[Picture], params: StyleParams) -> list[Picture]:
    """An animation's frames from its written cells: the frames themselves, or a one-frame
    animation's cells (`content_cells` took it as a still, a sheet with params.grid) joined."""
    return written if len(content.frames) > 1 else [join(written, params)]


def cells_of(content: Any, frames: list[Picture], params: StyleParams) -> list[Picture]:
    """`frames_of`'s inverse: an animation's frames as the cells `content_cells` gives."""
    return frames if len(content.frames) > 1 else cells(frames[0], params)


def style_set(style: Any) -> list[Picture]:
    """One style image, or a list or tuple of them to blend (params.style_blend)."""
    return [images.to_picture(s, "style") for s in (style if isinstance(style, (list, tuple)) else [style])]


def opt_size(content: Picture, params: StyleParams) -> tuple[int, int]:
    """Content's size scaled down to `max_size` on its long side, or up to `min_size` (at most
    max_size) where it is smaller, each side at least the network's MIN_SIDE (tiny and thin sprites
    are stretched for the optimization only; `restore` brings every output back to its own size)."""
    floor = min(params.min_size, params.max_size)
    if max(content.height, content.width) < floor:
        height, width = scaled(content, floor)
    else:
        height, width = images.fit(content.height, content.width, params.max_size)
    return max(height, MIN_SIDE), max(width, MIN_SIDE)


def stage_sizes(final: tuple[int, int], stages: int) -> list[tuple[int, int]]:
    """Each stage twice the previous one's size, the last at `final` (sides at least MIN_SIDE)."""
    return [tuple(max(MIN_SIDE, round(side / 2 ** (stages - 1 - k))) for side in final) for k in range(stages)]


def upscaled(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A stage's float pixels [B, h, w, 3] bicubically resized to start the next, in [0, 255].
    Pillow, not a backend op: backends' bicubic kernels differ (PyTorch's a=-0.75, TF's -0.5)."""
    height, width = size
    resize = lambda plane: np.asarray(Image.fromarray(plane).resize((width, height), Image.Resampling.BICUBIC))  # noqa: E731
    out = np.stack([np.stack([resize(item[..., c]) for c in range(3)], -1) for item in pixels.astype(np.float32)])
    return np.clip(out, 0.0, 255.0)


def style_side(params: StyleParams, size: tuple[int, int], content: Picture) -> float:
    """The style image's long side when `content` is optimized at `size`: `style_size` pixels of
    the asset as written (so as many of the optimization's as the asset is scaled by: one stroke
    size in every asset of a library at one texel density, at every multiscale stage), else
    `style_scale` times the optimization's long side (larger gives coarser strokes)."""
    if params.style_size:
        return params.style_size * max(size) / max(content.height, content.width)
    return max(size) * params.style_scale


def style_pixels(style: Picture, long_side: float, params: StyleParams) -> np.ndarray:
    """[1, h, w, 3] float32: the style image scaled (up or down) to `long_side` (`style_side`),
    each side at least MIN_SIDE. Luminance only with `preserve_color`."""
    rgb = images.resize(style.rgb, *scaled(style, long_side))
    return (images.gray(rgb) if params.preserve_color else rgb)[None].astype(np.float32)


def scaled(picture: Picture, long_side: float) -> tuple[int, int]:
    """The picture's size scaled (up or down) to `long_side`, aspect kept, each side at least MIN_SIDE."""
    scale = long_side / max(picture.height, picture.width)
    return tuple(max(MIN_SIDE, round(side * scale)) for side in (picture.height, picture.width))


def prepared(picture: Picture, params: StyleParams, size: tuple[int, int]) -> np.ndarray:
    """[1, h, w, 3] float32 pixels at `size`: the one path inputs and outputs take
    (luminance in all channels with `preserve_color`, as in Gatys et al. 2016's luminance-only
    transfer: the optimization never sees colour, the output takes the content's)."""
    rgb = images.resize(picture.rgb, *size)
    return (images.gray(rgb) if params.preserve_color else rgb)[None].astype(np.float32)


def mask(picture: Picture, size: tuple[int, int], params: StyleParams) -> np.ndarray | None:
    """[1, h, w, 1] opacity in [0, 1] at `size` with alpha_mode="mask" and an alpha; else None."""
    return opacity(picture, size) if params.alpha_mode == "mask" else None


def opacity(picture: Picture, size: tuple[int, int]) -> np.ndarray | None:
    """[1, h, w, 1] opacity in [0, 1] at `size`, or None without an alpha."""
    if picture.alpha is None:
        return None
    alpha = images.resize(np.repeat(picture.alpha[..., None], 3, axis=2), *size)[..., :1]
    return (alpha[None] / 255.0).astype(np.float32)


def round_trips(content: Picture, size: tuple[int, int], params: StyleParams) -> tuple[np.ndarray, np.ndarray] | None:
    """([1, H, H], [1, W, W]) float32: what bringing pixels at `size` down to the content's own size
    and back up does to them (the Lanczos of `restore` and `prepared`, as one linear map per axis),
    where `size` is larger than the content (`min_size`) and `upscaled_loss="written"`; else None.
    The losses see the working image through it, so they score what is written: optimized freely
    at 256 px, a 12x30 sprite's strokes averaged away on the way down (README, "Version 7")."""
    own = (content.height, content.width)
    if params.upscaled_loss != "written" or all(s <= o for s, o in zip(size, own)):
        return None
    return tuple(_axis_round_trip(min(o, s), s)[None] for o, s in zip(own, size))


@functools.lru_cache(maxsize=64)
def _axis_round_trip(own: int, side: int) -> np.ndarray:
    """[side, side]: a line of `side` pixels Lanczos-resized to `own` and back (identity when equal)."""
    return _lanczos(own, side) @ _lanczos(side, own)


def _lanczos(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of Pillow's Lanczos resize of a line: the identity's rows (one impulse
    each) resized along the line in one call, each row's response a column."""
    impulses = Image.fromarray(np.eye(src, dtype=np.float32), "F")
    return np.asarray(impulses.resize((dst, src), Image.Resampling.LANCZOS)).T.copy()


def initial(content: Picture, params: StyleParams, size: tuple[int, int]) -> np.ndarray:
    """Start from the content (the seed) or, with init="noise", from seeded uniform noise."""
    pixels = prepared(content, params, size)
    if params.init == "noise":
        rng = np.random.default_rng(params.seed)
        pixels = rng.uniform(0.0, 255.0, pixels.shape).astype(np.float32)
    return pixels


def restore(content: Picture, pixels: np.ndarray, params: StyleParams) -> Picture:
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


def mean_history(histories: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """A sheet's loss per step: its cells' mean (a cell stopped early holds its last value)."""
    if len(histories) == 1:
        return tuple(histories[0])
    steps = max(len(h) for h in histories)
    return tuple(float(np.mean([h[min(i, len(h) - 1)] for h in histories])) for i in range(steps))
