import io

import numpy as np
import pytest
from PIL import Image, features

from batch_nst.assets import animation, images
from batch_nst.assets.animation import Animation, decode, encode
from batch_nst.errors import ImageError
from batch_nst.assets.images import Picture

H, W = 24, 32
DURATIONS = [100, 200, 300, 400]  # multiples of 10: GIF counts in 10 ms units
WEBP = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")
FORMATS = ["GIF", "PNG", pytest.param("WEBP", marks=WEBP)]


def _rgba(index: int, semi: bool = True, moving: bool = True) -> np.ndarray:
    """Frame `index`: gradients shifted per frame (every frame differs everywhere), a clear corner,
    (if `moving`) a clear row that moves, and (if `semi`) a half-transparent row."""
    y, x = np.mgrid[:H, :W]
    pixels = np.stack([(x * 8 + 50 * index) % 256, (y * 10 + 30 * index) % 256, (x + y) * 4 % 256,
                       np.full((H, W), 255)], -1).astype(np.uint8)
    pixels[:4, :4, 3] = 0
    if moving:
        pixels[8 + index, :, 3] = 0
    if semi:
        pixels[20, :, 3] = 100
    return pixels


def _file(fmt: str, frames: list[np.ndarray], **kwargs) -> bytes:
    first, *rest = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    extra = {"lossless": True} if fmt == "WEBP" else {}
    first.save(buf, fmt, save_all=True, append_images=rest, **extra, **kwargs)
    return buf.getvalue()


def _picture(pixels: np.ndarray) -> Picture:
    return Picture(np.ascontiguousarray(pixels[..., :3]), np.ascontiguousarray(pixels[..., 3]))


def _assert_shows(got: Picture, want: Picture, fmt: str) -> None:
    """Equal where visible: exact for APNG and lossless WebP, close for GIF (256 colours, binary
    alpha). The colour under alpha 0 is nobody's business."""
    if fmt == "GIF":
        np.testing.assert_array_equal(got.alpha, np.where(want.alpha >= 128, 255, 0))
        diff = np.abs(got.rgb.astype(int) - want.rgb)[want.alpha >= 128]
        assert diff.mean() < 8 and diff.max() <= 32, (diff.mean(), diff.max())
    else:
        np.testing.assert_array_equal(got.alpha, want.alpha)
        np.testing.assert_array_equal(got.rgb[want.alpha > 0], want.rgb[want.alpha > 0])


# --- round trips --------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_animation_round_trips_frames_timing_loop_and_alpha(fmt):
    # Pillow's GIF writer keeps what its disposal shows, so a row cleared after a kept frame would
    # not read back clear: the GIF source's transparency stays put (moving is tested further down).
    sources = [_rgba(i, semi=fmt != "GIF", moving=fmt != "GIF") for i in range(4)]
    kwargs = {"disposal": [1, 2, 1, 2]} if fmt == "GIF" else {"disposal": [0, 1, 2, 0]} if fmt == "PNG" else {}
    anim = decode(_file(fmt, sources, duration=DURATIONS, loop=3, **kwargs), "in")

    assert isinstance(anim, Animation) and anim.format == fmt and len(anim.frames) == 4
    assert anim.durations == tuple(DURATIONS) and anim.loop == 3
    assert anim.disposal == (None if fmt == "WEBP" else tuple(kwargs["disposal"]))
    for got, source in zip(anim.frames, sources):
        _assert_shows(got, _picture(source), fmt)

    again = decode(encode(anim), "out")
    assert (again.format, again.durations, again.loop, again.disposal) == (fmt, anim.durations, 3, anim.disposal)
    for got, want in zip(again.frames, anim.frames):
        _assert_shows(got, want, fmt)
        assert (got.alpha[want.alpha == 0] == 0).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_new_frames_keep_the_metadata(fmt):
    """What the worker does: stylized frames (many colours, new content) into the source's container."""
    anim = decode(_file(fmt, [_rgba(i) for i in range(4)], duration=DURATIONS, loop=0), "in")
    stylized = [_picture(np.dstack([255 - f.rgb[..., ::-1], f.alpha])) for f in anim.frames]

    again = decode(encode(anim.with_frames(stylized)), "out")
    assert again.durations == tuple(DURATIONS) and again.loop == 0 and again.extension == fmt.lower()
    for got, want in zip(again.frames, stylized):
        _assert_shows(got, want, fmt)


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_identical_consecutive_frames_stay_separate(fmt):
    frames = [_picture(_rgba(i)) for i in (0, 1, 1, 2)]
    anim = Animation(tuple(frames), tuple(DURATIONS), 0, fmt, disposal=(1, 1, 1, 1) if fmt == "GIF" else (0,) * 4)

    again = decode(encode(anim), "out")
    assert len(again.frames) == 4 and again.durations == tuple(DURATIONS)
    for got, want in zip(again.frames, frames):
        _assert_shows(got, want, fmt)


@WEBP
def test_webp_merges_identical_consecutive_frames_but_keeps_the_timing():
    """A libwebp limitation, pinned: the display is the same, the frame count is not."""
    frames = [_picture(_rgba(i)) for i in (0, 1, 1, 2)]
    again = decode(encode(Animation(tuple(frames), tuple(DURATIONS), 0, "WEBP")), "out")
    assert sum(again.durations) == sum(DURATIONS) and len(again.frames) in (3, 4)


def test_gif_frame_never_shows_through_a_new_transparent_pixel():
    """Frame 1 is clear where frame 0 was opaque; with frame 0's 'keep' disposal frame 0 would show
    there, so frame 0 is written with 'restore to background' instead. Alpha that only shrinks
    keeps its disposal."""
    opaque, holed = np.full((H, W), 255, np.uint8), np.full((H, W), 255, np.uint8)
    holed[5:10, 5:10] = 0
    frames = [Picture(np.full((H, W, 3), c, np.uint8), a) for c, a in ((200, opaque), (100, holed), (50, holed))]
    again = decode(encode(Animation(tuple(frames), (100, 100, 100), 0, "GIF", disposal=(1, 1, 1))), "out")

    assert again.disposal == (2, 1, 1)
    for got, want in zip(again.frames, frames):
        _assert_shows(got, want, "GIF")


def test_gif_alpha_is_thresholded_at_128_and_loop_none_stays_none():
    alpha = np.full((H, W), 255, np.uint8)
    alpha[0, :4] = [0, 127, 128, 254]
    frames = tuple(Picture(np.full((H, W, 3), c, np.uint8), alpha) for c in (0, 120, 240))
    again = decode(encode(Animation(frames, (50, 60, 70), None, "GIF")), "out")

    assert again.loop is None and again.durations == (50, 60, 70)
    assert again.frames[0].alpha[0, :4].tolist() == [0, 0, 255, 255]


@pytest.mark.parametrize("fmt", FORMATS)
def test_opaque_animation_has_no_alpha(fmt):
    sources = [_rgba(i)[..., :3] for i in range(3)]
    anim = decode(_file(fmt, sources, duration=DURATIONS[:3]), "in")
    again = decode(encode(anim), "out")
    assert all(f.alpha is None for f in anim.frames + again.frames) and len(again.frames) == 3


def test_apng_default_image_stays_out_of_the_animation():
    sources = [_rgba(i) for i in range(3)]
    anim = decode(_file("PNG", sources, default_image=True, duration=[100, 200], loop=0), "in")
    assert anim.default_image and len(anim.frames) == 3 and anim.durations[1:] == (100, 200)

    again = decode(encode(anim), "out")
    assert again.default_image and again.durations == anim.durations
    for got, source in zip(again.frames, sources):
        _assert_shows(got, _picture(source), "PNG")


# --- stills and refusals ------------------------------------------------------------------------

def test_a_one_frame_gif_keeps_its_container_timing_loop_and_transparency():
    """Issue 20, defect 11: a one-frame GIF was decoded as a still and written back as a PNG."""
    data = _file("GIF", [_rgba(0, semi=False)], duration=70, loop=2)
    anim = decode(data, "one.gif")
    assert isinstance(anim, Animation) and len(anim.frames) == 1
    assert (anim.format, anim.durations, anim.loop, animation.extension_of(anim)) == ("GIF", (70,), 2, "gif")
    again = decode(encode(anim), "out.gif")
    assert (again.format, again.durations, again.loop, len(again.frames)) == ("GIF", (70,), 2, 1)
    _assert_shows(again.frames[0], _picture(_rgba(0, semi=False)), "GIF")


def test_a_one_frame_apng_keeps_its_container():
    frame = _picture(_rgba(1))
    data = encode(Animation(frames=(frame,), durations=(120,), loop=3, format="PNG", disposal=(0,), blend=(0,)))
    anim = decode(data, "one.png")
    assert isinstance(anim, Animation) and (anim.format, anim.durations, anim.loop) == ("PNG", (120,), 3)
    _assert_shows(anim.frames[0], frame, "PNG")


@WEBP
def test_a_one_frame_webp_keeps_its_container_timing_loop_and_transparency():
    """Pillow writes one frame as a still WebP, dropping the duration and loop: written by hand."""
    frame = _picture(_rgba(2))
    anim = Animation(frames=(frame,), durations=(130,), loop=2, format="WEBP", background=(1, 2, 3, 4))
    again = decode(encode(anim), "one.webp")
    assert isinstance(again, Animation) and len(again.frames) == 1
    assert (again.format, again.durations, again.loop, again.background) == ("WEBP", (130,), 2, (1, 2, 3, 4))
    _assert_shows(again.frames[0], frame, "WEBP")
    opaque = decode(encode(Animation((Picture(frame.rgb, None),), (70,), 0, "WEBP")), "opaque.webp")
    assert opaque.frames[0].alpha is None and (opaque.frames[0].rgb == frame.rgb).all()


@pytest.mark.parametrize("fmt", ["PNG", pytest.param("WEBP", marks=WEBP)])
def test_a_still_png_or_webp_is_the_picture_images_gives(fmt):
    """No acTL chunk, no VP8X animation flag: a still (Pillow writes one frame so, even from save_all)."""
    data = _file(fmt, [_rgba(0)], duration=100)
    got, want = decode(data, "still"), images.decode(data, "still")
    assert isinstance(got, Picture) and got.note == ""
    np.testing.assert_array_equal(got.rgb, want.rgb)
    np.testing.assert_array_equal(got.alpha, want.alpha)


def test_other_multi_frame_formats_give_their_first_frame():
    pages = [Image.fromarray(_rgba(i)[..., :3]) for i in range(3)]
    buf = io.BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    assert decode(buf.getvalue(), "scan.tif").note == "first frame of 3"


def test_refuses_too_many_pixels_across_frames_naming_the_file():
    data = _file("GIF", [_rgba(i) for i in range(4)], duration=DURATIONS)
    assert isinstance(decode(data, "ok.gif", max_pixels=4 * H * W), Animation)
    with pytest.raises(ImageError, match=r"^big\.gif: 4 frames of 32x24 .* exceeds"):
        decode(data, "big.gif", max_pixels=3 * H * W)


def test_refuses_too_many_frames_naming_the_file(monkeypatch):
    monkeypatch.setattr(animation, "MAX_FRAMES", 3)
    with pytest.raises(ImageError, match=r"^long\.png: 4 frames exceeds the limit of 3"):
        decode(_file("PNG", [_rgba(i) for i in range(4)], duration=DURATIONS), "long.png")


def test_broken_and_empty_inputs_fail_like_images():
    with pytest.raises(ImageError, match=r"^e\.gif: empty file"):
        decode(b"", "e.gif")
    with pytest.raises(ImageError, match=r"^t\.gif: not an image"):
        decode(b"<html>nope</html>", "t.gif")
    data = _file("GIF", [_rgba(i) for i in range(4)], duration=DURATIONS)
    with pytest.raises(ImageError, match=r"^cut\.gif: "):
        decode(data[: len(data) // 2], "cut.gif")
