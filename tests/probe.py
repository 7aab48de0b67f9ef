"""What the backend tests compare, computed in a process of one backend.

    python -m tests.probe BACKEND WEIGHTS OUT.npz [--threads N] [--parity] [--steps K ...] [--broken] [--resume]

Keras fixes its backend at import, so tests/test_backends.py (the parity group,
tests/backend_probe.py) and tests/test_autodiff.py (the steps group, tests/steps_probe.py) read
the results of one such process per backend, plus one for compiled PyTorch ($BATCH_NST_TORCH_COMPILE).
Each process runs every group its backend is asked for: the framework's import and the network's
weights, most of a short probe's time, are paid once per backend, not once per group.
`run_all` starts them together, a fair share of the cores each, as a session fixture does: in
the background at the session's start, niced, so they use the cores the other tests leave idle.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pathlib
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# name: (backend, $BATCH_NST_TORCH_COMPILE, arguments). TensorFlow's checkpoint is the one others resume.
PROBES = {"tensorflow": ("tensorflow", "0", ["--parity", "--steps", "1", "4"]),
          "jax": ("jax", "0", ["--parity", "--steps", "1", "4", "--resume"]),
          "torch": ("torch", "0", ["--parity", "--steps", "1", "4", "--broken", "--resume"]),
          "torch-compiled": ("torch", "1", ["--steps", "4"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("weights")
    parser.add_argument("out")
    parser.add_argument("--threads", type=int, help="CPU threads: this probe's share of the cores")
    parser.add_argument("--parity", action="store_true", help="the parity group (tests/backend_probe.py)")
    parser.add_argument("--steps", type=int, nargs="*", default=[], help="the steps group for these steps per call")
    parser.add_argument("--broken", action="store_true",
                        help="last, the steps group at k=4 under a torch.compile that fails, under broken/")
    parser.add_argument("--resume", action="store_true", help="at the end, continue the parity run from stdin's checkpoint")
    args = parser.parse_args()
    from batch_nst.engine import backend

    backend.use(args.backend, threads=args.threads)
    import numpy as np

    from batch_nst.engine import distance
    from batch_nst.engine.optimize import Optimizer
    from batch_nst.engine.vgg import Extractor
    from batch_nst.weights import Weights
    from tests import backend_probe, steps_probe

    distance.REFERENCE_SIDE = 64  # as in-process tests take it (tests/conftest.py): no distance is compared here
    extractor = Extractor(Weights(args.weights, "seeded:0", args.weights))
    optimizer, out = Optimizer(extractor), {}
    if args.parity:
        out.update(backend_probe.parity(optimizer))
    out.update(steps_probe.steps(extractor, args.steps))
    if args.broken:
        out.update({f"broken/{name}": value for name, value in _broken_steps(extractor).items()})
    if args.resume:  # last: TensorFlow's probe has had the most time to finish
        out.update(backend_probe.resumed(optimizer, sys.stdin.buffer.read()))
    np.savez(args.out, **out)


def _broken_steps(extractor) -> dict:
    """The steps group at k=4 with compiling on and `torch.compile` failing at the first call."""
    from batch_nst.engine import backend
    from tests import steps_probe

    os.environ["BATCH_NST_TORCH_COMPILE"] = "1"  # read once per process: read again
    backend.torch_compile.cache_clear()
    steps_probe.break_compile()
    return steps_probe.steps(extractor, [4])


def run_all(weights: str, folder: pathlib.Path, nice: int = 0,
            procs: dict[str, subprocess.Popen] | None = None) -> dict[str, tuple[dict, str]]:
    """Each installed backend's results and log, their probes run at once (at `nice`); TensorFlow's
    checkpoint goes to the others' stdin when its probe is done. `procs`, if given, is filled with
    the running probes, so a caller can stop them."""
    names = [name for name, (backend, _, _) in PROBES.items() if importlib.util.find_spec(backend) is not None]
    threads = max(1, len(os.sched_getaffinity(0)) // len(names))
    procs = {} if procs is None else procs
    procs.update({name: _start(name, weights, folder, threads, nice) for name in names})
    try:
        results = {"tensorflow": _finish("tensorflow", procs["tensorflow"], folder)}
        checkpoint = results["tensorflow"][0]["checkpoint"].tobytes()
        for name, proc in procs.items():
            if "--resume" in PROBES[name][2]:
                _send(proc, checkpoint)
        return {**results, **{name: _finish(name, proc, folder) for name, proc in procs.items() if name not in results}}
    finally:
        for proc in procs.values():  # after a failure, the probes still running: none left behind
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _start(name: str, weights: str, folder: pathlib.Path, threads: int, nice: int) -> subprocess.Popen:
    """One probe, started at `nice`; its output goes to a file (no pipe to fill while the others run)."""
    backend, compile_, extra = PROBES[name]
    cmd = [sys.executable, "-m", "tests.probe", backend, weights, str(folder / f"{name}.npz"),
           "--threads", str(threads), *extra]
    # Inductor's scalar C++ kernels: what is compared (our steps under torch.compile against eager)
    # is the same, and g++ takes ~35% less CPU without the vector headers (65 against 99 s).
    env = {**os.environ, "PYTHONPATH": ROOT, "KERAS_BACKEND": backend, "BATCH_NST_TORCH_COMPILE": compile_,
           "TORCHINDUCTOR_VEC_ISA_OK": "0"}
    stdin = subprocess.PIPE if "--resume" in extra else subprocess.DEVNULL
    with open(folder / f"{name}.log", "w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=stdin, stdout=log, stderr=subprocess.STDOUT,
                                preexec_fn=(lambda: os.nice(nice)) if nice else None)


def _send(proc: subprocess.Popen, checkpoint: bytes) -> None:
    """The checkpoint to a probe's stdin; one that has died already is reported by `_finish`."""
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(checkpoint)
        proc.stdin.close()


def _finish(name: str, proc: subprocess.Popen, folder: pathlib.Path) -> tuple[dict, str]:
    """A started probe's results and log, once it exits; its log's tail if it failed."""
    import numpy as np

    log = (folder / f"{name}.log")
    assert proc.wait(timeout=900) == 0, log.read_text()[-4000:]
    with np.load(folder / f"{name}.npz") as z:
        return dict(z), log.read_text()


if __name__ == "__main__":
    sys.exit(main())
