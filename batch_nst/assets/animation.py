"""Animated images in and out: a GIF, APNG or animated WebP becomes an `Animation` of full frames
and goes back into the same container (`writers`) with its timing, loop count and disposal.

Frames are kept *composited* (what a viewer shows at each step), never as the deltas the file
stores: the optimization then sees whole pictures, and the writer can put each frame back whole,
so what a viewer shows of the output is exactly the frames we wrote, whatever the source's
disposal and blending did. Like `images`, no file I/O and no deep-learning framework.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

from batch_nst.assets import compose, images, writers
from batch_nst.errors import ImageError
from batch_nst.assets.images import Picture

MAX_FRAMES: int = 1000  # refusal limit on an animation's frame count

_EXTENSIONS = {"GIF": "gif", "PNG": "png", "WEBP": "webp"}
_HIDES_COLOUR = frozenset({"GIF", "WEBP"})  # containers that store no colour under alpha 0
_WEBP_ANIMATED = 0x02  # the animation flag of a WebP's VP8X header
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
        assert len(self.frames) >= 1 and len(self.durations) == len(self.frames)
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


def hidden_as_content(frames: Sequence[Picture], content: Animation) -> list[Picture]:
    """An output's frames as the losses see them: where the content's container keeps no colour
    under alpha 0, the content's colour there. A GIF gives every transparent pixel its one
    transparent palette colour and libwebp clears them, so the file cannot say what they were;
    they are invisible, and an invisible difference must cost nothing (issue 20: a transparent
    GIF at strength 0 recorded a content loss of 2e7). The content's colour, not the one the
    optimization left there (under `alpha_mode=restore` it optimizes every pixel's colour): that
    one never reaches the file, so only the content's keeps the losses recomputable from it. The
    recorded losses (`transfer._stored`) and `transfer.evaluate` both take this, so they agree.
    PNG and APNG keep the colour under alpha 0 as written: under `alpha_mode=restore` the seed's
    arithmetic on the optimized image, under `mask` the content's already (`prepare.restore`)."""
    if content.format not in _HIDES_COLOUR:
        return list(frames)
    return [frame if frame.alpha is None or frame.alpha.all() or frame.rgb.shape != source.rgb.shape else
            Picture(np.where((frame.alpha == 0)[..., None], source.rgb, frame.rgb), frame.alpha, frame.note)
            for frame, source in zip(frames, content.frames)]


def decode(data: bytes, name: str, max_pixels: int = images.MAX_PIXELS) -> Picture | Animation:
    """Bytes -> an Animation for any GIF and for an animated APNG or WebP, even of one frame (its
    output keeps the container: `animated`); otherwise exactly what `images.decode` gives (still
    PNGs and WebPs and every other format, a multi-frame one as its first frame).

    The limit counts every frame's pixels, since all of them get decoded and stylized; it is
    checked from the header and the frame count (read from frame headers) before any pixel.
    """
    if not data:
        raise ImageError(f"{name}: empty file")
    with images.pillow_errors(name):
        image = images.open_header(data, name)
        count = getattr(image, "n_frames", 1)
        if not animated(image, data):
            return images.decode(data, name, max_pixels)
        images.check_size(image.width, image.height, name, max_pixels)
        _check_frames(count, image.width, image.height, name, max_pixels)
        return _read(image, count, data, name)


def animated(image: Image.Image, data: bytes) -> bool:
    """Whether the file is in an animation container: every GIF (a GIF is its frames, one or
    more), an APNG (an acTL chunk: Pillow's "image/apng") or a WebP flagged animated (VP8X's
    animation bit), whatever its frame count."""
    if image.format == "GIF" or getattr(image, "n_frames", 1) > 1 and image.format in _EXTENSIONS:
        return True
    if image.format == "PNG":
        return image.get_format_mimetype() == "image/apng"
    return image.format == "WEBP" and data[12:16] == b"VP8X" and bool(data[20] & _WEBP_ANIMATED)


def encode(animation: Animation) -> bytes:
    """The animation in its own container, each frame written whole (see the per-format writers)."""
    return {"GIF": writers.gif, "PNG": writers.apng, "WEBP": writers.webp}[animation.format](animation)


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
