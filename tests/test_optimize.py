"""The compiled Adam loop: lowers the loss, clips, reuses one trace per shape, deterministic."""

import numpy as np

from batch_nst.engine.losses import Targets
from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from tests.conftest import smooth_image


def _problem(optimizer, size=32, seeds=(1, 2)):
    content = smooth_image(size, size, seeds[0])[None].astype(np.float32)
    style = smooth_image(size, size, seeds[1])[None].astype(np.float32)
    return content, Targets(optimizer.content_features(content), optimizer.style_grams(style))


def test_run_lowers_the_total_loss_and_keeps_pixels_in_range(optimizer):
    content, targets = _problem(optimizer)
    params = StyleParams(steps=15, loss_scale="seed")  # "area" at 32 px: content's 256x weight slows the fall
    pixels, (history,) = optimizer.run(content, targets, params)
    assert len(history) == 15
    final = optimizer.evaluate(pixels, targets, params)["total"][0]
    assert final < 0.8 * history[0]
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    assert not np.array_equal(pixels, content)


def test_step_is_traced_once_per_shape_and_reused_across_items(optimizer):
    optimizer = Optimizer(optimizer.extractor)  # its own compiled steps: other tests' shapes do not count
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
    assert set(seen[0].losses) == {"total", "style", "content", "tv", "temporal"}


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


LBFGS = StyleParams(steps=12, optimizer="lbfgs", precision="fp32")


def test_lbfgs_lowers_the_loss_within_bounds_and_reports_each_iteration(optimizer):
    content, targets = _problem(optimizer)
    seen = []
    pixels, (history,) = optimizer.run(content, targets, LBFGS, on_step=seen.append)
    assert len(history) == 12 and [p.step for p in seen] == list(range(1, 13))
    assert [p.losses["total"] for p in seen] == history and history[-1] < history[0]
    final = optimizer.evaluate(pixels, targets, LBFGS)["total"][0]
    assert final < history[-1] and final < 0.8 * history[0]
    assert pixels.min() >= 0.0 and pixels.max() <= 255.0
    again, (same,) = optimizer.run(content, targets, LBFGS)
    assert same == history and np.array_equal(again, pixels)


def test_lbfgs_batch_items_get_their_solo_runs_and_stop_alone(optimizer):
    a, b = _problem(optimizer, seeds=(1, 2)), _problem(optimizer, seeds=(3, 4))
    content = np.concatenate([a[0], b[0]])
    targets = Targets(np.concatenate([a[1].content, b[1].content]),
                      {n: np.concatenate([a[1].grams[n], b[1].grams[n]]) for n in a[1].grams})
    params = StyleParams(steps=12, optimizer="lbfgs", precision="fp32", stop_tol=0.3, stop_window=2)
    together, histories = optimizer.run(content, targets, params)
    for i, (one, one_targets) in enumerate([a, b]):
        alone, (history,) = optimizer.run(one, one_targets, params)
        assert histories[i] == history
        np.testing.assert_array_equal(together[i:i + 1], alone)
    assert len(histories[0]) < 12  # converged by stop_tol before the step budget


def test_lbfgs_sheets_of_several_cells_run_without_checkpoints(optimizer):
    a, b = _problem(optimizer, seeds=(1, 2)), _problem(optimizer, seeds=(3, 4))
    content = np.concatenate([a[0], b[0]])
    targets = Targets(np.concatenate([a[1].content, b[1].content]),
                      {n: np.concatenate([a[1].grams[n], b[1].grams[n]]) for n in a[1].grams})
    states = []
    _, histories = optimizer.run(content, targets, StyleParams(steps=6, optimizer="lbfgs", precision="fp32"),
                                 checkpoint=states.append, checkpoint_every=2)
    assert [len(h) for h in histories] == [6, 6] and states == []


def test_lbfgs_resumes_from_a_checkpoint_with_its_history(optimizer):
    content, targets = _problem(optimizer, seeds=(30, 31))
    states = []
    optimizer.run(content, targets, LBFGS, checkpoint=states.append, checkpoint_every=5)
    assert [s.step for s in states] == [5, 10] and len(states[0].histories[0]) == 5
    resumed, (history,) = optimizer.run(content, targets, LBFGS, resume=states[0])
    assert len(history) == 12 and history[:5] == list(states[0].histories[0])
    assert optimizer.evaluate(resumed, targets, LBFGS)["total"][0] < history[4]
