"""Which Keras backend runs the engine (TensorFlow, JAX or PyTorch), and each one's device setup.

Keras 3 fixes its backend when it is first imported, from $KERAS_BACKEND, so a process chooses
once: `use()` sets the variable and the settings each framework reads at start-up, then the
engine modules import Keras. This module imports no framework itself (the driver uses it to
validate `--backend`), except inside the functions that configure one.

`auto` (the default) is resolved by `use()`, in the process that runs the engine, from what that
process was given (device.py): JAX where a GPU and JAX's CUDA build are present (the backend
measured on GPUs: README, "On a GPU"), else TensorFlow (the fastest on CPU), else whichever
backend is installed. The driver passes `auto` on unresolved; records name the backend that ran.

Why the device settings matter: Ray's fractional GPUs (`--gpus-per-worker 0.5`) do not cap
memory, so several actors share one card and none may take all of it. TensorFlow takes the whole
card unless memory growth is on; JAX preallocates 75% unless told otherwise; PyTorch's caching
allocator takes only what it uses, so it is left as it is.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from typing import Any, Callable

from batch_nst.engine import device
from batch_nst.errors import ParamsError

BACKENDS = ("tensorflow", "jax", "torch")  # auto's order where no GPU decides: TF is fastest on CPU
AUTO = "auto"
CHOICES = (AUTO, *BACKENDS)
DEFAULT = AUTO
JAX_CUDA = ("jax_cuda12_plugin", "jax_cuda13_plugin")  # jax[cuda12] / jax[cuda13]: JAX that can use a GPU
_ENV = "KERAS_BACKEND"
_TORCH_COMPILE_ENV = "BATCH_NST_TORCH_COMPILE"
_TORCH_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def resolve(name: str | None = None) -> str:
    """The backend asked for: `name`, else $KERAS_BACKEND, else `auto`; ParamsError if unknown."""
    chosen = name or os.environ.get(_ENV) or DEFAULT
    if chosen not in CHOICES:
        source = "--backend" if name else f"${_ENV}"
        raise ParamsError(f"{source} {chosen!r} is not a backend batch-nst runs on: choose one of {', '.join(CHOICES)}")
    return chosen


def choose(found: device.Device, installed: Callable[[str], bool] | None = None) -> str:
    """`auto`'s backend on `found`: JAX on a GPU where JAX's CUDA build is installed, else the
    first of BACKENDS installed (`installed(module)`, default: importable, nothing imported)."""
    has = installed or (lambda module: importlib.util.find_spec(module) is not None)
    if found.gpus and has("jax") and any(has(plugin) for plugin in JAX_CUDA):
        return "jax"
    for name in BACKENDS:
        if has(name):
            return name
    raise ParamsError("--backend auto found no Keras backend installed: pip install tensorflow, jax or torch "
                      "(batch-nst's own dependencies bring TensorFlow)")


def use(name: str | None = None, threads: int | None = None, gpu_fraction: float | None = None,
        found: device.Device | None = None) -> dict[str, Any]:
    """Choose this process's backend and configure its devices; call before the engine is imported.

    `threads` sizes the CPU thread pools to the cores this process was given (two workers on two
    cores must not each spin up a pool for the whole machine); `gpu_fraction` is the share of a GPU
    this process was given; `found` is its device (default: probed), which `auto` chooses by.
    A process whose Keras already runs keeps its backend under `auto`. Returns the settings
    applied, which the worker records and tests read.
    """
    name = resolve(name)
    loaded = sys.modules.get("keras.src.backend.config")
    if name == AUTO:
        name = loaded.backend() if loaded is not None else choose(device.probe() if found is None else found)
    if loaded is not None and loaded.backend() != name:
        raise ParamsError(f"this process already runs Keras on {loaded.backend()}; cannot switch to {name}")
    os.environ[_ENV] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's and XLA's C++ start-up chatter
    return {"backend": name, **_CONFIGURE[name](threads, gpu_fraction)}


def _tensorflow(threads: int | None, gpu_fraction: float | None) -> dict[str, Any]:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    return {"memory_growth": bool(gpus), "threads": threads}


def _jax(threads: int | None, gpu_fraction: float | None) -> dict[str, Any]:
    """Environment only: XLA reads it when its client starts, at the first op."""
    if gpu_fraction and gpu_fraction < 1:
        # A share of the card, with headroom for the CUDA context of the other actors on it.
        os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * gpu_fraction:.3f}"
    else:
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if threads:
        os.environ["XLA_FLAGS"] = " ".join(
            [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false",
             f"intra_op_parallelism_threads={threads}"]).strip()
    keys = ("XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_FLAGS")
    return {key: os.environ[key] for key in keys if key in os.environ}


def _torch(threads: int | None, gpu_fraction: float | None) -> dict[str, Any]:
    import torch

    if threads:
        torch.set_num_threads(threads)
    mode = torch_compile()
    if mode is not None:
        import torch._dynamo

        # Each shape is its own program (as on TF and JAX); past Dynamo's limit of 8 per
        # function, a worker meeting many item sizes would silently run the rest eagerly.
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 256)
    return {"threads": torch.get_num_threads(), "compile": mode or "eager"}


@functools.cache
def torch_compile() -> str | None:
    """The `torch.compile` mode of PyTorch steps, or None for eager: $BATCH_NST_TORCH_COMPILE
    (0 for eager, 1 for "default", or a mode's name), else "default" on CUDA and eager on CPU.

    Why eager on CPU: compiling one 64 px step took 80 s on two AMD EPYC (Zen 4) cores, for steps
    1.7x faster; a worker meeting a few item sizes would spend minutes compiling. Read once per
    process, like $KERAS_BACKEND.
    """
    import torch

    chosen = os.environ.get(_TORCH_COMPILE_ENV, "")
    if chosen not in ("", "0", "1", *_TORCH_MODES):
        raise ParamsError(f"${_TORCH_COMPILE_ENV} {chosen!r}: choose 0, 1 or one of {', '.join(_TORCH_MODES)}")
    if chosen == "":
        return "default" if torch.cuda.is_available() else None
    return {"0": None, "1": "default"}.get(chosen, chosen)


_CONFIGURE = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


@functools.cache
def native_bf16() -> bool:
    """Whether this process's backend runs bfloat16 convolutions natively on its device.

    NVIDIA GPUs of compute capability >= 8.0 (tensor cores) on every backend; on CPU, x86 with AMX
    or AVX-512 BF16 under TensorFlow and PyTorch (oneDNN). XLA on CPU computes bf16 convolutions
    in float32 and rounds, so JAX on CPU never counts as native.
    """
    import keras

    name = keras.backend.backend()
    capability = _GPU_CAPABILITY[name]()
    if capability is not None:
        return capability >= (8, 0)
    return name != "jax" and bool(_cpu_flags() & {"amx_bf16", "avx512_bf16"})


def _tf_capability() -> tuple[int, int] | None:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    details = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) for gpu in gpus]
    return min(details) if details else None


def _jax_capability() -> tuple[int, int] | None:
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    return min(tuple(int(p) for p in d.compute_capability.split(".")) for d in gpus) if gpus else None


def _torch_capability() -> tuple[int, int] | None:
    import torch

    return torch.cuda.get_device_capability() if torch.cuda.is_available() else None


_GPU_CAPABILITY = {"tensorflow": _tf_capability, "jax": _jax_capability, "torch": _torch_capability}


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def versions() -> dict[str, str]:
    """Installed versions of Keras and the backends, for run summaries (missing ones left out)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in ("keras", "tensorflow", "jax", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found
