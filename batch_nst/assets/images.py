"""Pixels in and out: bytes or in-memory images become a `Picture`; a `Picture` becomes PNG bytes.

No file or network I/O and no deep-learning framework: storage hands this module bytes and takes bytes back.
Every failure is an `ImageError` whose message starts with the input's name. An input's size is
read from its header and refused before any pixel is decoded, so a small file that declares a huge
image costs nothing. Colour and alpha travel apart: the optimization sees only RGB, and the alpha
written back is the source's own, byte for byte.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from batch_nst.errors import ImageError

MAX_PIXELS: int = 8192 * 8192  # default refusal limit on width * height

_WIDE_GRAY = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # integer gray wider than 8 bits


@dataclass(frozen=True)
class Picture:
    """Decoded pixels: colour and (optional) alpha kept apart so alpha can be restored exactly."""

    rgb: np.ndarray  # [H, W, 3] uint8
    alpha: np.ndarray | None  # [H, W] uint8, or None when the source has no alpha
    note: str = ""  # e.g. "first frame of 12" for animations; "" otherwise

    def __post_init__(self) -> None:
        assert self.rgb.dtype == np.uint8 and self.rgb.ndim == 3 and self.rgb.shape[2] == 3, self.rgb.shape
        assert self.alpha is None or (self.alpha.dtype == np.uint8 and self.alpha.shape == self.rgb.shape[:2])

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def decode(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> Picture:
    """Bytes in any format Pillow reads -> an upright Picture (an animation's first frame;
    `batch_nst.assets.animation.decode` keeps every frame of a GIF, APNG or animated WebP).

    `name` (the file's URI, redacted) starts every error message; inputs over `max_pixels`
    are refused from their header alone.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    with pillow_errors(name):
        image = open_header(data, name)
        check_size(image.width, image.height, name, max_pixels)
        frames = getattr(image, "n_frames", 1)  # counted from frame headers, nothing decoded
        image.load()
        ImageOps.exif_transpose(image, in_place=True)  # cameras store sideways pixels plus a tag
        rgb, alpha = rgb_alpha(image)
    return Picture(rgb, alpha, f"first frame of {frames}" if frames > 1 else "")


def to_picture(image: Any, name: str = "image", max_pixels: int = MAX_PIXELS) -> Picture:
    """The in-memory twin of `decode`: a PIL image, an array or a Picture (returned as is).

    A PIL image is taken as it stands (its current frame, no EXIF rotation): whoever built it
    has already chosen. Arrays are [H, W] gray, [H, W, 3] RGB or [H, W, 4] RGBA, either uint8
    or real values on the 0..255 scale (rounded and clipped).
    """
    if isinstance(image, Picture):
        return image
    if isinstance(image, Image.Image):
        check_size(image.width, image.height, name, max_pixels)
        with pillow_errors(name):
            return Picture(*rgb_alpha(image))
    if isinstance(image, np.ndarray):
        return _from_array(image, name, max_pixels)
    raise ImageError(f"{name}: expected a PIL image, a numpy array or a Picture, not {type(image).__name__}")


def fit(height: int, width: int, max_size: int) -> tuple[int, int]:
    """The size with its long side scaled down to `max_size`, aspect kept; never scaled up."""
    assert max_size >= 1, max_size
    long_side = max(height, width)
    if long_side <= max_size:
        return height, width
    # h * m / h is exactly m in floating point, so the long side lands on max_size exactly
    return max(1, round(height * max_size / long_side)), max(1, round(width * max_size / long_side))


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """[H, W, 3] uint8 -> [height, width, 3] uint8 by Lanczos; the input itself when sizes match."""
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, (rgb.dtype, rgb.shape)
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS))


def split(picture: Picture, columns: int, rows: int, name: str = "image") -> list[Picture]:
    """A sprite sheet's cells, row by row; ImageError naming `name` when the sheet's size does
    not divide into `columns` x `rows` equal cells (an atlas's cells are never guessed)."""
    if picture.width % columns or picture.height % rows:
        raise ImageError(f"{name}: {picture.width}x{picture.height} does not split into a {columns}x{rows} grid "
                         "of equal cells")
    height, width = picture.height // rows, picture.width // columns
    return [
        Picture(picture.rgb[y:y + height, x:x + width], None if picture.alpha is None else
                picture.alpha[y:y + height, x:x + width], picture.note)
        for y in range(0, picture.height, height) for x in range(0, picture.width, width)
    ]


def join(cells: list[Picture], columns: int) -> Picture:
    """`split`'s inverse: cells row by row back into one sheet."""
    rows = [cells[start:start + columns] for start in range(0, len(cells), columns)]
    rgb = np.concatenate([np.concatenate([c.rgb for c in row], axis=1) for row in rows], axis=0)
    alpha = None
    if cells[0].alpha is not None:
        alpha = np.concatenate([np.concatenate([c.alpha for c in row], axis=1) for row in rows], axis=0)
    return Picture(rgb, alpha, cells[0].note)


def encode_png(picture: Picture) -> bytes:
    """PNG bytes, RGBA when the picture has alpha. No metadata chunks: equal pixels, equal bytes."""
    pixels = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


@contextlib.contextmanager
def pillow_errors(name: str) -> Iterator[None]:
    """Pillow's failures as ImageErrors naming the input; its bomb *warning* refuses too. A GIF cut
    inside a frame header raises IndexError or struct.error from Pillow's frame counting: caught too."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError(f"{name}: too large to decode safely: {exc}") from exc
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
            raise ImageError(f"{name}: broken image: {exc}") from exc


def open_header(data: bytes, name: str) -> Image.Image:
    """Read the header only. The first bytes go in the error: an HTML error page or a Git LFS
    pointer where an image should be is then obvious from the message alone."""
    try:
        return Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (no format Pillow knows begins {data[:16]!r})") from None


def check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    """ImageError naming `name` when width x height exceeds `max_pixels`."""
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} pixels"
        )


def rgb_alpha(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Any Pillow mode -> ([H, W, 3] uint8, [H, W] uint8 alpha or None)."""
    if image.mode in _WIDE_GRAY:
        return _gray(_from_wide(np.asarray(image))), None
    if image.mode == "F":
        return _gray(_from_float(np.asarray(image))), None
    if image.mode == "La":  # Pillow has no La -> RGBA; via LA it unpremultiplies (RGBa -> RGBA does)
        image = image.convert("LA")
    if image.has_transparency_data:  # an alpha band, an RGBA palette or a transparent colour key
        rgba = np.asarray(image.convert("RGBA"))  # [H, W, 4]
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.asarray(image.convert("RGB")), None


def _from_array(array: np.ndarray, name: str, max_pixels: int) -> Picture:
    """[H, W], [H, W, 3] or [H, W, 4] of uint8 or real 0..255 values -> Picture."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ImageError(f"{name}: array of shape {array.shape}; expected [H, W], [H, W, 3] or [H, W, 4]")
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ImageError(f"{name}: array of dtype {array.dtype}; expected uint8 or real values in 0..255")
    check_size(array.shape[1], array.shape[0], name, max_pixels)
    pixels = array if array.dtype == np.uint8 else _to_uint8(array.astype(np.float64))
    if pixels.ndim == 2:
        return Picture(_gray(pixels), None)
    alpha = np.ascontiguousarray(pixels[..., 3]) if pixels.shape[2] == 4 else None
    return Picture(np.ascontiguousarray(pixels[..., :3]), alpha)


def _from_wide(values: np.ndarray) -> np.ndarray:
    """16-bit gray -> 8 bits by /257 (65535 -> 255), rounded. Pillow's convert("L") clips at 255
    instead, turning most 16-bit images white. Mode "I" is 32-bit: clipped to 0..65535 first."""
    return np.rint(np.clip(values, 0, 65535) / 257).astype(np.uint8)


def _from_float(values: np.ndarray) -> np.ndarray:
    """Mode F has no fixed scale: a maximum of at most 1.0 reads as 0..1, anything else as 0..255."""
    values = np.nan_to_num(values.astype(np.float64))
    return _to_uint8(values * 255.0 if values.max() <= 1.0 else values)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.nan_to_num(values)), 0, 255).astype(np.uint8)


def _gray(values: np.ndarray) -> np.ndarray:
    """[H, W] -> [H, W, 3], the gray repeated in each channel."""
    return np.repeat(values[..., None], 3, axis=2)


# Full-range YCbCr (JPEG, ITU-R BT.601), for colour-preserving style transfer.
_TO_Y = np.array([0.299, 0.587, 0.114])


def luminance(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> uint8 [H, W]: the Y of YCbCr."""
    return np.clip(np.rint(rgb.astype(np.float64) @ _TO_Y), 0, 255).astype(np.uint8)


def gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] -> its luminance in all three channels, [H, W, 3]."""
    return np.repeat(luminance(rgb)[..., None], 3, axis=2)


def with_luminance(rgb: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`rgb`'s chroma (Cb, Cr) under a new luminance `y` (uint8 [H, W]): colour kept, shading new."""
    rgb = rgb.astype(np.float64)
    cb = 128 - 0.168736 * rgb[..., 0] - 0.331264 * rgb[..., 1] + 0.5 * rgb[..., 2]
    cr = 128 + 0.5 * rgb[..., 0] - 0.418688 * rgb[..., 1] - 0.081312 * rgb[..., 2]
    y = y.astype(np.float64)
    out = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128), y + 1.772 * (cb - 128)], -1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
