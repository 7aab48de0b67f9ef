"""Issue 19's GPU targets in one call: JAX and PyTorch steps, batches, sprites, one item end to end.

    python -m tests.benchmarks.bench_gpu [--quick] [--steps 50]

Each measurement runs in a process of its own (Keras fixes its backend at import; PyTorch's
compile mode is read once per process), all through `Optimizer.run`, the production loop (10
steps per compiled call), after a warm-up run that compiles what the timed run calls:
- JAX, 512 px bf16, batch 1: ms a step (target <= 2.0 ms);
- JAX, 512 px bf16, batches 1-8: ms per item-step, the best batch (target <= 1.0 ms);
- PyTorch, 512 px bf16, batch 1: eager and through `torch.compile` (default, reduce-overhead),
  the best mode against JAX (target <= 1.5x);
- JAX, 64 px sprites, batches 16-256: items/s for items of 1000 steps, the best batch (target
  >= 1.5x the 19.6/s measured before);
- one 512 px item of 1000 steps through `batch-nst stylize --backend jax`, process start, weights,
  compiling and writing included (target <= 2.5 s).
The seeded VGG19-shaped weights the tests write stand in for ImageNet's (same shapes and
arithmetic). `--quick` shrinks every size and step count, to check on a CPU that it all runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# Dense bf16 tensor-core peaks (TFLOP/s) from NVIDIA's datasheets: SXM parts.
BF16_PEAK = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}
ITEM_STEPS = 1000
FULL = {"size": 512, "batches": (1, 2, 4, 8), "sprite": 64, "sprite_batches": (16, 64, 128, 256), "e2e_steps": 1000}
QUICK = {"size": 64, "batches": (1, 2), "sprite": 32, "sprite_batches": (2, 4), "e2e_steps": 20}
TORCH_MODES = ("0", "default", "reduce-overhead")  # $BATCH_NST_TORCH_COMPILE: eager, then compiled
SPRITES_BEFORE = 19.6  # JAX items/s at batch 64 on an H200, one step per call (README)


def measure(backend: str, weights: str, sizes: dict, steps: int) -> None:
    """In this process: prints one `ROW {json}` line per configuration as it ends."""
    from batch_nst.engine import backend as backends

    backends.use(backend)
    import numpy as np
    from keras import ops

    from batch_nst.engine.losses import Targets
    from batch_nst.engine.optimize import STEPS_PER_CALL, Optimizer
    from batch_nst.engine.vgg import Extractor, Variant
    from batch_nst.params import StyleParams
    from batch_nst.weights import Weights
    from tests.benchmarks.flops import step_gflop
    from tests.conftest import smooth_image

    optimizer = Optimizer(Extractor(Weights(path=weights, identity="seeded:0", source=weights)))
    memory = _memory(backend)
    configs = [(sizes["size"], batch) for batch in sizes["batches"]]
    if backend == "jax":
        configs += [(sizes["sprite"], batch) for batch in sizes["sprite_batches"]]
    else:
        configs = configs[:1]  # PyTorch: the 512 px step against JAX's
    for size, batch in configs:
        content = np.stack([smooth_image(size, size, seed) for seed in range(batch)]).astype(np.float32)
        network = Variant.of(StyleParams())  # the defaults' network, as the runs below use
        grams = optimizer.style_grams(smooth_image(size, size, 99)[None].astype(np.float32), "bf16", variant=network)
        targets = Targets(optimizer.content_features(content, StyleParams(), "bf16"),
                          {n: ops.repeat(g, batch, axis=0) for n, g in grams.items()})
        optimizer.run(content, targets, StyleParams(steps=STEPS_PER_CALL), precision="bf16")  # compiles
        memory.reset()
        started = time.perf_counter()
        optimizer.run(content, targets, StyleParams(steps=steps), precision="bf16")
        seconds = (time.perf_counter() - started) / steps
        mode = (backends.torch_compile() or "eager") if backend == "torch" else "-"
        row = {"backend": backend, "mode": mode, "size": size, "batch": batch, "ms_per_step": seconds * 1e3, "ms_per_item_step": seconds * 1e3 / batch,
               "items_per_s": batch / (seconds * ITEM_STEPS), "peak_mib_per_item": memory.peak() / batch / 2**20,
               "gflops": step_gflop(optimizer.extractor.model(), size) * batch / seconds, "device": memory.device}
        print("ROW " + json.dumps(row), flush=True)


class _Memory:
    def __init__(self, device: str, reset, peak):
        self.device, self.reset, self.peak = device, reset, peak


def _memory(backend: str) -> _Memory:
    """The device's name and its peak-memory counter (zeros on a CPU, where the script is tried)."""
    if backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return _Memory("cpu", lambda: None, lambda: 0)
        return _Memory(torch.cuda.get_device_name(), torch.cuda.reset_peak_memory_stats,
                       torch.cuda.max_memory_allocated)
    import jax

    device = jax.devices()[0]
    return _Memory(device.device_kind, lambda: None, lambda: (device.memory_stats() or {}).get("peak_bytes_in_use", 0))


def _child(backend: str, mode: str, weights: str, args: argparse.Namespace) -> list[dict]:
    """One backend (and PyTorch compile mode) measured in its own process; its rows."""
    cmd = [sys.executable, "-m", "tests.benchmarks.bench_gpu", "--child", backend, "--weights", weights,
           "--steps", str(args.steps), *(["--quick"] if args.quick else [])]
    env = {**os.environ, "BATCH_NST_TORCH_COMPILE": mode}
    rows, started = [], time.perf_counter()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as child:  # rows echoed as they come
        for line in child.stdout:
            if line.startswith("ROW "):
                rows.append(json.loads(line[4:]))
                print(line.strip(), flush=True)
    print(f"{backend} {mode}: exit {child.returncode}, {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def end_to_end(weights: str, size: int, steps: int) -> float:
    """Wall seconds of `batch-nst stylize --backend jax` on one item, as a user runs it."""
    from PIL import Image

    from tests.conftest import smooth_image

    folder = tempfile.mkdtemp()
    for name, seed in (("content", 1), ("style", 2)):
        Image.fromarray(smooth_image(size, size, seed)).save(os.path.join(folder, f"{name}.png"))
    cmd = [sys.executable, "-m", "batch_nst", "stylize", os.path.join(folder, "content.png"),
           os.path.join(folder, "style.png"), "-o", os.path.join(folder, "out.png"), "--backend", "jax",
           "--weights", weights, "--steps", str(steps), "--max-size", str(size), "--quiet"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started


def _table(rows: list[dict]) -> str:
    peak = next((v for k, v in BF16_PEAK.items() if k in rows[0]["device"]), None) if rows else None
    lines = ["| backend | compile | size | batch | ms/step | ms/item-step | items/s (1000 steps) | peak MiB/item | "
             "GFLOP/s | share of bf16 peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = f"{r['gflops'] / (peak * 1e3):.1%}" if peak else "n/a"
        lines.append(f"| {r['backend']} | {r['mode']} | {r['size']} | {r['batch']} | {r['ms_per_step']:.2f} | "
                     f"{r['ms_per_item_step']:.2f} | {r['items_per_s']:.2f} | {r['peak_mib_per_item']:.0f} | "
                     f"{r['gflops']:.0f} | {share} |")
    return "\n".join(lines)


def _targets(rows: list[dict], sizes: dict, seconds: float) -> list[tuple[str, float, str, bool]]:
    """(what, measured, target, met) for each of the issue's targets that was measured."""
    jax = [r for r in rows if r["backend"] == "jax" and r["size"] == sizes["size"]]
    torch = [r for r in rows if r["backend"] == "torch"]
    sprites = [r for r in rows if r["backend"] == "jax" and r["size"] == sizes["sprite"]]
    found = [(f"stylize end to end, s an item of {sizes['e2e_steps']} steps", seconds, "<= 2.5", seconds <= 2.5)]
    if jax:
        one = next(r for r in jax if r["batch"] == 1)["ms_per_step"]
        found.append(("JAX ms/step, batch 1", one, "<= 2.0", one <= 2.0))
        best = min(r["ms_per_item_step"] for r in jax)
        found.append(("JAX ms/item-step, best batch", best, "<= 1.0", best <= 1.0))
        if torch:
            ratio = min(r["ms_per_step"] for r in torch) / one
            found.append(("PyTorch / JAX, best mode", ratio, "<= 1.5", ratio <= 1.5))
    if sprites:
        rate = max(r["items_per_s"] for r in sprites)
        found.append(("sprites items/s, best batch", rate, f">= {1.5 * SPRITES_BEFORE:.1f}", rate >= 1.5 * SPRITES_BEFORE))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, help="timed steps per configuration, a multiple of 10 (default 50; "
                        "10 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check on a CPU that everything runs")
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    args.steps = args.steps or (10 if args.quick else 50)
    if args.child:
        return measure(args.child, args.weights, sizes, args.steps)
    from tests import vgg_weights

    weights = os.path.join(tempfile.mkdtemp(), "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(weights)
    rows = _child("jax", "0", weights, args)
    for mode in TORCH_MODES:
        rows += _child("torch", mode, weights, args)
    seconds = end_to_end(weights, sizes["size"], sizes["e2e_steps"])
    print(f"GPU: {rows[0]['device'] if rows else 'none'}")
    print(_table(rows))
    for what, value, target, met in _targets(rows, sizes, seconds):
        print(f"- {what}: {value:.2f} (target {target}: {'met' if met else 'not met'})")


if __name__ == "__main__":
    main()
