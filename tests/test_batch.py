"""One batch: items stepped together get their solo results, share one trace per shape, need one
optimization size, and a multiscale schedule runs coarse to fine, each stage from the last."""

import numpy as np
import pytest

from batch_nst.params import StyleParams
from batch_nst.engine.transfer import stylize
from tests.conftest import disc_sprite, smooth_image

FAST = StyleParams(steps=8, max_size=32)


def test_a_batch_gives_each_item_its_solo_result(optimizer):
    from batch_nst.engine.transfer import stylize_many

    # loss_scale="seed": batching, not scaling, is under test. At 32 px "area" multiplies the content
    # term by 256, and with it the round-off noise of its zero gradient at step 1 (batched and solo
    # convolutions round differently), which Adam's normalized update turns into pixels 8 levels apart.
    params = StyleParams(steps=6, max_size=32, precision="fp32", loss_scale="seed")
    contents = [smooth_image(32, 32, s) for s in (20, 21, 22)]
    styles = [smooth_image(32, 32, s) for s in (23, 24, 23)]
    before = optimizer.traces
    batch = stylize_many(contents, styles, params=params, extractor=optimizer)
    again = stylize_many(contents[::-1], styles[::-1], params=params, extractor=optimizer)
    assert optimizer.traces == before + 1  # one trace for the batch shape, reused
    for content, style, together, reversed_ in zip(contents, styles, batch, again[::-1]):
        alone = stylize(content, style, params=params, extractor=optimizer)
        assert together.losses.total == pytest.approx(alone.losses.total, rel=1e-3)
        assert together.history == pytest.approx(alone.history, rel=1e-4)
        assert np.abs(together.image.rgb.astype(int) - alone.image.rgb).max() <= 2
        assert reversed_.losses.total == pytest.approx(together.losses.total, rel=1e-3)


def test_a_batch_needs_one_optimization_size(optimizer):
    from batch_nst.engine.transfer import stylize_many

    with pytest.raises(ValueError, match="one optimization size"):
        stylize_many([smooth_image(32, 32, 1), smooth_image(24, 32, 2)], [smooth_image(32, 32, 3)] * 2,
                     params=FAST, extractor=optimizer)


def test_a_batch_mixing_sprites_and_opaque_items_matches_solo_runs(optimizer):
    from batch_nst.engine.transfer import stylize_many

    params = StyleParams(steps=5, max_size=32, alpha_mode="mask", precision="fp32")
    contents, style = [disc_sprite(32), smooth_image(32, 32, 52)], smooth_image(32, 32, 53)
    together = stylize_many(contents, [style, style], params=params, extractor=optimizer)
    for content, result in zip(contents, together):
        alone = stylize(content, style, params=params, extractor=optimizer)
        assert result.losses.total == pytest.approx(alone.losses.total, rel=1e-3)


def test_multiscale_runs_coarse_to_fine_each_stage_from_the_last(optimizer, monkeypatch):
    from batch_nst.engine.optimize import Optimizer

    calls, real = [], Optimizer.run

    def spy(self, init, targets, params, *args, **kwargs):
        pixels, histories = real(self, init, targets, params, *args, **kwargs)
        calls.append((init, params.steps, pixels))
        return pixels, histories

    monkeypatch.setattr(Optimizer, "run", spy)
    progress = []
    params = StyleParams(max_size=64, schedule="multiscale", stage_steps="3;2;4", precision="fp32")
    result = stylize(smooth_image(48, 64, 50), smooth_image(40, 40, 51), params=params, extractor=optimizer,
                     on_step=progress.append)
    assert [(init.shape[1:3], steps) for init, steps, _ in calls] == [((16, 16), 3), ((24, 32), 2), ((48, 64), 4)]
    for (_, _, coarse), (finer, _, _) in zip(calls, calls[1:]):  # each stage starts from the last, scaled up
        assert np.abs(finer.mean(axis=(1, 2)) - coarse.mean(axis=(1, 2))).max() < 2.0
        assert not np.allclose(finer, calls[0][0].mean())
    assert (result.height, result.width, result.steps, len(result.history)) == (48, 64, 9, 9)
    assert [p.step for p in progress] == list(range(1, 10)) and {p.steps for p in progress} == {9}
