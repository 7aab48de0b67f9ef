"""GIF and APNG frames composited as viewers show them, read from the file's own structure.

Pillow composites both containers its own way, and differently from browsers and the APNG spec:
an APNG sub-frame blended OVER with partial alpha loses opacity, and a GIF's uncovered or disposed
areas come out filled with a colour where browsers show them transparent; a GIF frame reaching past
the canvas makes Pillow's frames differ in size. So the files are walked here byte by byte: each
frame's own pixels are cut out into a one-frame file that Pillow decodes (no delta, no blending),
and the canvas is kept here, per the APNG spec and as browsers do for GIF. Every frame comes back
[H, W, 4] uint8 RGBA of the canvas's size.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_APNG_DISPOSE_BACKGROUND, _APNG_DISPOSE_PREVIOUS = 1, 2
_APNG_BLEND_OVER = 1
_GIF_RESTORE_BACKGROUND, _GIF_RESTORE_PREVIOUS = 2, 3


@dataclass(frozen=True)
class _Patch:
    """One frame's own pixels and where they go on the canvas."""

    rgba: np.ndarray  # [h, w, 4] uint8
    x: int
    y: int
    dispose: int  # the container's own code (APNG dispose_op / GIF disposal method)
    over: bool  # blend over the canvas (APNG OVER; GIF always: its transparent index draws nothing)


def gif_frames(data: bytes) -> list[np.ndarray]:
    """A GIF's frames as browsers show them: the canvas starts transparent, transparent pixels draw
    nothing, disposal 2 clears the frame's area to transparent (not to the background colour),
    3 restores what was under it, and a frame reaching past the canvas is cropped to it."""
    width, height = struct.unpack("<HH", data[6:10])
    patches = [_gif_patch(data, frame) for frame in _gif_blocks(data)]
    return _play(patches, height, width, dispose_clear=_GIF_RESTORE_BACKGROUND, dispose_restore=_GIF_RESTORE_PREVIOUS)


def apng_frames(data: bytes) -> list[np.ndarray]:
    """An APNG's frames per the APNG spec (the default image first when it is not part of the
    animation, as Pillow counts them): OVER composites straight alpha, a first frame's dispose
    PREVIOUS acts as BACKGROUND."""
    chunks = png_chunks(data)
    header, shared = chunks[0][1], [c for c in chunks if c[0] in (b"PLTE", b"tRNS")]
    width, height = struct.unpack(">II", header[:8])
    frames, patches, control, pending = [], [], None, []
    for kind, body in chunks:
        if kind == b"fcTL":
            if control is not None:
                patches.append(_apng_patch(header, shared, control, pending))
            control, pending = body, []
        elif kind == b"IDAT" and control is None and not frames:  # the default image, not animated
            frames.append(_decode_png(_png(header, shared, b"".join(c for k, c in chunks if k == b"IDAT"))))
        elif kind in (b"IDAT", b"fdAT") and control is not None:
            pending.append(body if kind == b"IDAT" else body[4:])
    if control is not None:
        patches.append(_apng_patch(header, shared, control, pending))
    if patches and patches[0].dispose == _APNG_DISPOSE_PREVIOUS:
        patches[0] = _Patch(patches[0].rgba, patches[0].x, patches[0].y, _APNG_DISPOSE_BACKGROUND, patches[0].over)
    return frames + _play(patches, height, width, dispose_clear=_APNG_DISPOSE_BACKGROUND,
                          dispose_restore=_APNG_DISPOSE_PREVIOUS)


def _play(patches: list[_Patch], height: int, width: int, dispose_clear: int, dispose_restore: int) -> list[np.ndarray]:
    """Draw each patch on a transparent canvas, keep what shows, then dispose its area."""
    canvas, shown = np.zeros((height, width, 4), np.uint8), []
    for patch in patches:
        h = max(0, min(patch.rgba.shape[0], height - patch.y))
        w = max(0, min(patch.rgba.shape[1], width - patch.x))
        area = (slice(patch.y, patch.y + h), slice(patch.x, patch.x + w))
        before = canvas[area].copy()
        source = patch.rgba[:h, :w]
        canvas[area] = _over(source, before) if patch.over else source
        shown.append(canvas.copy())
        if patch.dispose == dispose_clear:
            canvas[area] = 0
        elif patch.dispose == dispose_restore:
            canvas[area] = before
    return shown


def _over(source: np.ndarray, under: np.ndarray) -> np.ndarray:
    """The APNG spec's OVER on straight (not premultiplied) alpha, rounded to 8 bits. GIF pixels are
    alpha 0 or 255, for which this is exactly "draw the opaque ones"."""
    sa, ua = source[..., 3:].astype(np.float64) / 255, under[..., 3:].astype(np.float64) / 255
    alpha = sa + ua * (1 - sa)
    colour = source[..., :3] * sa + under[..., :3] * ua * (1 - sa)
    colour = np.divide(colour, alpha, out=np.zeros_like(colour), where=alpha > 0)
    out = np.concatenate([colour, alpha * 255], axis=-1)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _decode_png(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


# --- APNG ---------------------------------------------------------------------------------------

def _apng_patch(header: bytes, shared: list, control: bytes, data: list[bytes]) -> _Patch:
    width, height, x, y, _, _, dispose, blend = struct.unpack(">IIIIHHBB", control[4:26])
    sub_header = struct.pack(">II", width, height) + header[8:]
    rgba = _decode_png(_png(sub_header, shared, b"".join(data)))
    return _Patch(rgba, x, y, dispose, blend == _APNG_BLEND_OVER)


def _png(header: bytes, shared: list, data: bytes) -> bytes:
    """A plain PNG of one frame: its size in IHDR, the file's palette and transparency, its data."""
    chunks = [(b"IHDR", header), *shared, (b"IDAT", data), (b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(chunk(kind, body) for kind, body in chunks)


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, body) of each chunk of a PNG, IHDR first."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset + 8 <= len(png):
        (length,), kind = struct.unpack(">I", png[offset:offset + 4]), png[offset + 4:offset + 8]
        chunks.append((kind, png[offset + 8:offset + 8 + length]))
        offset += 12 + length
    return chunks


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --- GIF ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _GifFrame:
    control: bytes  # the graphic control extension's 4 bytes, or b"" when the frame has none
    descriptor: bytes  # the image descriptor's 9 bytes (left, top, width, height, flags)
    rest: bytes  # local colour table, LZW code size and the data sub-blocks


def _gif_blocks(data: bytes) -> list[_GifFrame]:
    """Each image of a GIF with the control extension before it (the block grammar of GIF89a)."""
    offset, frames, control = 13 + _table_size(data[10]), [], b""
    while offset < len(data) and data[offset] != 0x3B:
        if data[offset] == 0x21:
            end = _skip_sub_blocks(data, offset + 2)
            if data[offset + 1] == 0xF9:
                control = data[offset + 3:offset + 7]
            offset = end
        elif data[offset] == 0x2C:
            descriptor = data[offset + 1:offset + 10]
            start = offset + 10 + _table_size(descriptor[8])
            end = _skip_sub_blocks(data, start + 1)
            frames.append(_GifFrame(control, descriptor, data[offset + 10:end]))
            offset, control = end, b""
        else:
            raise ValueError(f"unexpected GIF block 0x{data[offset]:02x} at byte {offset}")
    return frames


def _gif_patch(data: bytes, frame: _GifFrame) -> _Patch:
    """The frame alone as a one-frame GIF whose screen is the frame: Pillow decodes just its pixels
    (interlacing, local palette and transparent index included)."""
    x, y, width, height = struct.unpack("<HHHH", frame.descriptor[:8])
    screen = struct.pack("<HH", width, height) + data[10:13] + data[13:13 + _table_size(data[10])]
    control = b"\x21\xf9\x04" + frame.control + b"\x00" if frame.control else b""
    single = b"GIF89a" + screen + control + b"\x2c" + struct.pack("<HHHH", 0, 0, width, height)
    single += frame.descriptor[8:9] + frame.rest + b"\x3b"
    rgba = _decode_gif(single, height, width)
    dispose = (frame.control[0] >> 2) & 7 if frame.control else 0
    return _Patch(rgba, x, y, dispose, over=True)


def _decode_gif(single: bytes, height: int, width: int) -> np.ndarray:
    if not height or not width:
        return np.zeros((height, width, 4), np.uint8)
    image = Image.open(io.BytesIO(single))
    image.load()
    return np.asarray(image.convert("RGBA"))


def _table_size(flags: int) -> int:
    """Bytes of the colour table a screen or image descriptor's flags announce."""
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _skip_sub_blocks(data: bytes, offset: int) -> int:
    """The offset after a chain of data sub-blocks (each a length byte, ended by a 0)."""
    while data[offset]:
        offset += data[offset] + 1
    return offset + 1
