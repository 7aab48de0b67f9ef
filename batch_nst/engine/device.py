"""The GPU this process may use, found without importing a framework, and the batch it holds.

Asked in the process that runs the engine (a worker, or `stylize`), never in the driver, which
may run on a CPU head: it picks `--backend auto`'s backend (backend.py) and sizes the default
`batch_pixels`, so a GPU steps several 512 px items or a whole animation chunk at once while a
CPU keeps the bound its cores were measured with.

The probe asks `nvidia-smi`, which NVIDIA's driver installs beside itself (the NVIDIA container
toolkit mounts it into containers), and honours $CUDA_VISIBLE_DEVICES as CUDA does: Ray sets it
to the GPUs it gave an actor, and pool.py empties it for an actor it gave none. No nvidia-smi, or
no GPU visible: a CPU. MIG slices are not matched (pass --backend and --batch-pixels there).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from typing import Callable, Mapping

# A CPU's batch: 16 sprites of 128 px, 4 of 256, 1 of 512 (the batching measured on CPU; README,
# "Many sprites per step").
CPU_BATCH_PIXELS = 16 * 128 * 128
# Peak device bytes per optimized pixel, fp32 (the larger precision: the batch is sized before an
# item's precision is known). Measured on an H200 (README, "On a GPU", tests/benchmarks/bench_gpu.py):
# JAX 64 px x 64 items fp32, 1984 MiB process peak (weights and autotuning included) over 64*64*64
# pixels = 7936 B; PyTorch 512 px fp32, 1281 MiB = 5124 B. TensorFlow never ran on a GPU here: JAX's
# figure, the larger one.
BYTES_PER_PIXEL = {"jax": 7936, "torch": 5124, "tensorflow": 7936}
# The share of a GPU (or of its Ray fraction) a batch may fill: the rest is headroom for XLA's and
# cuDNN's autotuning workspaces (JAX's process peak reached 34 GB on the H200 at 512 px fp32, one
# item) and for the compiled programs of other shapes the worker keeps.
BATCH_SHARE = 0.5
_MIB = 2**20


@dataclass(frozen=True)
class Device:
    """The NVIDIA GPUs this process may use; none = a CPU."""

    gpus: int = 0
    memory: int = 0  # bytes of the smallest visible GPU (Keras uses one); 0 without a GPU

    def __post_init__(self) -> None:
        if self.gpus < 0 or self.memory < 0 or bool(self.gpus) != bool(self.memory):
            raise ValueError(f"a device has GPUs and their memory, or neither: got {self.gpus} GPU(s), "
                             f"{self.memory} bytes")


CPU = Device()


@dataclass(frozen=True)
class _Gpu:
    index: str
    uuid: str
    memory: int  # bytes


def probe(query: Callable[[], str | None] | None = None, environ: Mapping[str, str] = os.environ) -> Device:
    """The GPUs this process may use: `query` (default: nvidia-smi's CSV of index, uuid, MiB)
    filtered by $CUDA_VISIBLE_DEVICES."""
    listing = (query or _nvidia_smi)()
    gpus = _visible(_parse(listing or ""), environ.get("CUDA_VISIBLE_DEVICES"))
    return Device(len(gpus), min(gpu.memory for gpu in gpus)) if gpus else CPU


def batch_pixels(device: Device, backend: str, gpu_fraction: float | None = None) -> int:
    """The default memory bound of one batch, in optimized pixels (a sheet's cells and an
    animation's frames count each).

    A CPU keeps `CPU_BATCH_PIXELS`: its cores are busy with one 512 px item, and more items per
    step only add memory. A GPU holds `BATCH_SHARE` of its memory (of this worker's Ray fraction of
    it) at `BYTES_PER_PIXEL[backend]`: on an H200 under JAX ~9.5 megapixels (36 items of 512 px;
    `batch_items` caps the count), on a 48 GB L40S ~3 (11 of 512 px), on a 16 GB card ~1 (4).
    """
    if backend not in BYTES_PER_PIXEL:
        raise ValueError(f"no memory figure for backend {backend!r}: one of {', '.join(BYTES_PER_PIXEL)}")
    if gpu_fraction is not None and gpu_fraction <= 0:
        raise ValueError(f"a GPU fraction is > 0, got {gpu_fraction}")
    if not device.gpus:
        return CPU_BATCH_PIXELS
    share = min(1.0, gpu_fraction or 1.0)  # a worker of several GPUs still runs on one
    return max(1, int(device.memory * share * BATCH_SHARE // BYTES_PER_PIXEL[backend]))


def _nvidia_smi() -> str | None:
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=index,uuid,memory.total", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError):  # no driver, or one that does not answer: a CPU
        return None
    return done.stdout


def _parse(listing: str) -> list[_Gpu]:
    """nvidia-smi's `index, uuid, MiB` lines; a GPU whose memory it cannot tell ([N/A]) is left out."""
    gpus = []
    for line in listing.splitlines():
        fields = [field.strip() for field in line.split(",")]
        if len(fields) == 3 and fields[2].isdigit():
            gpus.append(_Gpu(fields[0], fields[1], int(fields[2]) * _MIB))
    return gpus


def _visible(gpus: list[_Gpu], spec: str | None) -> list[_Gpu]:
    """The GPUs $CUDA_VISIBLE_DEVICES leaves, read as CUDA reads it: unset = all; indices or
    (prefixes of) `GPU-` UUIDs; the list ends at the first entry that names no GPU ("" = none)."""
    if spec is None:
        return gpus
    chosen = []
    for token in (t.strip() for t in spec.split(",")):
        match = next((g for g in gpus if token == g.index or (token.startswith("GPU-") and g.uuid.startswith(token))),
                     None)
        if match is None:
            break
        chosen.append(match)
    return chosen
