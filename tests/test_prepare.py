"""Pixels into the optimization: the size an item is optimized at (min_size, max_size, the
network's 16 px minimum), and a sprite sheet's cells."""

import numpy as np
import pytest

from batch_nst.assets import images
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import stylize
from tests.conftest import rgba, smooth_image

FAST = StyleParams(steps=8, max_size=32)


def test_small_assets_are_optimized_at_min_size_and_written_at_their_own(optimizer):
    """min_size (capped by max_size) is the long side small assets are optimized at; 0 never upscales."""
    sprite = rgba(20, 24, 3)
    result = stylize(sprite, smooth_image(32, 32, 4), params=FAST.with_overrides({"min_size": 28}), extractor=optimizer)
    assert (result.height, result.width) == (23, 28) and (result.image.height, result.image.width) == (20, 24)
    np.testing.assert_array_equal(result.image.alpha, sprite[..., 3])
    capped = stylize(sprite, smooth_image(32, 32, 4), params=FAST, extractor=optimizer)  # min_size 256 > max_size 32
    assert (capped.height, capped.width) == (27, 32)
    seed = stylize(sprite, smooth_image(32, 32, 4), params=FAST.with_overrides({"min_size": 0}), extractor=optimizer)
    assert (seed.height, seed.width) == (20, 24) == (seed.image.height, seed.image.width)


@pytest.mark.parametrize("size", [(1, 1), (3, 200), (200, 2), (15, 15)])
def test_tiny_and_thin_images_run_at_the_network_minimum(optimizer, size):
    """VGG19 needs 16 px per side; smaller inputs are stretched for the optimization only."""
    result = stylize(smooth_image(*size, 3), smooth_image(8, 300, 4), params=FAST, extractor=optimizer)
    assert (result.image.height, result.image.width) == size
    assert min(result.height, result.width) >= 16 and max(result.height, result.width) <= max(32, 16)


def test_a_sheet_that_does_not_split_evenly_is_refused_by_name(optimizer):
    from batch_nst.errors import ImageError, ParamsError
    from batch_nst.engine.transfer import batch_key

    with pytest.raises(ImageError, match=r"sheet\.png: 100x64 does not split into a 3x2 grid"):
        batch_key(images.to_picture(smooth_image(64, 100, 1)), StyleParams(grid="3x2"), "sheet.png")
    with pytest.raises(ParamsError, match="grid must be COLSxROWS"):
        StyleParams(grid="3by2")
