"""The engine on TensorFlow, JAX and PyTorch gives the same results up to float round-off.

The whole suite runs on one backend (TensorFlow unless $KERAS_BACKEND says otherwise); this group
runs tests/backend_probe.py in a process per backend (tests/probe.py, the processes that also
serve tests/test_autodiff.py) and compares each with TensorFlow's: every loss term and its
gradient (plain, tileable, masked), a 10-step stylize, and a checkpoint written on TensorFlow
resumed on the others. Backend selection and per-process device settings are tested
here too.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from batch_nst.engine import backend, device
from batch_nst.errors import ParamsError
from batch_nst.params import WEIGHTED_TERMS
from tests.backend_probe import CASES

pytestmark = pytest.mark.timeout(900)  # the probes' fixture, where this module's tests are the first to ask for it
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OTHERS = [pytest.param(name, marks=pytest.mark.skipif(importlib.util.find_spec(name) is None,
                                                        reason=f"{name} not installed (the [{name}] extra)"))
          for name in ("jax", "torch")]


@pytest.fixture(scope="module")
def ref(probes):
    """TensorFlow's results, the reference."""
    return probes["tensorflow"][0]


@pytest.fixture(scope="module", params=OTHERS)
def other(request, probes):
    return probes[request.param][0]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("case", CASES)
def test_every_loss_term_and_its_gradient_match_tensorflows(ref, other, case):
    for term in WEIGHTED_TERMS:
        np.testing.assert_allclose(other[f"{case}/{term}"], ref[f"{case}/{term}"], rtol=1e-4, err_msg=term)
        assert _relative(other[f"{case}/{term}/grad"], ref[f"{case}/{term}/grad"]) < 1e-4, term
    # |x|'s gradient at 0 is 0 everywhere: the flat patch's interior gets no TV push.
    assert np.all(other[f"{case}/tv/grad"][0, 1:7, 1:7] == 0)


def test_ten_steps_end_within_half_a_percent_of_tensorflows(ref, other):
    """Pixels are compared by their bulk, not their worst: Adam's first steps move each pixel by
    about the learning rate (5 levels) in its gradient's sign, and where a gradient is at round-off
    level (flat areas) that sign is the backend's and the CPU's summation order, so a few pixels
    may differ by several levels on one machine and not another (seen: 4.0 on an AMD Zen 4)."""
    assert len(other["run/history"]) == len(ref["run/history"]) == 10
    assert other["run/history"][-1] == pytest.approx(ref["run/history"][-1], rel=5e-3)
    apart = np.abs(other["run/pixels"] - ref["run/pixels"])
    assert apart.mean() < 0.25 and np.quantile(apart, 0.99) < 1.0


def test_lbfgs_and_a_multiscale_batch_of_sprite_sheets_match_tensorflows(ref, other):
    assert len(other["lbfgs/history"]) == len(ref["lbfgs/history"])
    assert other["lbfgs/history"][-1] == pytest.approx(ref["lbfgs/history"][-1], rel=5e-3)
    assert other["sheets/history"].shape == ref["sheets/history"].shape == (2, 6)
    np.testing.assert_allclose(other["sheets/total"], ref["sheets/total"], rtol=5e-3)


def test_a_tensorflow_checkpoint_resumes_on_another_backend(ref, other):
    np.testing.assert_allclose(other["resumed/history"][:5], ref["run/history"][:5], rtol=0)  # carried over
    assert other["resumed/history"][-1] == pytest.approx(ref["run/history"][-1], rel=5e-3)
    assert np.abs(other["resumed/pixels"] - ref["run/pixels"]).max() < 1.0


def test_backend_comes_from_the_flag_then_the_environment(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backend.resolve() == "auto" and backend.resolve("torch") == "torch"  # auto: chosen by the worker
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.resolve() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "mxnet")
    with pytest.raises(ParamsError, match=r"\$KERAS_BACKEND 'mxnet'.*auto, tensorflow, jax, torch"):
        backend.resolve()
    with pytest.raises(ParamsError, match="--backend 'theano'"):
        backend.resolve("theano")


def test_a_process_cannot_switch_backends_once_keras_runs():
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "torch"
    with pytest.raises(ParamsError, match=f"already runs Keras on {keras.backend.backend()}"):
        backend.use(other)
    gpu = device.Device(1, 2**34)  # auto would pick JAX on it, but this process's Keras is fixed
    assert backend.use("auto", found=gpu)["backend"] == keras.backend.backend()


def test_auto_is_chosen_in_the_process_that_runs_the_engine():
    """Probed there, before Keras loads: on this machine (no GPU, TensorFlow installed) TensorFlow."""
    import json

    code = ("import json, sys; from batch_nst.engine import backend; settings = backend.use('auto'); "
            "import keras; print(json.dumps([settings['backend'], keras.backend.backend()]))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": ROOT}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["tensorflow", "tensorflow"]


SETTINGS = """
import json, os, sys
from batch_nst.engine import backend
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


@pytest.mark.after_probes
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch not installed")
def test_a_run_on_another_backend_records_it_and_keeps_the_items_keys(ray_session, tmp_path, legacy_weights_path):
    """`--backend` reaches the actors; records and summary name it; the key ignores it, so a
    library made on TensorFlow is already done on PyTorch."""
    import json

    import pyarrow.dataset as pads
    from PIL import Image

    from batch_nst.cli import main
    from tests.conftest import smooth_image

    Image.fromarray(smooth_image(24, 24, 1)).save(tmp_path / "c.png")
    Image.fromarray(smooth_image(24, 24, 2)).save(tmp_path / "s.png")
    (tmp_path / "m.csv").write_text("id,content,style\nc,c.png,s.png\n")
    args = ["run", str(tmp_path / "m.csv"), "-o", str(tmp_path / "out"), "--weights", legacy_weights_path,
            "--steps", "2", "--max-size", "24", "--workers", "1", "--quiet", "--json"]
    assert main([*args, "--backend", "torch"]) == 0
    (rec,) = pads.dataset(str(tmp_path / "out" / "metadata")).to_table().to_pylist()
    assert rec["status"] == "ok" and rec["backend"] == "torch"
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "out" / "runs").glob("2*.json")]
    assert summary["config"]["backend"] == "torch" and "torch" in summary["versions"]
    assert main([*args, "--backend", "tensorflow"]) == 0  # same key: nothing to redo
    assert len(pads.dataset(str(tmp_path / "out" / "metadata")).to_table()) == 1
