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


def test_the_losses_see_an_upscaled_asset_as_it_will_be_written():
    """upscaled_loss="written": the map the losses see the working image through is the way down to
    the asset's own size and back up, as `restore` and `prepared` take it (to Pillow's 8-bit rounding)."""
    from batch_nst.engine import losses, prepare

    content = images.to_picture(smooth_image(12, 30, 1))
    size = prepare.opt_size(content, StyleParams(max_size=64))
    assert size == (26, 64)
    working = np.random.default_rng(0).uniform(0, 255, (1, *size, 3)).astype(np.float32)
    written = prepare.restore(content, working[0], StyleParams())
    seen_again = prepare.prepared(written, StyleParams(), size)
    projected = np.asarray(losses.as_written(working, prepare.round_trips(content, size, StyleParams())))
    assert np.abs(projected - seen_again).mean() < 1.0 and np.abs(projected - working).mean() > 20
    assert prepare.round_trips(content, size, StyleParams(upscaled_loss="working")) is None
    assert prepare.round_trips(content, (12, 30), StyleParams()) is None  # not upscaled: seen as it is


def test_an_upscaled_sprite_is_optimized_for_what_is_written(optimizer):
    """Under "written" the loss the optimization reached is the written sprite's, and lower than
    what "working" writes, whose finer detail the way down (32 px to 10) removes."""
    style = np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)  # fine texture
    results = {mode: stylize(smooth_image(10, 10, 5), style, extractor=optimizer,
                             params=FAST.with_overrides({"steps": 30, "upscaled_loss": mode, "precision": "fp32",
                                                         "relative_style": False, "style_target": 0}))
               for mode in ("written", "working")}
    written = results["written"]
    assert abs(written.losses.total - written.history[-1]) < 0.02 * written.history[-1]
    assert written.losses.total < 0.99 * results["working"].losses.total
