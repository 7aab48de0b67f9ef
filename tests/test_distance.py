"""The style distance: zero to itself, growing with another style, the same at any size, recomputable."""

import numpy as np
import pytest

from batch_nst.assets import images
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import style_distance, stylize_many
from tests.conftest import smooth_image

PARAMS = StyleParams(steps=3, max_size=32, precision="fp32")


def test_an_image_is_at_zero_from_itself_and_farther_from_another(optimizer):
    image, other = smooth_image(48, 64, 1), smooth_image(48, 64, 2)
    assert style_distance(image, image, params=PARAMS, extractor=optimizer) == pytest.approx(0.0, abs=1e-6)
    assert style_distance(image, other, params=PARAMS, extractor=optimizer) > 1e-3


def test_the_distance_hardly_depends_on_the_outputs_size_or_style_scale(optimizer):
    """Both images are brought to one reference side: a 64 px and a 256 px copy of one picture
    land near each other, and style_scale (an optimization setting) changes nothing."""
    big, style = smooth_image(256, 256, 3), smooth_image(200, 300, 4)
    small = images.resize(big, 64, 64)
    at = {side: style_distance(picture, style, params=PARAMS, extractor=optimizer)
          for side, picture in ((64, small), (256, big))}
    print(f"distance at 64 px {at[64]:.6g}, at 256 px {at[256]:.6g}")
    assert at[64] == pytest.approx(at[256], rel=0.1)
    scaled = PARAMS.with_overrides({"style_scale": 2.0})
    assert style_distance(big, style, params=scaled, extractor=optimizer) == at[256]


def test_a_sprite_is_scored_by_what_is_seen_not_the_colour_under_its_transparent_pixels(optimizer):
    """A sprite whose visible half is the style itself and whose transparent half holds another
    picture: near the style as seen, whatever the alpha mode it ran in; counted whole (no alpha),
    as far as the other picture makes it."""
    style, other = smooth_image(64, 64, 9), smooth_image(64, 64, 10)
    alpha = np.concatenate([np.full((64, 64, 1), 255, np.uint8), np.zeros((64, 64, 1), np.uint8)], axis=1)
    sprite = np.concatenate([np.concatenate([style, other], axis=1), alpha], axis=2)
    whole = style_distance(sprite[..., :3], style, params=PARAMS, extractor=optimizer)
    for mode in ("restore", "mask"):
        seen = style_distance(sprite, style, params=PARAMS.with_overrides({"alpha_mode": mode}), extractor=optimizer)
        print(f"{mode}: seen {seen:.6g}, whole {whole:.6g}")
        assert seen < 0.6 * whole


def test_results_carry_the_distance_of_the_image_as_written(optimizer):
    """Batched, a sprite sheet among plain items, blended styles: each equals the distance
    recomputed from the written image alone."""
    params = PARAMS.with_overrides({"grid": "2x1", "style_blend": "1;3"})
    contents = [smooth_image(32, 64, 5), smooth_image(32, 64, 6)]
    styles = [[smooth_image(40, 40, 7), smooth_image(30, 50, 8)]] * 2
    results = stylize_many(contents, styles, params=params, extractor=optimizer)
    for result, style in zip(results, styles):
        alone = style_distance(result.image, style, params=params, extractor=optimizer)
        assert result.style_distance == pytest.approx(alone, rel=1e-5) and result.style_distance > 0


def test_cached_reference_grams_are_per_style_and_preparation(optimizer):
    """One style key, luminance-only (preserve_color) or not: each gets its own Grams."""
    from batch_nst.engine.distance import style_distances
    from batch_nst.engine.style_cache import StyleCache

    cache, output, style = StyleCache(), smooth_image(32, 32, 9), smooth_image(32, 32, 10)
    for params in (PARAMS, PARAMS.with_overrides({"preserve_color": True})):
        (cached,) = style_distances([output], [style], params=params, optimizer=optimizer, cache=cache, keys=["s"])
        assert cached == style_distance(output, style, params=params, extractor=optimizer)
    assert cache.misses == 2


def test_a_long_animation_s_distance_takes_a_bounded_sample_of_its_frames(optimizer, monkeypatch):
    """30 frames through the network at the reference side cost more than their optimization: the
    distance takes SAMPLED_FRAMES evenly spaced frames, first and last included."""
    from batch_nst.assets.animation import Animation
    from batch_nst.engine import distance

    frames = tuple(images.to_picture(smooth_image(16, 16, seed)) for seed in range(30))
    moving = Animation(frames=frames, durations=(100,) * 30, loop=0, format="GIF", disposal=(1,) * 30)
    seen = []
    real = distance._distances
    monkeypatch.setattr(distance, "_distances", lambda o, p, size, cells: seen.extend(cells) or real(o, p, size, cells))
    style = smooth_image(16, 16, 99)
    got = style_distance(moving, style, params=PARAMS, extractor=optimizer)
    assert len(seen) == distance.SAMPLED_FRAMES
    picked = [frames[i] for i in (0, 4, 8, 12, 17, 21, 25, 29)]
    assert [cell for cell, _ in seen] == picked
    alone = [style_distance(f, style, params=PARAMS, extractor=optimizer) for f in picked]
    assert got == pytest.approx(sum(alone) / len(alone), rel=1e-5)
