"""batch_nst/assets/quality.py: speckle and edges kept, over the pixels a player sees."""

from __future__ import annotations

import numpy as np
import pytest

from batch_nst.assets import quality
from batch_nst.assets.animation import Animation
from batch_nst.assets.images import Picture
from tests.conftest import smooth_image


def test_speckle_is_zero_on_flat_and_smooth_images_and_counts_single_odd_pixels():
    flat = np.full((16, 16, 3), 90, np.uint8)
    assert quality.speckle(flat) == 0.0
    odd = flat.copy()
    odd[5, 5] = (250, 0, 250)  # one saturated pixel unlike its neighbours
    # |250-90| + |0-90| + |250-90| over 3 channels, averaged over 256 pixels
    assert quality.speckle(odd) == pytest.approx((160 + 90 + 160) / 3 / 256)
    assert quality.speckle(smooth_image(32, 32, 0)) < 1.0


def test_speckle_ignores_what_transparency_hides():
    rgb = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    alpha = np.zeros((16, 16), np.uint8)
    alpha[4:12, 4:12] = 255
    rgb[2:14, 2:14] = 128  # flat under and around the opaque square; noise only where alpha is 0
    assert quality.speckle(rgb, alpha) == 0.0
    assert quality.speckle(rgb) > 10.0
    assert quality.speckle(rgb, np.zeros_like(alpha)) == 0.0  # nothing seen


def test_edges_are_one_for_the_content_itself_and_low_for_unrelated_pixels():
    content = smooth_image(48, 48, 1)
    content[:, 20:24] = 0  # a plank line
    assert quality.edge_correlation(content, content) == pytest.approx(1.0)
    recoloured = (255 - content)  # the same edges in other colours
    assert quality.edge_correlation(content, recoloured) == pytest.approx(1.0)
    unrelated = np.random.default_rng(2).integers(0, 256, content.shape, dtype=np.uint8)
    assert abs(quality.edge_correlation(content, unrelated)) < 0.2
    assert quality.edge_correlation(content, np.zeros_like(content)) == 0.0  # a flat output keeps no edges


def test_an_animation_is_scored_on_a_bounded_sample_of_its_frames():
    frames = [Picture(np.full((8, 8, 3), i, np.uint8), None) for i in range(40)]
    noisy = [Picture(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8), None) for i in range(40)]
    content = Animation(tuple(frames), (100,) * 40, 0, "GIF")
    output = Animation(tuple(noisy), (100,) * 40, 0, "GIF")
    figures = quality.figures(content, output)
    sampled = np.linspace(0, 39, quality.SAMPLE_FRAMES).round().astype(int)
    assert figures.speckle == pytest.approx(np.mean([quality.speckle(noisy[i].rgb) for i in sampled]))
    assert figures.content_speckle == 0.0 and figures.edges == 0.0
    still = quality.figures(frames[0], noisy[0])
    assert still.speckle == pytest.approx(quality.speckle(noisy[0].rgb))
