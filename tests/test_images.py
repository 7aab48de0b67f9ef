import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile, features

from batch_nst.errors import ImageError
from batch_nst.assets.images import MAX_PIXELS, Picture, decode, encode_png, fit, resize, to_picture


def _rgba(height=12, width=16, seed=0) -> np.ndarray:
    """[H, W, 4] uint8 noise with every alpha level from opaque to clear represented."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)


def _bytes(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    return _bytes(Image.fromarray(pixels), "PNG")


def _declaring(width: int, height: int) -> bytes:
    """A valid 8x8 PNG whose IHDR claims width x height (CRC fixed so only the size is wrong)."""
    data = bytearray(_png(np.zeros((8, 8, 3), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)  # after signature(8), length(4), b"IHDR"(4)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # over b"IHDR" + 13 data bytes
    return bytes(data)


def _assert_well_formed(pic: Picture, height: int, width: int, has_alpha: bool) -> None:
    assert pic.rgb.shape == (height, width, 3) and pic.rgb.dtype == np.uint8 and pic.rgb.flags.c_contiguous
    assert (pic.alpha is not None) == has_alpha
    if has_alpha:
        assert pic.alpha.shape == (height, width) and pic.alpha.dtype == np.uint8 and pic.alpha.flags.c_contiguous


# --- modes ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "YCbCr", "LAB", "RGBX"])
def test_opaque_modes_decode_to_rgb_without_alpha(mode):
    source = Image.fromarray(_rgba()[..., :3]).convert(mode)
    pic = decode(_bytes(source, "TIFF"), f"x.{mode}.tif")

    _assert_well_formed(pic, 12, 16, has_alpha=False)
    np.testing.assert_array_equal(pic.rgb, np.asarray(source.convert("RGB")))


@pytest.mark.parametrize("mode", ["LA", "PA", "RGBA"])
def test_alpha_modes_keep_the_source_alpha_exactly(mode):
    source = Image.fromarray(_rgba()).convert(mode)
    pic = decode(_bytes(source, "TIFF"), "x.tif")

    _assert_well_formed(pic, 12, 16, has_alpha=True)
    np.testing.assert_array_equal(pic.alpha, _rgba()[..., 3])
    np.testing.assert_array_equal(pic.rgb, np.asarray(source.convert("RGBA"))[..., :3])


@pytest.mark.parametrize("premultiplied, straight", [("RGBa", "RGBA"), ("La", "LA")])
def test_premultiplied_modes_are_unpremultiplied(premultiplied, straight):
    rgba = _rgba()
    rgba[..., 3] = np.maximum(rgba[..., 3], 128)  # enough alpha for the round trip to be near-exact
    source = Image.fromarray(rgba).convert(straight)
    pic = to_picture(source.convert(premultiplied))

    _assert_well_formed(pic, 12, 16, has_alpha=True)
    np.testing.assert_array_equal(pic.alpha, rgba[..., 3])
    straight_rgb = np.asarray(source.convert("RGBA"))[..., :3].astype(int)
    assert np.abs(pic.rgb.astype(int) - straight_rgb).max() <= 2  # not the darkened premultiplied values


def test_one_bit_is_black_or_white():
    pic = decode(_bytes(Image.fromarray(_rgba()).convert("1"), "PNG"), "x.png")
    assert set(np.unique(pic.rgb)) <= {0, 255} and len(np.unique(pic.rgb)) == 2


def test_palette_with_transparent_index_gains_alpha_from_it():
    index = np.arange(12 * 16, dtype=np.uint8).reshape(12, 16) % 4
    source = Image.fromarray(index, "L").convert("P")
    source.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    pic = decode(_bytes(source, "PNG", transparency=2), "x.png")

    _assert_well_formed(pic, 12, 16, has_alpha=True)
    np.testing.assert_array_equal(pic.alpha, np.where(index == 2, 0, 255))
    np.testing.assert_array_equal(pic.rgb[index == 0], np.tile([255, 0, 0], ((index == 0).sum(), 1)))


def test_palette_without_transparency_has_no_alpha():
    pic = decode(_bytes(Image.fromarray(_rgba()[..., :3]).convert("P"), "PNG"), "x.png")
    _assert_well_formed(pic, 12, 16, has_alpha=False)


@pytest.mark.parametrize("mode, fmt", [("I;16", "PNG"), ("I;16B", "TIFF"), ("I;16", "TIFF"), ("I", "TIFF")])
def test_sixteen_bit_gray_is_scaled_by_257_not_clipped(mode, fmt):
    values = np.array([[0, 128, 129, 257, 32896, 65535]], np.uint16)
    source = {
        "I;16": lambda: Image.fromarray(values),
        "I;16B": lambda: Image.frombytes("I;16B", (6, 1), values.astype(">u2").tobytes()),
        "I": lambda: Image.fromarray(values).convert("I"),
    }[mode]()
    assert source.mode == mode
    pic = decode(_bytes(source, fmt), "x")

    _assert_well_formed(pic, 1, 6, has_alpha=False)
    np.testing.assert_array_equal(pic.rgb[0, :, 0], [0, 0, 1, 1, 128, 255])
    np.testing.assert_array_equal(pic.rgb[..., 0], pic.rgb[..., 2])


def test_thirty_two_bit_gray_outside_sixteen_bits_is_clipped_to_its_ends():
    pic = to_picture(Image.fromarray(np.array([[-5, 70000]], np.int32), "I"))
    np.testing.assert_array_equal(pic.rgb[0, :, 1], [0, 255])


@pytest.mark.parametrize(
    "values, expected",
    [
        ([[0.0, 0.5, 1.0]], [0, 128, 255]),  # max <= 1: a unit range
        ([[-3.0, 100.4, 300.0]], [0, 100, 255]),  # else 0..255, clipped
        ([[np.nan, 2.0, 7.6]], [0, 2, 8]),
    ],
)
def test_float_gray_reads_as_unit_range_or_as_0_to_255(values, expected):
    pic = decode(_bytes(Image.fromarray(np.array(values, np.float32), "F"), "TIFF"), "x.tif")
    np.testing.assert_array_equal(pic.rgb[0, :, 0], expected)


# --- orientation, frames ------------------------------------------------------------------------

def test_exif_rotated_jpeg_comes_out_upright():
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = [255, 0, 0]  # left half red, right half blue, as stored
    pixels[:, 20:] = [0, 0, 255]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": the stored left becomes the top
    pic = decode(_bytes(Image.fromarray(pixels), "JPEG", exif=exif, quality=95), "photo.jpg")

    assert (pic.height, pic.width) == (40, 20)
    assert pic.rgb[5, 10, 0] > 200 and pic.rgb[5, 10, 2] < 50  # top: red
    assert pic.rgb[35, 10, 2] > 200 and pic.rgb[35, 10, 0] < 50  # bottom: blue


def test_cmyk_jpeg_decodes_to_rgb():
    source = Image.new("CMYK", (24, 16), (0, 255, 255, 0))  # pure red in ink
    pic = decode(_bytes(source, "JPEG", quality=95), "print.jpg")

    _assert_well_formed(pic, 16, 24, has_alpha=False)
    assert np.abs(pic.rgb.astype(int) - [255, 0, 0]).max() <= 3


def _frames() -> list[Image.Image]:
    return [Image.new("RGB", (16, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]


@pytest.mark.parametrize("fmt, kwargs", [("GIF", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_animation_gives_its_first_frame_and_says_so(fmt, kwargs):
    if fmt == "WEBP" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    first, *rest = _frames()
    pic = decode(_bytes(first, fmt, save_all=True, append_images=rest, duration=100, **kwargs), "anim")

    assert pic.note == "first frame of 3"
    np.testing.assert_array_equal(pic.rgb, np.full((8, 16, 3), [255, 0, 0], np.uint8))


def test_still_image_has_no_note():
    assert decode(_bytes(_frames()[0], "GIF"), "still.gif").note == ""


# --- refusals -----------------------------------------------------------------------------------

def test_empty_bytes():
    with pytest.raises(ImageError, match=r"^art/a\.png: empty file$"):
        decode(b"", "art/a.png")


def test_text_is_not_an_image_and_the_message_shows_its_start():
    with pytest.raises(ImageError, match=r"^notes\.png: not an image \(.*version https://"):
        decode(b"version https://git-lfs.github.com/spec/v1\n", "notes.png")


def test_truncated_png_is_broken():
    data = _png(_rgba(32, 32)[..., :3])
    with pytest.raises(ImageError, match=r"^cut\.png: broken image: "):
        decode(data[: len(data) // 2], "cut.png")


def test_animated_gif_cut_anywhere_is_broken_or_its_first_frame():
    """Pillow's GIF frame counting raises IndexError or struct.error on some cuts: still an
    ImageError naming the file."""
    frames = [Image.fromarray(_rgba(12, 16, seed)[..., :3]) for seed in range(3)]
    data = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    for cut in range(1, len(data)):
        try:
            decode(data[:cut], "cut.gif")
        except ImageError as exc:
            assert str(exc).startswith("cut.gif: ")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""
    def load(self):
        raise AssertionError("pixels decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", load)


def test_header_over_our_limit_is_refused_before_decoding(no_decoding):
    with pytest.raises(ImageError) as caught:
        decode(_declaring(9000, 9000), "big.png")  # 81M: over MAX_PIXELS, under Pillow's own guard
    assert str(caught.value) == f"big.png: 9000x9000 = 81000000 pixels exceeds the limit of {MAX_PIXELS} pixels"


@pytest.mark.parametrize("side", [10_000, 100_000])  # Pillow's warning zone, then its hard error
def test_header_over_pillows_guard_is_refused_before_decoding(no_decoding, side):
    with pytest.raises(ImageError, match=r"^bomb\.png: too large to decode safely: .*exceeds limit of") as caught:
        decode(_declaring(side, side), "bomb.png", max_pixels=10**12)
    assert "broken" not in str(caught.value)


def test_real_image_over_a_small_limit():
    with pytest.raises(ImageError, match=r"^big\.png: 64x64 = 4096 pixels exceeds the limit of 2000 pixels$"):
        decode(_png(_rgba(64, 64)), "big.png", max_pixels=2000)
    assert decode(_png(_rgba(64, 64)), "ok.png", max_pixels=4096).width == 64


# --- to_picture ---------------------------------------------------------------------------------

def test_arrays_of_each_shape():
    rgba = _rgba()
    gray = to_picture(rgba[..., 0])
    np.testing.assert_array_equal(gray.rgb, np.dstack([rgba[..., 0]] * 3))
    assert gray.alpha is None
    assert to_picture(rgba[..., :3]).alpha is None
    with_alpha = to_picture(rgba)
    np.testing.assert_array_equal(with_alpha.alpha, rgba[..., 3])
    np.testing.assert_array_equal(with_alpha.rgb, rgba[..., :3])
    _assert_well_formed(with_alpha, 12, 16, has_alpha=True)


def test_float_arrays_are_rounded_and_clipped_to_0_255():
    pic = to_picture(np.array([[[-4.0, 0.4, 0.6], [254.6, 255.0, 900.0]]], np.float32))
    np.testing.assert_array_equal(pic.rgb, [[[0, 0, 1], [255, 255, 255]]])


def test_picture_and_pil_image_inputs():
    pic = Picture(np.zeros((2, 3, 3), np.uint8), None, "kept")
    assert to_picture(pic) is pic
    from_pil = to_picture(Image.fromarray(_rgba()))
    np.testing.assert_array_equal(from_pil.alpha, _rgba()[..., 3])


@pytest.mark.parametrize(
    "value, message",
    [
        (np.zeros((4, 4, 2), np.uint8), r"^content: array of shape \(4, 4, 2\)"),
        (np.zeros((0, 4, 3), np.uint8), r"^content: array of shape"),
        (np.zeros((4, 4, 3), bool), r"^content: array of dtype bool"),
        ("a.png", r"^content: expected a PIL image, a numpy array or a Picture, not str"),
        (np.zeros((64, 64, 3), np.uint8), r"^content: 64x64 = 4096 pixels exceeds the limit of 100 pixels"),
        (Image.new("RGB", (64, 64)), r"^content: 64x64 = 4096 pixels exceeds the limit of 100 pixels"),
    ],
)
def test_to_picture_refusals_name_the_input(value, message):
    with pytest.raises(ImageError, match=message):
        to_picture(value, "content", max_pixels=100)


# --- fit, resize --------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "size, max_size, expected",
    [
        ((100, 50), 200, (100, 50)),  # never scaled up
        ((512, 512), 512, (512, 512)),
        ((1000, 500), 100, (100, 50)),
        ((500, 1000), 100, (50, 100)),
        ((333, 1000), 64, (21, 64)),  # 21.3 rounds down
        ((3, 1000), 100, (1, 100)),  # 0.3 px would vanish: at least 1
        ((7, 9), 1, (1, 1)),
    ],
)
def test_fit(size, max_size, expected):
    assert fit(*size, max_size) == expected


@pytest.mark.parametrize("height, width", [(4321, 1234), (1000, 999), (999, 1000), (10_000, 3)])
def test_fit_lands_the_long_side_exactly(height, width):
    assert max(fit(height, width, 777)) == 777


def test_resize_identity_returns_the_input():
    rgb = _rgba()[..., :3].copy()
    assert resize(rgb, 12, 16) is rgb


def test_resize_shape_and_content():
    rgb = np.full((12, 16, 3), [10, 200, 30], np.uint8)
    out = resize(rgb, 30, 7)
    assert out.shape == (30, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, np.full((30, 7, 3), [10, 200, 30], np.uint8))  # flat stays flat


# --- encode_png ---------------------------------------------------------------------------------

@pytest.mark.parametrize("with_alpha", [False, True])
def test_encode_png_round_trips_exactly(with_alpha):
    rgba = _rgba(seed=7)
    pic = Picture(np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3]) if with_alpha else None)
    data = encode_png(pic)
    back = decode(data, "out.png")

    assert Image.open(io.BytesIO(data)).mode == ("RGBA" if with_alpha else "RGB")
    np.testing.assert_array_equal(back.rgb, pic.rgb)  # colour kept even under alpha 0
    if with_alpha:
        np.testing.assert_array_equal(back.alpha, pic.alpha)
    else:
        assert back.alpha is None


def test_encode_png_is_deterministic():
    rgba = _rgba(seed=3)
    make = lambda: Picture(rgba[..., :3].copy(), rgba[..., 3].copy())  # noqa: E731
    assert encode_png(make()) == encode_png(make())
    assert b"tIME" not in encode_png(make()) and b"tEXt" not in encode_png(make())
