"""The report's thumbnails: one small PNG per content, style and result, animated where the source is.

They are files in `report/thumbs/` named by what they show (an item's key, a style's URI), so a
later report reuses those it already made. An animation's thumbnail is an APNG of its frames (each
frame's duration and the loop kept): every browser plays it in an `<img>`, alpha included, so the
page shows an animated asset moving, not its first frame.
"""

from __future__ import annotations

import hashlib
import io
import math
import numpy as np
from PIL import Image

from batch_nst import storage
from batch_nst.assets import animation, images
from batch_nst.assets.animation import Animation
from batch_nst.assets.images import Picture
from batch_nst.errors import BatchNSTError
from batch_nst.job import records

THUMB = 160  # thumbnails' long side, in pixels (never more than the source's)
MAX_FRAMES = 100  # an animated thumbnail's frames at most: a longer animation keeps every n-th, timing kept


def for_row(row: records.Record, current: dict[str, str], root: str) -> list[tuple[str, str]]:
    """(thumbnail file name, source URI) of an item's content, styles and result. A result is
    made only while its image is still this record's: a later run with another key overwrote it."""
    names = [(content_name(row), row.content)]
    names += [(style_name(uri), uri) for uri in row.style.split(";")]
    if row.status == records.OK and row.output and current.get(row.id) == row.key:
        names.append((result_name(row), records.output_uri(root, row.output)))
    return names


def content_name(row: records.Record) -> str:
    """By key (it changes with the content's bytes) and URI (rows refused before keying have none)."""
    return f"content-{_digest(row.key + row.content)}.png"


def style_name(uri: str) -> str:
    return f"style-{_digest(uri)}.png"


def result_name(row: records.Record) -> str:
    return f"{row.key}-result.png"


def make(folder: str, name: str, uri: str) -> bool:
    """Write one thumbnail (alpha kept; an animation's animated); False when its source cannot be
    read (the page says so)."""
    try:
        source = animation.decode(storage.read_bytes(uri), uri)
    except BatchNSTError:
        return False
    if isinstance(source, Animation) and len(source.frames) > 1:
        data = _animated(source)
    else:
        buf = io.BytesIO()
        _small(source.frames[0] if isinstance(source, Animation) else source).save(buf, "PNG")
        data = buf.getvalue()
    storage.write_bytes(storage.join(folder, "thumbs", name), data)
    return True


def _small(picture: Picture) -> Image.Image:
    """The picture scaled down to THUMB on its long side (Lanczos), RGB or RGBA as it is."""
    height, width = images.fit(picture.height, picture.width, THUMB)
    pixels = picture.rgb if picture.alpha is None else np.dstack([picture.rgb, picture.alpha])
    return Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)


def _animated(source: Animation) -> bytes:
    """An APNG of the frames scaled down, at most MAX_FRAMES of them: every n-th frame shown for
    the n frames' durations together, so the thumbnail plays as long as the source."""
    step = math.ceil(len(source.frames) / MAX_FRAMES)
    frames = []
    for start in range(0, len(source.frames), step):
        small = np.asarray(_small(source.frames[start]))
        frames.append(Picture(np.ascontiguousarray(small[..., :3]), None if small.shape[2] == 3 else
                              np.ascontiguousarray(small[..., 3])))
    durations = tuple(sum(source.durations[start:start + step]) for start in range(0, len(source.frames), step))
    return animation.encode(Animation(tuple(frames), durations, source.loop or 0, "PNG",
                                      disposal=(0,) * len(frames), blend=(0,) * len(frames)))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
