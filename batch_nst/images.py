"""Pillow in and out: any input mode to 8-bit RGB plus an exact alpha, resize rules, PNG out.

No TensorFlow and no file I/O: bytes and arrays only. Sizes are checked from the header before a
single pixel is decoded, so a decompression bomb is refused without being expanded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from batch_nst.errors import ImageError

MAX_PIXELS = 8192 * 8192  # the largest texture we accept by default (--max-pixels)
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


@dataclass(frozen=True)
class Picture:
    """Decoded pixels: colour and alpha kept apart, so alpha can be restored exactly."""

    rgb: np.ndarray  # [H, W, 3] uint8
    alpha: np.ndarray | None  # [H, W] uint8, or None when the source has no alpha
    note: str = ""  # e.g. "first frame of 12" for an animation

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]


def decode(data: bytes, name: str, max_pixels: int = MAX_PIXELS) -> Picture:
    """Bytes of any image Pillow reads -> Picture; ImageError naming `name` otherwise."""
    if not data:
        raise ImageError(f"{name}: empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
            _check_size(image.width, image.height, name, max_pixels)
            frames = getattr(image, "n_frames", 1)
            image.load()
            image = ImageOps.exif_transpose(image)
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image (no format Pillow knows)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise ImageError(f"{name}: refused as a decompression bomb: {err}") from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageError(f"{name}: broken image: {err}") from None
    picture = _from_pil(image, name)
    return Picture(picture.rgb, picture.alpha, f"first frame of {frames}" if frames > 1 else "")


def to_picture(image: Any, name: str = "image", max_pixels: int = MAX_PIXELS) -> Picture:
    """A PIL image, an array ([H, W], [H, W, 3] or [H, W, 4]; uint8 or floats in [0, 255]) or a Picture."""
    if isinstance(image, Picture):
        return image
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, name, max_pixels)
        return _from_pil(image, name)
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[..., None].repeat(3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(f"{name}: expected an [H, W], [H, W, 3] or [H, W, 4] array, got shape {array.shape}")
    _check_size(array.shape[1], array.shape[0], name, max_pixels)
    array = np.clip(np.rint(array), 0, 255).astype(np.uint8) if array.dtype != np.uint8 else array
    alpha = np.ascontiguousarray(array[..., 3]) if array.shape[2] == 4 else None
    return Picture(np.ascontiguousarray(array[..., :3]), alpha)


def fit(height: int, width: int, max_size: int) -> tuple[int, int]:
    """Scale down so the long side is at most `max_size`, keeping aspect; never scale up."""
    long_side = max(height, width)
    if long_side <= max_size:
        return height, width
    scale = max_size / long_side
    return max(1, round(height * scale)), max(1, round(width * scale))


def resize(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [height, width, 3] with Lanczos; the input itself when sizes match."""
    if rgb.shape[:2] == (height, width):
        return rgb
    return np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.LANCZOS))


def encode_png(picture: Picture) -> bytes:
    """RGB or RGBA PNG with the alpha re-attached exactly; same pixels give the same bytes."""
    if picture.alpha is None:
        image = Image.fromarray(picture.rgb, "RGB")
    else:
        image = Image.fromarray(np.dstack([picture.rgb, picture.alpha]), "RGBA")
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels} pixels")
    if width < 1 or height < 1:
        raise ImageError(f"{name}: empty image ({width}x{height})")


def _from_pil(image: Image.Image, name: str) -> Picture:
    """Any Pillow mode -> 8-bit RGB and, where the mode carries one, the exact alpha channel."""
    mode = image.mode
    if mode in _SIXTEEN_BIT:  # Pillow's convert("L") clips 16-bit values instead of scaling them
        gray = np.rint(np.asarray(image, dtype=np.float64) / 257.0)
        return _gray(np.clip(gray, 0, 255))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = values * 255.0 if np.nanmax(values) <= 1.0 else values
        return _gray(np.clip(np.nan_to_num(np.rint(values)), 0, 255))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info)
    try:
        if has_alpha:
            array = np.asarray(image.convert("RGBA"))
            return Picture(np.ascontiguousarray(array[..., :3]), np.ascontiguousarray(array[..., 3]))
        return Picture(np.ascontiguousarray(np.asarray(image.convert("RGB"))), None)
    except (OSError, ValueError) as err:
        raise ImageError(f"{name}: cannot convert mode {mode} to RGB: {err}") from None


def _gray(values: np.ndarray) -> Picture:
    gray = values.astype(np.uint8)
    return Picture(np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2)), None)
