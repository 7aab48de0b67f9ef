"""The backend's differentiation and compilation: one trace per input shape, reused across items;
gradients of the function given, with what it passes along."""

import numpy as np

from batch_nst.engine import autodiff
from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from tests.conftest import problem


def test_step_is_traced_once_per_shape_and_reused_across_items(optimizer):
    optimizer = Optimizer(optimizer.extractor)  # its own compiled steps: other tests' shapes do not count
    params = StyleParams(steps=2)
    before = optimizer.traces
    for seeds in [(1, 2), (3, 4), (5, 6)]:
        content, targets = problem(optimizer, size=40, seeds=seeds)
        optimizer.run(content, targets, params)
    assert optimizer.traces == before + 1
    content, targets = problem(optimizer, size=48)
    optimizer.run(content, targets, StyleParams(steps=2, style_weight=5.0))  # new shape, new weights
    assert optimizer.traces == before + 2


def test_value_and_grad_gives_the_functions_value_its_aux_and_its_gradient():
    """f(x) = sum(x^2) * a: the value, the aux passed through, and df/dx = 2ax."""
    from keras import ops

    def f(x, a):
        return ops.sum(x * x) * a, {"half": ops.sum(x * x) / 2}

    x = np.array([[1.0, -2.0], [0.5, 3.0]], np.float32)
    (value, aux), grad = autodiff.current().value_and_grad(f)(ops.convert_to_tensor(x), 3.0)
    assert float(value) == 3.0 * 14.25 and float(aux["half"]) == 14.25 / 2
    np.testing.assert_allclose(ops.convert_to_numpy(grad), 6.0 * x)
