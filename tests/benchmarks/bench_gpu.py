"""The engine on an NVIDIA GPU, under JAX and under PyTorch (whichever are installed).

    python -m tests.benchmarks.bench_gpu [--backends jax torch] [--sizes 256 512 1024] [--steps 20]

Each backend runs in a process of its own (Keras fixes its backend at import): seconds per Adam
step at each size in fp32 and bf16, items per second for 64 px sprites at batch 1/16/64 (items of
1000 steps, the default), peak GPU memory per item, GFLOP/s and share of the GPU's dense bf16 peak.
The seeded VGG19-shaped weights the tests write stand in for ImageNet's (same shapes, same
arithmetic). Steps are timed through `Optimizer.run`, the production loop, host sync each step
included, after warm-up steps that compile. Prints one Markdown table for README.
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
WARMUP = 3
SPRITE, SPRITE_BATCHES, ITEM_STEPS = 64, (1, 16, 64), 1000


def measure(backend: str, sizes: list[int], steps: int, batches: list[int]) -> None:
    """In this process, on `backend`: prints one `ROW {json}` line per (config, precision) as it ends."""
    from batch_nst.engine import backend as backends

    backends.use(backend)
    import numpy as np
    from keras import ops

    from batch_nst.engine.losses import Targets
    from batch_nst.engine.optimize import Optimizer, loss_weights
    from batch_nst.params import StyleParams
    from batch_nst.engine.vgg import Extractor
    from batch_nst.weights import Weights
    from tests import vgg_weights
    from tests.benchmarks.flops import step_gflop
    from tests.conftest import smooth_image

    path = os.path.join(tempfile.mkdtemp(), "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(path)
    optimizer = Optimizer(Extractor(Weights(path=path, identity="seeded:0", source=path)))
    memory = _memory(backend)
    # Ascending memory, so a process-wide peak (all JAX reports) is each config's own.
    configs = [(SPRITE, b, "bf16") for b in batches] + [(SPRITE, b, "fp32") for b in batches]
    configs += [(size, 1, precision) for size in sizes for precision in ("bf16", "fp32")]
    configs += [(size, 4, "bf16") for size in sizes if size == 512]  # a batch of large items
    for size, batch, precision in configs:
        content = np.stack([smooth_image(size, size, seed) for seed in range(batch)]).astype(np.float32)
        style = smooth_image(size, size, 99)[None].astype(np.float32)
        grams = optimizer.style_grams(style, precision)
        targets = Targets(optimizer.content_features(content, precision),
                          {n: ops.repeat(g, batch, axis=0) for n, g in grams.items()})
        optimizer.run(content, targets, StyleParams(steps=WARMUP), precision=precision)
        memory.reset()
        started = time.perf_counter()
        optimizer.run(content, targets, StyleParams(steps=steps), precision=precision)
        seconds = (time.perf_counter() - started) / steps
        device_seconds = _device_only(optimizer, content, targets, precision, steps, ops, loss_weights, StyleParams())
        gflop = step_gflop(optimizer.extractor.model(), size) * batch
        row = {"backend": backend, "size": size, "batch": batch, "precision": precision, "s_per_step": seconds,
               "device_s_per_step": device_seconds, "items_per_s": batch / (seconds * ITEM_STEPS), "peak_mib_per_item": memory.peak() / batch / 2**20,
               "gflops": gflop / seconds, "device": memory.device}
        print("ROW " + json.dumps(row), flush=True)


def _device_only(optimizer, content, targets, precision, steps, ops, loss_weights, params) -> float:
    """Seconds per step of the compiled step alone, called back to back with one sync at the end:
    what the production loop's per-step host round-trip (losses read back each step) costs."""
    step = optimizer.adam_step(content.shape, precision, params)
    args = (ops.convert_to_tensor(params.learning_rate, "float32"), optimizer.variables(precision, False),
            targets.tensors(), loss_weights(params))
    image = ops.convert_to_tensor(content)
    momentum, velocity = ops.zeros_like(image), ops.zeros_like(image)
    t = ops.convert_to_tensor(1.0)
    image, momentum, velocity, terms = step(image, momentum, velocity, t, *args)
    ops.convert_to_numpy(terms["total"])
    started = time.perf_counter()
    for _ in range(steps):
        image, momentum, velocity, terms = step(image, momentum, velocity, t, *args)
    ops.convert_to_numpy(terms["total"])
    return (time.perf_counter() - started) / steps


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


def _table(rows: list[dict]) -> str:
    peak = next((v for k, v in BF16_PEAK.items() if k in rows[0]["device"]), None) if rows else None
    lines = ["| backend | size | batch | precision | s/step | s/step, device only | items/s (1000 steps) | "
             "peak MiB/item | GFLOP/s | share of bf16 peak |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = f"{r['gflops'] / (peak * 1e3):.1%}" if peak else "n/a"
        lines.append(f"| {r['backend']} | {r['size']} | {r['batch']} | {r['precision']} | {r['s_per_step'] * 1e3:.2f} ms | "
                     f"{r['device_s_per_step'] * 1e3:.2f} ms | "
                     f"{r['items_per_s']:.2f} | {r['peak_mib_per_item']:.0f} | {r['gflops']:.0f} | {share} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["jax", "torch"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512, 1024])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batches", nargs="+", type=int, default=list(SPRITE_BATCHES), help="64 px sprite batches")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return measure(args.child, args.sizes, args.steps, args.batches)
    rows = []
    for backend in args.backends:
        cmd = [sys.executable, "-m", "tests.benchmarks.bench_gpu", "--child", backend, "--steps", str(args.steps),
               "--sizes", *map(str, args.sizes), "--batches", *map(str, args.batches)]
        started = time.perf_counter()
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as child:  # rows echoed as they come
            for line in child.stdout:
                if line.startswith("ROW "):
                    rows.append(json.loads(line[4:]))
                    print(line.strip(), flush=True)
        print(f"{backend}: exit {child.returncode}, {time.perf_counter() - started:.0f} s", flush=True)
    print(f"GPU: {rows[0]['device'] if rows else 'none'}")
    print(_table(rows))


if __name__ == "__main__":
    main()
