"""The compiled Adam loop: lowers the loss, clips, fresh state per run, progress, stop_tol."""

import numpy as np

from batch_nst.params import StyleParams
from tests.conftest import problem


def test_run_lowers_the_total_loss_and_keeps_pixels_in_range(optimizer):
    content, targets = problem(optimizer)
    params = StyleParams(steps=15, loss_scale="seed")  # "area" at 32 px: content's 256x weight slows the fall
    pixels, (history,) = optimizer.run(content, targets, params)
    assert len(history) == 15
    final = optimizer.evaluate(pixels, targets, params)["total"][0]
    assert final < 0.8 * history[0]
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    assert not np.array_equal(pixels, content)


def test_each_run_starts_from_fresh_adam_state(optimizer):
    """Reusing a slot must not leak the previous item's moments into the next."""
    content, targets = problem(optimizer, size=32, seeds=(8, 9))
    params = StyleParams(steps=4)
    first, (h1,) = optimizer.run(content, targets, params)
    other, other_targets = problem(optimizer, size=32, seeds=(10, 11))
    optimizer.run(other, other_targets, params)
    again, (h2,) = optimizer.run(content, targets, params)
    assert h1 == h2
    np.testing.assert_array_equal(first, again)


def test_progress_callback_reports_every_step(optimizer):
    content, targets = problem(optimizer)
    seen = []
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=3), on_step=seen.append)
    assert [p.step for p in seen] == [1, 2, 3] and all(p.steps == 3 for p in seen)
    assert [p.losses["total"] for p in seen] == history
    assert set(seen[0].losses) == {"total", "style", "content", "tv", "temporal"}


def test_stop_tol_ends_a_converged_item_early(optimizer):
    content, targets = problem(optimizer)
    full, (history,) = optimizer.run(content, targets, StyleParams(steps=40, learning_rate=0.01))
    early, (short,) = optimizer.run(content, targets, StyleParams(steps=40, learning_rate=0.01, stop_tol=0.5, stop_window=3))
    assert len(history) == 40 and 3 < len(short) < 40
    assert short == history[: len(short)]  # the same trajectory, cut where it converged
    assert not np.array_equal(early, full)


def test_stop_tol_zero_runs_every_step(optimizer):
    content, targets = problem(optimizer)
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=12, stop_tol=0.0, stop_window=1))
    assert len(history) == 12


