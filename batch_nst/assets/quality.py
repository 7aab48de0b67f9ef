"""Cheap numbers that say what an art director sees: speckle, and whether the asset's edges survived.

Both work on 8-bit pixels as stored, over the opaque pixels only (alpha > 0; transparent colour is
never shown), in NumPy and SciPy, so the report and the benchmark score every tool the same way:

- `speckle`: mean |image - its 3x3 median| in 0-255 levels, over channels. Single pixels unlike
  their neighbours (colour noise, hatching) raise it; smooth areas and clean strokes do not.
- `edge_correlation`: Pearson correlation of the Sobel edge strength of the content's and the
  output's luminance: 1 = the content's edges exactly, 0 = unrelated (the asset is gone).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# ITU-R BT.601 luma, as Pillow's convert("L") weighs R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def opaque(alpha: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """[H, W] bool: where the picture is seen (everywhere without alpha)."""
    return np.ones(shape[:2], bool) if alpha is None else np.asarray(alpha) > 0


def speckle(rgb: np.ndarray, alpha: np.ndarray | None = None) -> float:
    """Mean absolute difference between [H, W, 3] uint8 pixels and their 3x3 median, over opaque
    pixels (edges replicated); 0.0 for an image with no opaque pixel."""
    pixels = np.asarray(rgb, np.float32)
    median = ndimage.median_filter(pixels, size=(3, 3, 1), mode="nearest")
    seen = opaque(alpha, pixels.shape)
    return float(np.abs(pixels - median)[seen].mean()) if seen.any() else 0.0


def edge_strength(rgb: np.ndarray) -> np.ndarray:
    """[H, W] Sobel gradient magnitude of the luminance of [H, W, 3] pixels."""
    luma = np.asarray(rgb, np.float32) @ _LUMA
    return np.hypot(ndimage.sobel(luma, axis=0, mode="nearest"), ndimage.sobel(luma, axis=1, mode="nearest"))


def edge_correlation(content_rgb: np.ndarray, output_rgb: np.ndarray, alpha: np.ndarray | None = None) -> float:
    """Correlation of the content's and the output's edge strength over opaque pixels (same size);
    0.0 where either has no variation there (a flat image keeps no edges to speak of)."""
    seen = opaque(alpha, np.shape(content_rgb))
    a, b = edge_strength(content_rgb)[seen], edge_strength(output_rgb)[seen]
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


SAMPLE_FRAMES = 16  # an animation's figures are the mean over at most this many frames, evenly spaced


@dataclass(frozen=True)
class Figures:
    """An item's quality numbers as recorded (each the mean over an animation's sampled frames)."""

    speckle: float  # of the output
    content_speckle: float  # of the content: what the output's is read against
    edges: float  # edge_correlation of the output with the content


def figures(content, output) -> Figures:
    """The quality numbers of an item as written against its content: a still (`Picture`) or an
    animation (the mean over at most SAMPLE_FRAMES frames); alpha from the content, where it is seen."""
    pairs = list(zip(_frames(content), _frames(output)))
    if len(pairs) > SAMPLE_FRAMES:
        pairs = [pairs[i] for i in np.linspace(0, len(pairs) - 1, SAMPLE_FRAMES).round().astype(int)]
    mean = lambda values: float(np.mean(list(values)))  # noqa: E731
    return Figures(speckle=mean(speckle(out.rgb, src.alpha) for src, out in pairs),
                   content_speckle=mean(speckle(src.rgb, src.alpha) for src, _ in pairs),
                   edges=mean(edge_correlation(src.rgb, out.rgb, src.alpha) for src, out in pairs))


def _frames(picture) -> tuple:
    """An animation's frames, or a still as one frame."""
    return getattr(picture, "frames", (picture,))
