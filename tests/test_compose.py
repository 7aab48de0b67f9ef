"""GIF and APNG compositing, on containers built byte by byte where Pillow cannot write them
(offset sub-frames, blend OVER, frames past the canvas). Pillow only encodes pixel data here."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from batch_nst.assets import animation
from batch_nst.assets.animation import Animation, decode
from batch_nst.errors import ImageError

# --- APNG built by hand ---------------------------------------------------------------------------


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _idat(rgba: np.ndarray) -> tuple[bytes, bytes]:
    """(IHDR body, IDAT data) of an RGBA PNG of these pixels, as Pillow encodes it."""
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    png, offset, header, data = buf.getvalue(), 8, b"", b""
    while offset < len(png):
        length, kind = struct.unpack(">I", png[offset:offset + 4])[0], png[offset + 4:offset + 8]
        body = png[offset + 8:offset + 8 + length]
        header, data = (body, data) if kind == b"IHDR" else (header, data + body if kind == b"IDAT" else data)
        offset += 12 + length
    return header, data


def _apng(size: int, frames: list[tuple[np.ndarray, int, int, int, int]]) -> bytes:
    """frames: (rgba, x, y, dispose_op, blend_op); the first is the full canvas and the IDAT."""
    header, _ = _idat(frames[0][0])
    parts = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", header), _chunk(b"acTL", struct.pack(">II", len(frames), 0))]
    sequence = 0
    for index, (rgba, x, y, dispose, blend) in enumerate(frames):
        h, w = rgba.shape[:2]
        parts.append(_chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, w, h, x, y, 1, 10, dispose, blend)))
        sequence += 1
        data = _idat(rgba)[1]
        if index == 0:
            parts.append(_chunk(b"IDAT", data))
        else:
            parts.append(_chunk(b"fdAT", struct.pack(">I", sequence) + data))
            sequence += 1
    return b"".join(parts + [_chunk(b"IEND", b"")])


def _fill(h: int, w: int, rgba: tuple[int, int, int, int]) -> np.ndarray:
    return np.tile(np.array(rgba, np.uint8), (h, w, 1))


def test_apng_blend_over_with_partial_alpha_composites_per_the_spec():
    # left half opaque orange, right half clear; two 10x10 half-transparent blue sub-frames blended
    # OVER, one on the opaque half, one on the clear half (kept: dispose NONE)
    base = _fill(32, 32, (200, 100, 50, 255))
    base[:, 16:] = 0
    blue = _fill(10, 10, (0, 0, 255, 128))
    anim = decode(_apng(32, [(base, 0, 0, 0, 0), (blue, 2, 2, 0, 1), (blue, 20, 20, 0, 1)]), "in.png")

    assert isinstance(anim, Animation) and len(anim.frames) == 3
    last = anim.frames[2]
    assert set(np.unique(last.alpha)) == {0, 128, 255}
    # over opaque: alpha stays 255, colour = src * a + dst * (1 - a), a = 128/255
    a = 128 / 255
    np.testing.assert_array_equal(last.alpha[2:12, 2:12], 255)
    np.testing.assert_array_equal(last.rgb[5, 5], np.rint([200 * (1 - a), 100 * (1 - a), 255 * a + 50 * (1 - a)]))
    # over clear: the source exactly
    np.testing.assert_array_equal(last.alpha[20:30, 20:30], 128)
    np.testing.assert_array_equal(last.rgb[25, 25], [0, 0, 255])
    np.testing.assert_array_equal(anim.frames[0].alpha[0, 0], 255)


def test_apng_blend_over_survives_a_round_trip_with_its_alpha():
    base = _fill(32, 32, (10, 200, 10, 255))
    base[16:] = 0
    blue = _fill(10, 10, (0, 0, 255, 128))
    anim = decode(_apng(32, [(base, 0, 0, 0, 0), (blue, 11, 11, 1, 1), (blue, 11, 11, 0, 1)]), "in.png")
    again = decode(animation.encode(anim), "out.png")
    for got, want in zip(again.frames, anim.frames):
        np.testing.assert_array_equal(got.alpha, want.alpha)
        np.testing.assert_array_equal(got.rgb[want.alpha > 0], want.rgb[want.alpha > 0])
    assert set(np.unique(again.frames[1].alpha)) <= {0, 128, 255}


# --- GIF built by hand ----------------------------------------------------------------------------

_PALETTE = [0, 0, 0, 255, 0, 0, 0, 0, 255, 255, 255, 120] + [0] * (256 * 3 - 12)  # black red blue yellow


def _lzw(indices: np.ndarray) -> bytes:
    """The LZW code size and data sub-blocks of these palette indices, as Pillow encodes them."""
    image = Image.fromarray(indices.astype(np.uint8), "P")
    image.putpalette(_PALETTE)
    buf = io.BytesIO()
    image.save(buf, "GIF", optimize=False)
    data = buf.getvalue()
    start = data.index(b"\x2c", 13 + (3 << ((data[10] & 7) + 1)))
    return data[start + 9:-1]  # the descriptor's flags (Pillow interlaces) and what follows


def _gif(width: int, height: int, frames: list[tuple[np.ndarray, int, int, int, int | None]]) -> bytes:
    """frames: (indices, x, y, disposal, transparent index or None). The screen's background index
    is 3, the yellow Pillow fills uncovered areas with when the first frame has no transparency."""
    out = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80 | 7, 3, 0) + bytes(_PALETTE)
    out += b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for indices, x, y, disposal, transparent in frames:
        flags = disposal << 2 | (transparent is not None)
        out += b"\x21\xf9\x04" + bytes([flags]) + struct.pack("<H", 10) + bytes([transparent or 0]) + b"\x00"
        out += b"\x2c" + struct.pack("<HHHH", x, y, indices.shape[1], indices.shape[0]) + _lzw(indices)
    return out + b"\x3b"


def test_gif_area_no_frame_covers_stays_transparent():
    # a 16x16 red first frame at (8, 8) on a 32x32 canvas, then a blue one at (0, 0), kept
    red, blue = np.ones((16, 16)), np.full((16, 16), 2)
    anim = decode(_gif(32, 32, [(red, 8, 8, 1, None), (blue, 0, 0, 1, None)]), "in.gif")

    first, second = anim.frames
    assert (first.alpha == 0).sum() == 32 * 32 - 256 and (first.alpha[8:24, 8:24] == 255).all()
    assert (second.alpha == 0).sum() == 32 * 32 - 256 - 256 + 64
    np.testing.assert_array_equal(first.rgb[10, 10], [255, 0, 0])
    np.testing.assert_array_equal(second.rgb[2, 2], [0, 0, 255])


def test_gif_hole_after_a_disposed_opaque_frame_stays_transparent():
    # an opaque first frame, disposal 2 (restore to background: transparent in browsers), then a
    # frame with a 12x12 hole of its transparent index
    holed = np.ones((32, 32))
    holed[10:22, 10:22] = 0
    anim = decode(_gif(32, 32, [(np.full((32, 32), 2), 0, 0, 2, None), (holed, 0, 0, 1, 0)]), "in.gif")

    assert (anim.frames[0].alpha == 255).all()
    np.testing.assert_array_equal(anim.frames[1].alpha[10:22, 10:22], 0)
    assert (anim.frames[1].alpha == 0).sum() == 144


def test_gif_frame_past_the_canvas_is_cropped_to_it():
    frames = [(np.full((24, 24), 2), 0, 0, 1, None), (np.ones((16, 16)), 16, 16, 1, None)]
    anim = decode(_gif(24, 24, frames), "in.gif")

    assert [(f.height, f.width) for f in anim.frames] == [(24, 24), (24, 24)]
    np.testing.assert_array_equal(anim.frames[1].rgb[16:, 16:], np.tile([255, 0, 0], (8, 8, 1)))
    np.testing.assert_array_equal(anim.frames[1].rgb[:16, :16], np.tile([0, 0, 255], (16, 16, 1)))


def test_gif_cut_inside_its_last_frame_is_an_image_error_naming_it():
    data = _gif(24, 24, [(np.ones((24, 24)), 0, 0, 1, None), (np.ones((24, 24)), 0, 0, 1, None)])
    with pytest.raises(ImageError, match="cut.gif"):
        decode(data[:-5], "cut.gif")
