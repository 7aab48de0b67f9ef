"""The compiled Adam loop: lowers the loss, clips, reuses one trace per shape, deterministic."""

import numpy as np

from batch_nst.losses import Targets
from batch_nst.params import StyleParams
from tests.conftest import smooth_image


def _problem(optimizer, size=32, seeds=(1, 2)):
    content = smooth_image(size, size, seeds[0])[None].astype(np.float32)
    style = smooth_image(size, size, seeds[1])[None].astype(np.float32)
    return content, Targets(optimizer.content_features(content), optimizer.style_grams(style))


def test_run_lowers_the_total_loss_and_keeps_pixels_in_range(optimizer):
    content, targets = _problem(optimizer)
    params = StyleParams(steps=15)
    pixels, (history,) = optimizer.run(content, targets, params)
    assert len(history) == 15
    final = optimizer.evaluate(pixels, targets, params)["total"][0]
    assert final < 0.8 * history[0]
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    assert not np.array_equal(pixels, content)


def test_step_is_traced_once_per_shape_and_reused_across_items(optimizer):
    params = StyleParams(steps=2)
    before = optimizer.traces
    for seeds in [(1, 2), (3, 4), (5, 6)]:
        content, targets = _problem(optimizer, size=40, seeds=seeds)
        optimizer.run(content, targets, params)
    assert optimizer.traces == before + 1
    content, targets = _problem(optimizer, size=48)
    optimizer.run(content, targets, StyleParams(steps=2, style_weight=5.0))  # new shape, new weights
    assert optimizer.traces == before + 2


def test_each_run_starts_from_fresh_adam_state(optimizer):
    """Reusing a slot must not leak the previous item's moments into the next."""
    content, targets = _problem(optimizer, size=32, seeds=(8, 9))
    params = StyleParams(steps=4)
    first, (h1,) = optimizer.run(content, targets, params)
    other, other_targets = _problem(optimizer, size=32, seeds=(10, 11))
    optimizer.run(other, other_targets, params)
    again, (h2,) = optimizer.run(content, targets, params)
    assert h1 == h2
    np.testing.assert_array_equal(first, again)


def test_progress_callback_reports_every_step(optimizer):
    content, targets = _problem(optimizer)
    seen = []
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=3), on_step=seen.append)
    assert [p.step for p in seen] == [1, 2, 3] and all(p.steps == 3 for p in seen)
    assert [p.losses["total"] for p in seen] == history
    assert set(seen[0].losses) == {"total", "style", "content", "tv"}


def test_stop_tol_ends_a_converged_item_early(optimizer):
    content, targets = _problem(optimizer)
    full, (history,) = optimizer.run(content, targets, StyleParams(steps=40, learning_rate=0.01))
    early, (short,) = optimizer.run(content, targets, StyleParams(steps=40, learning_rate=0.01, stop_tol=0.5, stop_window=3))
    assert len(history) == 40 and 3 < len(short) < 40
    assert short == history[: len(short)]  # the same trajectory, cut where it converged
    assert not np.array_equal(early, full)


def test_stop_tol_zero_runs_every_step(optimizer):
    content, targets = _problem(optimizer)
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=12, stop_tol=0.0, stop_window=1))
    assert len(history) == 12


def test_resuming_from_a_checkpoint_continues_exactly(optimizer):
    content, targets = _problem(optimizer, seeds=(30, 31))
    params = StyleParams(steps=10)
    full, (history,) = optimizer.run(content, targets, params)
    states = []
    optimizer.run(content, targets, params, checkpoint=states.append, checkpoint_every=4)
    assert [s.step for s in states] == [4, 8]
    resumed, (rest,) = optimizer.run(content, targets, params, resume=states[0])
    np.testing.assert_array_equal(resumed, full)
    assert rest == history and states[0].histories[0] == tuple(history[:4])
