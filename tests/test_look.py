"""One look across a library (issue 13): losses per area, one strength knob, strokes of one size,
animations without flicker."""

import numpy as np
import pytest

from batch_nst.params import SEED, StyleParams
from batch_nst.engine.transfer import evaluate, stylize
from tests.conftest import smooth_image


def test_area_scale_at_512_is_the_seeds_arithmetic_and_at_64_differs_by_the_factor(optimizer):
    style = smooth_image(48, 48, 2)
    for size, factor in ((512, 1.0), (64, 64.0)):
        content, output = smooth_image(size, size, 1), smooth_image(size, size, 3)
        seed, area = (evaluate(content, style, output, extractor=optimizer,
                               params=StyleParams(max_size=size, loss_scale=mode)) for mode in ("seed", "area"))
        if factor == 1.0:
            assert area == seed  # exactly: the same arithmetic
        else:
            assert area.style == seed.style
            assert area.content == pytest.approx(factor * seed.content, rel=1e-6)
            assert area.tv == pytest.approx(np.sqrt(factor) * seed.tv, rel=1e-6)  # TV grows with the side


def test_a_multiscale_history_has_no_scaling_jumps_at_stage_changes_under_area(optimizer):
    """Each stage has 4x the pixels of the one before. Under "seed" the sums jump with them (TV
    doubles); under "area" it carries on level. The style term is size-independent in both modes.
    Content still rises at a stage change under both: the upscaled image lacks the detail of the
    finer content (a real loss, not scale; 6-16x on the seeded weights)."""
    content, style = smooth_image(128, 128, 4), smooth_image(64, 64, 5)
    ratios = {}
    for mode in ("seed", "area"):
        seen = []
        params = StyleParams(max_size=128, schedule="multiscale", stage_steps="2;2;2", precision="fp32",
                             loss_scale=mode)  # scaling under test, not convergence: two steps a stage
        stylize(content, style, params=params, extractor=optimizer, on_step=lambda p: seen.append(p.losses))
        ratios[mode] = [seen[end]["tv"] / seen[end - 1]["tv"] for end in (2, 4)]
    assert all(r > 1.6 for r in ratios["seed"]) and all(0.8 < r < 1.25 for r in ratios["area"]), ratios


def test_strength_zero_leaves_the_content_unchanged_and_more_strength_means_more_style(optimizer):
    """On max pooling and the seed's content term: through the seeded random weights' average-pooled
    network the style loss of a 32 px image hardly moves in 8 steps whatever the weights (0.0357 at
    every strength), and at block4_conv2 the default content weight (set for the real network's
    features) leaves every strength above 0 style alone. On the real weights the style loss falls
    with strength at the defaults (test_imagenet_q8)."""
    content, style = smooth_image(32, 32, 6), smooth_image(32, 32, 7)
    seeds_content = {"content_layer": SEED["content_layer"], "content_weight": SEED["content_weight"]}
    results = {s: stylize(content, style, params=StyleParams(steps=8, max_size=32, precision="fp32", strength=s,
                                                             pooling="max", **seeds_content),
                          extractor=optimizer) for s in (0.0, 0.2, 0.5, 0.8)}
    np.testing.assert_array_equal(results[0.0].image.rgb, content)
    styled = [results[s].losses.style for s in (0.2, 0.5, 0.8)]
    assert styled[0] > styled[1] > styled[2]


def test_strength_zero_is_the_content_exactly_in_bf16_and_when_scaled_up(optimizer):
    """No step is taken at strength 0: in bf16 the targets' round-off made a gradient from the
    content, which Adam's normalized steps turned into 14 levels of noise on the real weights, and
    a sprite under min_size came back from its round trip through 32 px changed."""
    content, style = smooth_image(20, 24, 12), smooth_image(32, 32, 13)
    result = stylize(content, style, params=StyleParams(steps=5, max_size=32, precision="bf16", strength=0.0),
                     extractor=optimizer)
    np.testing.assert_array_equal(result.image.rgb, content)
    assert (result.height, result.width) == (27, 32) and result.steps == 0 and result.history == ()
    assert result.losses.content == pytest.approx(0.0, abs=1e-3) and result.losses.style > 0


def test_style_size_is_in_the_assets_pixels_whatever_its_size(optimizer, monkeypatch):
    seen = []
    real = optimizer.style_grams
    monkeypatch.setattr(optimizer, "style_grams", lambda px, *rest: seen.append(px.shape) or real(px, *rest))
    style = smooth_image(40, 80, 8)
    for side in (48, 96):  # an asset at its own size, and one optimized at half its size
        stylize(smooth_image(side, side, 9), style, params=StyleParams(steps=1, max_size=48, style_size=40,
                                                                       precision="fp32"), extractor=optimizer)
    # 40 px of the asset: 40 px at full size; 20 px of the optimization where it runs at half size
    # (each side at least the network's 16), so the written strokes are the same size in both.
    assert [shape[1:3] for shape in seen[::3]] == [(20, 40), (16, 20)]  # (then the style distance's two)




def test_relative_style_takes_each_items_style_loss_against_its_contents_own(optimizer):
    """relative_style (the default since version 8): the content as it is scores 1 (its own distance from the style), whatever
    that distance is, so a sprite far from the style is not pulled harder than one near it; the
    optimization then lowers it below 1, and the consistency score (style_distance) stays absolute."""
    style = smooth_image(32, 32, 21)
    near, far = smooth_image(24, 24, 21), 255 - smooth_image(24, 24, 21)
    params = StyleParams(steps=6, max_size=32, precision="fp32", relative_style=True)
    untouched = [stylize(c, style, params=params.with_overrides({"strength": 0.0}), extractor=optimizer)
                 for c in (near, far)]
    assert [r.losses.style for r in untouched] == [pytest.approx(1.0, rel=1e-4)] * 2
    absolute = [stylize(c, style, params=params.with_overrides({"strength": 0.0, "relative_style": False,
                                                                  "style_target": 0}),
                        extractor=optimizer) for c in (near, far)]
    assert absolute[1].losses.style > 2 * absolute[0].losses.style  # the two really differ in distance
    assert [r.style_distance for r in untouched] == pytest.approx([r.style_distance for r in absolute])
    styled = stylize(far, style, params=params, extractor=optimizer)
    assert styled.losses.style < 1.0


def test_style_target_stops_an_item_near_it_and_leaves_one_that_never_reaches_it_alone(optimizer):
    """style_target (the default since version 9): the style stops pulling an item once its style
    term is below the target, so it settles near it instead of going as far as it can; an item that
    never gets there is optimized exactly as without it."""
    style, far = smooth_image(32, 32, 21), 255 - smooth_image(24, 24, 21)
    params = StyleParams(steps=40, max_size=32, precision="fp32")
    free, held, unreached = (stylize(far, style, params=params.with_overrides({"style_target": t}), extractor=optimizer)
                             for t in (0.0, 0.5, 0.3))
    assert free.losses.style < 0.4  # left alone it goes farther than 0.5
    assert 0.45 < held.losses.style < 0.55
    assert held.style_distance > free.style_distance  # less style, as seen on the common scale too
    assert np.array_equal(unreached.image.rgb, free.image.rgb)  # 0.3 is never reached in 40 steps
