"""An `animation.Animation`'s frames into bytes of its container: GIF, APNG or animated WebP.

Each writer puts every frame back whole (never the deltas Pillow's `save_all` would crop to, nor
merged identical frames), with the animation's timing, loop count and disposal, so what a viewer
shows of the output is exactly the frames given. No file I/O and no deep-learning framework.
"""

from __future__ import annotations

import io
import struct
from typing import TYPE_CHECKING, Sequence

import numpy as np
from PIL import GifImagePlugin, Image

from batch_nst.assets import compose, images
from batch_nst.assets.images import Picture

if TYPE_CHECKING:  # animation imports this module to encode
    from batch_nst.assets.animation import Animation

GIF_ALPHA_THRESHOLD: int = 128  # GIF alpha is binary: alpha below this is written transparent
_APNG_BLEND_SOURCE = 0
_WEBP_ANIMATION, _WEBP_ALPHA, _WEBP_NO_BLEND = 0x02, 0x10, 0x02  # VP8X flags; ANMF's "do not blend" bit


# --- GIF ----------------------------------------------------------------------------------------

def gif(animation: Animation) -> bytes:
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

def apng(animation: Animation) -> bytes:
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

def webp(animation: Animation) -> bytes:
    """Lossless, so visible pixels and alpha come back exact. Pillow exposes no WebP disposal or
    blend, reading or writing: libwebp's decoder composites the frames and its encoder picks each
    frame's dispose/blend itself (the display stays the frames). libwebp also merges identical
    consecutive frames into one with the summed duration, with no option to stop it; and it does
    not keep the colour under alpha 0."""
    frames = [Image.fromarray(f.rgb if f.alpha is None else np.dstack([f.rgb, f.alpha])) for f in animation.frames]
    if len(frames) == 1:
        return _one_frame_webp(frames[0], animation)
    buf = io.BytesIO()
    extra = {} if animation.background is None else {"background": tuple(animation.background)}
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], duration=list(animation.durations),
                   loop=animation.loop or 0, lossless=True, **extra)
    return buf.getvalue()


def _one_frame_webp(frame: Image.Image, animation: Animation) -> bytes:
    """An animated WebP of one frame, its duration, loop and background kept: Pillow writes one
    frame as a still, which would drop them (and `animation.decode` would read a still back).
    Its lossless still's VP8L bitstream (alpha included) goes into one ANMF frame (WebP container
    spec: VP8X with the animation flag, ANIM, ANMF)."""
    buf = io.BytesIO()
    frame.save(buf, "WEBP", lossless=True)
    still = buf.getvalue()
    assert still[12:16] == b"VP8L", still[12:16]  # the simple lossless format: one chunk after the header
    bitstream = still[12:]
    width, height = frame.size
    flags = _WEBP_ANIMATION | (_WEBP_ALPHA if frame.mode == "RGBA" else 0)
    red, green, blue, alpha = animation.background or (0, 0, 0, 0)
    chunks = [_riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1)),
              _riff_chunk(b"ANIM", bytes([blue, green, red, alpha]) + struct.pack("<H", animation.loop or 0)),
              _riff_chunk(b"ANMF", _u24(0) + _u24(0) + _u24(width - 1) + _u24(height - 1)
                          + _u24(min(animation.durations[0], 0xFFFFFF)) + bytes([_WEBP_NO_BLEND]) + bitstream)]
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: fourcc, little-endian size, payload padded to an even length."""
    return kind + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "little")
