"""Animated images in and out: a GIF, APNG or animated WebP becomes an `Animation` of full frames
and goes back into the same container with its timing, loop count and disposal.

Frames are kept *composited* (what a viewer shows at each step), never as the deltas the file
stores: the optimization then sees whole pictures, and the writer can put each frame back whole,
so what a viewer shows of the output is exactly the frames we wrote, whatever the source's
disposal and blending did. Like `images`, no file I/O and no deep-learning framework.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import GifImagePlugin, Image, ImageOps

from batch_nst.assets import compose, images
from batch_nst.errors import ImageError
from batch_nst.assets.images import Picture

MAX_FRAMES: int = 1000  # refusal limit on an animation's frame count
GIF_ALPHA_THRESHOLD: int = 128  # GIF alpha is binary: alpha below this is written transparent

_EXTENSIONS = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}
_APNG_BLEND_SOURCE = 0
_ORIENTATION = 0x0112  # the EXIF tag; its values 2..8 as the transposition that makes the frame upright
_TURNS = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
          5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
          8: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class Animation:
    """Full frames plus what the container needs to play them as the source did."""

    frames: tuple[Picture, ...]  # composited, all one size; alpha on all frames or on none
    durations: tuple[int, ...]  # ms per frame
    loop: int | None  # plays, 0 = forever; None: a GIF without the NETSCAPE loop extension (plays once)
    format: str  # "GIF", "PNG" (APNG) or "WEBP"
    # GIF disposal method / APNG dispose_op per frame, as Pillow reads it (a GIF frame with an
    # unspecified disposal, 0, reads as the previous frame's); None for WebP, which Pillow hides
    disposal: tuple[int, ...] | None = None
    blend: tuple[int, ...] | None = None  # APNG blend_op per frame as read (the writer uses SOURCE)
    default_image: bool = False  # APNG: frame 0 is the still fallback, not a frame of the animation
    background: tuple[int, ...] | None = None  # WebP canvas background (RGBA), as read

    def __post_init__(self) -> None:
        assert self.format in _EXTENSIONS, self.format
        assert len(self.frames) >= 2 and len(self.durations) == len(self.frames)
        assert len({(f.height, f.width) for f in self.frames}) == 1, "frames differ in size"
        assert len({f.alpha is None for f in self.frames}) == 1, "alpha on some frames only"
        assert self.disposal is None or len(self.disposal) == len(self.frames)

    @property
    def height(self) -> int:
        return self.frames[0].height

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def extension(self) -> str:
        """The output file's extension: the container stays the input's."""
        return _EXTENSIONS[self.format]

    def with_frames(self, frames: Sequence[Picture]) -> Animation:
        """The same animation with new pixels (same count and size), e.g. the stylized frames."""
        frames = tuple(frames)
        assert len(frames) == len(self.frames), (len(frames), len(self.frames))
        assert {(f.height, f.width) for f in frames} == {(self.frames[0].height, self.frames[0].width)}
        return replace(self, frames=_same_alpha(list(frames)))


def extension_of(image: Picture | Animation) -> str:
    """The file extension an output is written with: a still's PNG, an animation's own container."""
    return image.extension if isinstance(image, Animation) else "png"


def encode_output(image: Picture | Animation) -> bytes:
    """A stylized still as PNG, an animation in its container (`extension_of`)."""
    return encode(image) if isinstance(image, Animation) else images.encode_png(image)


def as_stored(animation: Animation) -> list[Picture]:
    """The frames a reader gets back from `encode(animation)`: a GIF's are quantized to 256 colours
    and binary alpha, so recorded losses are taken on these, not on what went in. (libwebp merges
    identical consecutive frames: then the frames as given, which are what a viewer shows.)"""
    pixels = len(animation.frames) * animation.width * animation.height
    stored = decode(encode(animation), "output", max_pixels=pixels)
    frames = stored.frames if isinstance(stored, Animation) else ()
    return list(frames) if len(frames) == len(animation.frames) else list(animation.frames)


def decode(data: bytes, name: str, max_pixels: int = images.MAX_PIXELS) -> Picture | Animation:
    """Bytes -> an Animation when a GIF, APNG or WebP has several frames; otherwise exactly what
    `images.decode` gives (still images, and other multi-frame formats as their first frame).

    The limit counts every frame's pixels, since all of them get decoded and stylized; it is
    checked from the header and the frame count (read from frame headers) before any pixel.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    with images.pillow_errors(name):
        image = images.open_header(data, name)
        count = getattr(image, "n_frames", 1)
        if count == 1 or image.format not in _EXTENSIONS:
            return images.decode(data, name, max_pixels)
        images.check_size(image.width, image.height, name, max_pixels)
        _check_frames(count, image.width, image.height, name, max_pixels)
        return _read(image, count, data, name)


def encode(animation: Animation) -> bytes:
    """The animation in its own container, each frame written whole (see the per-format writers)."""
    return {"GIF": _encode_gif, "PNG": _encode_apng, "WEBP": _encode_webp}[animation.format](animation)


def _check_frames(count: int, width: int, height: int, name: str, max_pixels: int) -> None:
    if count > MAX_FRAMES:
        raise ImageError(f"{name}: {count} frames exceeds the limit of {MAX_FRAMES} frames")
    if count * width * height > max_pixels:
        raise ImageError(f"{name}: {count} frames of {width}x{height} = {count * width * height} pixels "
                         f"exceeds the limit of {max_pixels} pixels")


def _read(image: Image.Image, count: int, data: bytes, name: str) -> Animation:
    """Seek through the frames for their timing and disposal. The pixels of a GIF or APNG are
    composited by `compose` as browsers and the APNG spec do (Pillow's own compositing differs);
    a WebP's come from Pillow, whose libwebp composites them already."""
    loop = image.info.get("loop")  # before seeking: Pillow keeps it from the header
    pillow_frames, durations, disposal, blend = [], [], [], []
    for index in range(count):
        image.seek(index)
        image.load()  # WebP sets its duration on load
        if image.format == "WEBP":
            pillow_frames.append(Picture(*images.rgb_alpha(ImageOps.exif_transpose(image))))
        durations.append(round(image.info.get("duration") or 0))  # APNG's is a float; none: 0
        disposal.append(getattr(image, "disposal_method", getattr(image, "dispose_op", None)))
        blend.append(getattr(image, "blend_op", None))
    frames = pillow_frames if image.format == "WEBP" else _composited(image, data, count, name)
    return Animation(
        frames=_same_alpha(frames), durations=tuple(durations), loop=loop, format=image.format,
        disposal=None if image.format == "WEBP" else tuple(d or 0 for d in disposal),
        blend=tuple(b or 0 for b in blend) if image.format == "PNG" else None,
        default_image=bool(image.info.get("default_image")),
        background=image.info.get("background") if image.format == "WEBP" else None,
    )


def _composited(image: Image.Image, data: bytes, count: int, name: str) -> list[Picture]:
    """`compose`'s canvases as Pictures, upright per the file's EXIF orientation; no alpha when
    every pixel of every frame is opaque."""
    canvases = (compose.gif_frames if image.format == "GIF" else compose.apng_frames)(data)
    if len(canvases) != count:
        raise ImageError(f"{name}: {len(canvases)} frames found where the file announces {count}")
    turn = _TURNS.get(image.getexif().get(_ORIENTATION, 1))
    canvases = [np.asarray(Image.fromarray(c).transpose(turn)) if turn is not None else c for c in canvases]
    opaque = all((c[..., 3] == 255).all() for c in canvases)
    return [Picture(np.ascontiguousarray(c[..., :3]), None if opaque else np.ascontiguousarray(c[..., 3]))
            for c in canvases]


def _same_alpha(frames: list[Picture]) -> tuple[Picture, ...]:
    """Alpha on every frame when on any (opaque where missing): the writers need one pixel mode."""
    if all(f.alpha is None for f in frames) or all(f.alpha is not None for f in frames):
        return tuple(frames)
    return tuple(f if f.alpha is not None else Picture(f.rgb, np.full(f.rgb.shape[:2], 255, np.uint8), f.note)
                 for f in frames)


# --- GIF ----------------------------------------------------------------------------------------

def _encode_gif(animation: Animation) -> bytes:
    """Whole frames through Pillow's documented legacy `getheader`/`getdata`, not `save_all`:
    `save_all` merges identical consecutive frames (adding their durations) and cannot be told not
    to, which would change the frame count. Durations are rounded to GIF's 10 ms units."""
    opaque = [_opaque(f) for f in animation.frames]
    transparent = not all(mask.all() for mask in opaque)
    paletted = [_paletted(f, mask, transparent) for f, mask in zip(animation.frames, opaque)]
    disposal = _gif_disposal(animation.disposal or (0,) * len(opaque), opaque)
    durations = [min(65535, round(ms / 10)) * 10 for ms in animation.durations]
    info = {"duration": durations[0]}
    if animation.loop is not None:
        info["loop"] = animation.loop
    if transparent:
        info.update(transparency=255, background=255)
    header, _ = GifImagePlugin.getheader(paletted[0], None, info)
    parts = list(header)
    for frame, ms, dispose in zip(paletted, durations, disposal):
        params = {"duration": ms, "disposal": dispose, "include_color_table": True}
        if transparent:
            params["transparency"] = 255
        parts += GifImagePlugin.getdata(frame, (0, 0), **params)
    return b"".join(parts) + b";"


def _opaque(frame: Picture) -> np.ndarray:
    """GIF alpha is binary: alpha >= 128 opaque, below transparent (alpha 0 stays 0)."""
    if frame.alpha is None:
        return np.ones(frame.rgb.shape[:2], bool)
    return frame.alpha >= GIF_ALPHA_THRESHOLD


def _paletted(frame: Picture, opaque: np.ndarray, transparent: bool) -> Image.Image:
    """A frame as 256 colours with its own palette (median cut); index 255 is kept for
    transparency when any frame has some, so each frame can clear the canvas it is drawn on.
    Transparent pixels take an opaque pixel's colour first, so they spend no palette entry."""
    rgb = frame.rgb
    if not opaque.all():
        rgb = rgb.copy()
        rgb[~opaque] = rgb[opaque][0] if opaque.any() else 0
    quantized = Image.fromarray(rgb).quantize(255 if transparent else 256)
    indices = np.asarray(quantized).copy()
    indices[~opaque] = 255
    palette = quantized.getpalette() or []
    out = Image.fromarray(indices, "P")
    out.putpalette(palette + [0] * (768 - len(palette)))
    return out


def _gif_disposal(disposal: Sequence[int], opaque: list[np.ndarray]) -> list[int]:
    """The source's disposal, except where it would let a frame show through the next one.

    A whole frame's transparent pixel shows the canvas left by the previous frame's disposal:
    nothing after 2 (restore to background, transparent by convention), the previous frame after
    0/1 (keep), the canvas before it after 3 (restore previous). Alpha that only grows keeps any
    disposal right, but new transparency after a kept frame would show it, so there (and only
    there) the frame is written with 2. Tracked on the canvas's opaque pixels only: every opaque
    pixel of a whole frame replaces the canvas's, so colours cannot leak, only coverage.
    """
    out = list(disposal)
    canvas = np.zeros_like(opaque[0])
    for index, mask in enumerate(opaque):
        drawn = canvas | mask
        after = {2: np.zeros_like(mask), 3: canvas}.get(out[index], drawn)
        if index + 1 < len(opaque) and (after & ~opaque[index + 1]).any():
            out[index], after = 2, np.zeros_like(mask)
        canvas = after
    return out


# --- APNG ---------------------------------------------------------------------------------------

def _encode_apng(animation: Animation) -> bytes:
    """APNG chunks around Pillow's PNG encoding of each whole frame, with blend op SOURCE: every
    frame then replaces the whole canvas, alpha included, so the source's dispose ops can be kept
    as read and cannot change what shows. Written here rather than by `save_all`, which crops
    frames to deltas and merges identical consecutive frames. Delays are exact in ms."""
    count = len(animation.frames) - animation.default_image
    disposal = animation.disposal or (0,) * len(animation.frames)
    parts, sequence = [compose.PNG_SIGNATURE], 0
    for index, frame in enumerate(animation.frames):
        chunks = compose.png_chunks(images.encode_png(frame))
        data = b"".join(body for kind, body in chunks if kind == b"IDAT")
        if index == 0:
            parts += [compose.chunk(b"IHDR", chunks[0][1]),
                      compose.chunk(b"acTL", struct.pack(">II", count, animation.loop or 0))]
        if index or not animation.default_image:
            numerator, denominator = _delay(animation.durations[index])
            parts.append(compose.chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, frame.width, frame.height, 0, 0,
                                                     numerator, denominator, disposal[index], _APNG_BLEND_SOURCE)))
            sequence += 1
        if index == 0:
            parts.append(compose.chunk(b"IDAT", data))
        else:
            parts.append(compose.chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    return b"".join(parts + [compose.chunk(b"IEND", b"")])


def _delay(ms: int) -> tuple[int, int]:
    """ms as an APNG delay fraction of 16-bit parts: exact up to 65535 ms, coarser above."""
    numerator, denominator = ms, 1000
    while numerator > 65535 and denominator > 1:
        numerator, denominator = round(numerator / 10), denominator // 10
    return min(numerator, 65535), denominator


# --- WebP ---------------------------------------------------------------------------------------

def _encode_webp(animation: Animation) -> bytes:
    """Lossless, so visible pixels and alpha come back exact. Pillow exposes no WebP disposal or
    blend, reading or writing: libwebp's decoder composites the frames and its encoder picks each
    frame's dispose/blend itself (the display stays the frames). libwebp also merges identical
    consecutive frames into one with the summed duration, with no option to stop it; and it does
    not keep the colour under alpha 0."""
    frames = [Image.fromarray(f.rgb if f.alpha is None else np.dstack([f.rgb, f.alpha])) for f in animation.frames]
    buf = io.BytesIO()
    extra = {} if animation.background is None else {"background": tuple(animation.background)}
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=list(animation.durations),
                   loop=animation.loop or 0, lossless=True, **extra)
    return buf.getvalue()
