"""The engine on TensorFlow, JAX and PyTorch gives the same results up to float round-off.

The whole suite runs on one backend (TensorFlow unless $KERAS_BACKEND says otherwise); this group
runs tests/backend_probe.py in a process per backend and compares each with TensorFlow's: every
loss term and its gradient (plain, tileable, masked), a 10-step stylize, and a checkpoint written
on TensorFlow resumed on the others. Backend selection and per-process device settings are tested
here too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from batch_nst import backend
from batch_nst.errors import ParamsError
from batch_nst.params import WEIGHTED_TERMS
from tests.backend_probe import CASES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHERS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                        reason=f"{name} not installed (the [{name}] extra)"))
          for name in ("jax", "torch")]


def _probe(name: str, weights: str, out: str, resume: str | None = None) -> dict[str, np.ndarray]:
    cmd = [sys.executable, "-m", "tests.backend_probe", name, weights, out, *(["--resume", resume] if resume else [])]
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": name}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    with np.load(out) as z:
        return dict(z)


@pytest.fixture(scope="module")
def reference(legacy_weights_path, tmp_path_factory):
    """TensorFlow's results, and its checkpoint (step 5 of 10) as a file the others resume from."""
    folder = tmp_path_factory.mktemp("probe")
    ref = _probe("tensorflow", legacy_weights_path, str(folder / "tensorflow.npz"))
    checkpoint = folder / "checkpoint.npz"
    checkpoint.write_bytes(ref["checkpoint"].tobytes())
    return ref, str(checkpoint)


@pytest.fixture(scope="module", params=OTHERS)
def other(request, reference, legacy_weights_path, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("probe") / f"{request.param}.npz")
    return _probe(request.param, legacy_weights_path, out, resume=reference[1])


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("case", CASES)
def test_every_loss_term_and_its_gradient_match_tensorflows(reference, other, case):
    ref, _ = reference
    for term in WEIGHTED_TERMS:
        np.testing.assert_allclose(other[f"{case}/{term}"], ref[f"{case}/{term}"], rtol=1e-4, err_msg=term)
        assert _relative(other[f"{case}/{term}/grad"], ref[f"{case}/{term}/grad"]) < 1e-4, term
    # |x|'s gradient at 0 is 0 everywhere: the flat patch's interior gets no TV push.
    assert np.all(other[f"{case}/tv/grad"][0, 1:7, 1:7] == 0)


def test_ten_steps_end_within_half_a_percent_of_tensorflows(reference, other):
    ref, _ = reference
    assert len(other["run/history"]) == len(ref["run/history"]) == 10
    assert other["run/history"][-1] == pytest.approx(ref["run/history"][-1], rel=5e-3)
    assert np.abs(other["run/pixels"] - ref["run/pixels"]).max() < 1.0


def test_a_tensorflow_checkpoint_resumes_on_another_backend(reference, other):
    ref, _ = reference
    np.testing.assert_allclose(other["resumed/history"][:5], ref["run/history"][:5], rtol=0)  # carried over
    assert other["resumed/history"][-1] == pytest.approx(ref["run/history"][-1], rel=5e-3)
    assert np.abs(other["resumed/pixels"] - ref["run/pixels"]).max() < 1.0


def test_backend_comes_from_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backend.resolve() == "tensorflow" and backend.resolve("torch") == "torch"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.resolve() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(ParamsError, match=r"\$KERAS_BACKEND 'mxnet'.*tensorflow, jax, torch"):
        backend.resolve()
    with pytest.raises(ParamsError, match="--backend 'theano'"):
        backend.resolve("theano")


def test_a_process_cannot_switch_backends_once_keras_runs():
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(ParamsError, match=f"already runs Keras on {keras.backend.backend()}"):
        backend.use(other)


SETTINGS = """
import json, os, sys
from batch_nst import backend
settings = backend.use(sys.argv[1], threads=1, gpu_fraction=float(sys.argv[2]) or None)
started = sorted(m for m in ("jax", "keras") if m in sys.modules)  # XLA reads its settings when jax starts
import keras
print(json.dumps({"settings": settings, "keras": keras.backend.backend(), "env": dict(os.environ), "started": started}))
"""


@pytest.mark.parametrize("name, fraction, expected", [
    ("jax", 0.5, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.450"}),
    ("jax", 0.0, {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
    ("tensorflow", 0.5, {"threads": 1}),
    ("torch", 0.5, {"threads": 1}),
])
def test_device_settings_are_applied_before_the_framework_starts(name, fraction, expected):
    """Fractional GPUs share a card: JAX must not preallocate (or takes its share only), TF grows
    its memory; settings are in place before Keras (and so the first op) loads."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} not installed")
    import json

    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLA_", "KERAS_BACKEND"))}
    done = subprocess.run([sys.executable, "-c", SETTINGS, name, str(fraction)], cwd=ROOT, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": ROOT}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["keras"] == name and seen["settings"]["backend"] == name
    for key, value in expected.items():
        assert seen["settings"][key] == value
        if key.startswith("XLA_"):
            assert seen["env"][key] == value and seen["started"] == []  # set before JAX starts
    if name == "tensorflow":
        assert seen["settings"]["memory_growth"] is False  # no GPU here; on one, True (set per GPU)
