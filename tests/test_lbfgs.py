"""SciPy's L-BFGS-B around one compiled loss and gradient: it lowers the loss within the pixel
bounds, runs each batch item as if alone, and resumes from a checkpoint with its history."""

import numpy as np

from batch_nst.engine.losses import Targets
from batch_nst.params import StyleParams
from tests.conftest import problem


LBFGS = StyleParams(steps=12, optimizer="lbfgs", precision="fp32")


def test_lbfgs_lowers_the_loss_within_bounds_and_reports_each_iteration(optimizer):
    content, targets = problem(optimizer)
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
    a, b = problem(optimizer, seeds=(1, 2)), problem(optimizer, seeds=(3, 4))
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
    a, b = problem(optimizer, seeds=(1, 2)), problem(optimizer, seeds=(3, 4))
    content = np.concatenate([a[0], b[0]])
    targets = Targets(np.concatenate([a[1].content, b[1].content]),
                      {n: np.concatenate([a[1].grams[n], b[1].grams[n]]) for n in a[1].grams})
    states = []
    _, histories = optimizer.run(content, targets, StyleParams(steps=6, optimizer="lbfgs", precision="fp32"),
                                 checkpoint=states.append, checkpoint_every=2)
    assert [len(h) for h in histories] == [6, 6] and states == []


def test_lbfgs_resumes_from_a_checkpoint_with_its_history(optimizer):
    content, targets = problem(optimizer, seeds=(30, 31))
    states = []
    optimizer.run(content, targets, LBFGS, checkpoint=states.append, checkpoint_every=5)
    assert [s.step for s in states] == [5, 10] and len(states[0].histories[0]) == 5
    resumed, (history,) = optimizer.run(content, targets, LBFGS, resume=states[0])
    assert len(history) == 12 and history[:5] == list(states[0].histories[0])
    assert optimizer.evaluate(resumed, targets, LBFGS)["total"][0] < history[4]
