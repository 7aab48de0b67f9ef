"""The device probe, the batch it holds and `--backend auto`'s choice, with injected GPUs (no GPU needed)."""

import pytest

from batch_nst.engine import backend, device
from batch_nst.engine.device import Device
from batch_nst.errors import ParamsError

H200 = "0, GPU-5a1e0c3e-aaaa-bbbb-cccc-000000000000, 143771\n"
TWO = H200 + "1, GPU-9f00d2b1-aaaa-bbbb-cccc-111111111111, 46068\n"  # an H200 beside an L40S


@pytest.mark.parametrize("listing, visible, expected", [
    (None, None, device.CPU),  # no nvidia-smi: a CPU
    ("", None, device.CPU),
    (H200, None, Device(1, 143771 * 2**20)),
    (TWO, None, Device(2, 46068 * 2**20)),  # the smallest: Keras runs on one, any of them
    (TWO, "1", Device(1, 46068 * 2**20)),  # Ray gave this actor the second GPU
    (TWO, "0", Device(1, 143771 * 2**20)),
    (TWO, "GPU-9f00", Device(1, 46068 * 2**20)),  # a UUID prefix, as CUDA takes it
    (TWO, "", device.CPU),  # pool.py's CPU worker on a GPU node
    (TWO, "7,0", device.CPU),  # CUDA ends the list at the first entry naming no GPU
    (TWO, "0,7,1", Device(1, 143771 * 2**20)),
    ("0, GPU-5a1e, [N/A]\n", None, device.CPU),  # memory it cannot tell: not sized, not chosen
])
def test_probe_reads_nvidia_smi_through_cuda_visible_devices(listing, visible, expected):
    environ = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert device.probe(lambda: listing, environ) == expected


def test_probe_without_nvidia_smi_is_a_cpu(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert device.probe() == device.CPU


def test_a_cpu_keeps_its_measured_bound():
    for name in backend.BACKENDS:
        assert device.batch_pixels(device.CPU, name) == device.CPU_BATCH_PIXELS == 16 * 128 * 128


@pytest.mark.parametrize("mib, name, fraction, items_512", [
    (143771, "jax", None, 36),  # an H200: 36 items of 512 px (batch_items caps the count)
    (143771, "jax", 0.5, 18),  # half of it, as Ray's --gpus-per-worker 0.5 gives
    (143771, "jax", 2.0, 36),  # a worker of two GPUs still runs on one
    (143771, "torch", None, 56),  # PyTorch measured less per pixel
    (46068, "jax", None, 11),  # a 48 GB L40S (cluster.yaml's g6e nodes)
    (15360, "tensorflow", None, 3),  # a 16 GB card, TensorFlow at JAX's figure
])
def test_a_gpu_holds_several_512_px_items_from_its_memory(mib, name, fraction, items_512):
    pixels = device.batch_pixels(Device(1, mib * 2**20), name, fraction)
    assert pixels == int(mib * 2**20 * min(1.0, fraction or 1.0) * device.BATCH_SHARE // device.BYTES_PER_PIXEL[name])
    assert pixels // (512 * 512) == items_512


def test_sizing_refuses_what_it_cannot_size():
    with pytest.raises(ValueError, match="no memory figure for backend 'theano'"):
        device.batch_pixels(device.CPU, "theano")
    with pytest.raises(ValueError, match="GPU fraction is > 0, got 0"):
        device.batch_pixels(Device(1, 2**30), "jax", 0)
    with pytest.raises(ValueError, match="GPUs and their memory, or neither"):
        Device(1, 0)


def _installed(*modules):
    return lambda module: module in modules


@pytest.mark.parametrize("found, modules, expected", [
    (Device(1, 2**34), ("tensorflow", "jax", "jax_cuda12_plugin", "torch"), "jax"),
    (Device(1, 2**34), ("jax", "jax_cuda13_plugin"), "jax"),
    (Device(1, 2**34), ("tensorflow", "jax"), "tensorflow"),  # JAX without its CUDA build would run on the CPU
    (device.CPU, ("tensorflow", "jax", "jax_cuda12_plugin", "torch"), "tensorflow"),  # fastest on CPU
    (device.CPU, ("jax", "torch"), "jax"),
    (device.CPU, ("torch",), "torch"),
    (Device(1, 2**34), ("torch",), "torch"),
])
def test_auto_is_jax_on_a_gpu_else_tensorflow_else_what_is_installed(found, modules, expected):
    assert backend.choose(found, _installed(*modules)) == expected


def test_auto_without_any_backend_says_what_to_install():
    with pytest.raises(ParamsError, match="found no Keras backend installed: pip install"):
        backend.choose(device.CPU, _installed())
