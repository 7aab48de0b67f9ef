"""The backend's differentiation and compilation: one trace per input shape, reused across items;
gradients of the function given; several Adam steps per compiled call and the compiled PyTorch
step, on every backend.

tests/steps_probe.py runs in a process per backend (tests/probe.py: all at once, a core's share
each, the processes that also serve the parity tests) with one step per call and four (so a
10-step run makes calls of 4, 4 and 2, and one checkpointed every 5 steps calls of 4, 1, 4, 1). Four steps in one call are the arithmetic of four single steps, op for
op: TensorFlow's `while_loop`, JAX's `scan` and PyTorch's Python loop give the same bits, so the
comparisons are exact. Compiled PyTorch (`torch.compile`, Inductor) fuses and reorders float
arithmetic, so it is compared with eager PyTorch within what round-off does over 10 Adam steps
(the bound of the cross-backend parity tests).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from batch_nst.engine import autodiff
from batch_nst.engine.optimize import Optimizer
from batch_nst.params import StyleParams
from tests.conftest import problem
from tests.steps_probe import CHECKPOINT_AT, STEPS

# Compiling the PyTorch step takes ~80 s of CPU time (minutes on a loaded machine); it runs beside the others.
pytestmark = pytest.mark.timeout(900)
HAS_TORCH = importlib.util.find_spec("torch") is not None
BACKENDS = ["tensorflow", *[pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                                         reason=f"{name} not installed"))
                            for name in ("jax", "torch")]]
BROKEN = "broken/"


@pytest.fixture(scope="module")
def probes(probes):
    """The session's probes (tests/probe.py), with the failing-compile run, which the PyTorch
    probe makes last under `broken/`, as a probe of its own: "torch-broken", with that log."""
    if "torch" not in probes:
        return probes
    results, log = probes["torch"]
    broken = {name[len(BROKEN):]: value for name, value in results.items() if name.startswith(BROKEN)}
    return {**probes, "torch-broken": (broken, log)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_four_steps_a_call_are_four_single_steps(probes, backend):
    one, four = (_runs(probes[backend][0], k) for k in (1, 4))
    assert four["history"].shape == (2, STEPS)
    for name in ("pixels", "history", "resumed/pixels", "resumed/history"):
        np.testing.assert_array_equal(four[name], one[name], err_msg=name)


@pytest.mark.parametrize("backend", [*BACKENDS, pytest.param("torch-compiled", marks=BACKENDS[-1].marks)])
def test_a_resumed_run_equals_the_uninterrupted_one_and_progress_sees_every_step(probes, backend):
    four = _runs(probes[backend][0], 4)
    assert four["checkpoints"] == 1 and four["checkpoint/step"] == CHECKPOINT_AT
    np.testing.assert_array_equal(four["resumed/pixels"], four["pixels"])
    np.testing.assert_array_equal(four["resumed/history"], four["history"])
    assert list(four["progress/step"]) == list(range(1, STEPS + 1))
    np.testing.assert_array_equal(four["progress/total"], four["history"][0])  # item 0's losses, step by step


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_program_is_traced_per_shape_and_call_size(probes, backend):
    """TF and JAX trace a program per k: 4, the end's 2, and the checkpoint's remainder 1.
    PyTorch loops over one step in Python: one program whatever k."""
    four = _runs(probes[backend][0], 4)
    assert four["traces"] == (1 if backend == "torch" else 3)
    assert _runs(probes[backend][0], 1)["traces"] == 1


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_compiled_pytorch_matches_eager_within_round_off(probes):
    compiled, log = probes["torch-compiled"]
    compiled, eager = _runs(compiled, 4), _runs(probes["torch"][0], 1)
    assert "runs eagerly" not in log  # it did compile
    np.testing.assert_allclose(compiled["history"], eager["history"], rtol=1e-3)
    apart = np.abs(compiled["pixels"] - eager["pixels"])
    assert apart.mean() < 0.25 and np.quantile(apart, 0.99) < 1.0


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_a_failing_torch_compile_runs_eagerly_after_one_line(probes):
    broken, log = probes["torch-broken"]
    warnings = [line for line in log.splitlines() if "torch.compile failed" in line]
    assert warnings == ["torch.compile failed, this step runs eagerly: RuntimeError: InductorError: no C++ compiler found"]
    assert "Traceback" not in log and "second line" not in log
    eager = _runs(probes["torch"][0], 4)
    for name, value in _runs(broken, 4).items():
        if name != "traces":
            np.testing.assert_array_equal(value, eager[name], err_msg=name)


@pytest.mark.skipif(not HAS_TORCH, reason="torch not installed")
def test_torch_compile_comes_from_the_environment(monkeypatch):
    import torch

    from batch_nst.engine import backend
    from batch_nst.errors import ParamsError

    for value, mode in [("0", None), ("1", "default"), ("reduce-overhead", "reduce-overhead")]:
        monkeypatch.setenv("BATCH_NST_TORCH_COMPILE", value)
        backend.torch_compile.cache_clear()
        assert backend.torch_compile() == mode
    monkeypatch.setenv("BATCH_NST_TORCH_COMPILE", "fast")
    backend.torch_compile.cache_clear()
    with pytest.raises(ParamsError, match=r"\$BATCH_NST_TORCH_COMPILE 'fast': choose 0, 1 or one of default"):
        backend.torch_compile()
    monkeypatch.delenv("BATCH_NST_TORCH_COMPILE")
    backend.torch_compile.cache_clear()
    assert backend.torch_compile() == ("default" if torch.cuda.is_available() else None)  # eager on CPU
    backend.torch_compile.cache_clear()


def _runs(results: dict[str, np.ndarray], k: int) -> dict[str, np.ndarray]:
    """One k's results, without the `k<k>/` prefix."""
    prefix = f"k{k}/"
    return {name[len(prefix):]: value for name, value in results.items() if name.startswith(prefix)}


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
    optimizer.run(content, targets, StyleParams(steps=2, strength=0.7, style_target=0.2))  # a new style floor
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
