"""Remote files copied once into a local cache, hashed on the way and verified on every use.

Weights files live at any fsspec URI but Keras loads a local path: `cache_locally` gives one, and
the file's sha256 (the weights' identity in every item's key). It stands on `storage` for URIs,
listings and errors, and adds only what a cache needs: a slot per source URI and fingerprint,
and a hash recorded beside each copy.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from typing import Any, Iterator

from fsspec.implementations.local import LocalFileSystem

from batch_nst import storage
from batch_nst.errors import StorageError

__all__ = ["cache_locally"]

_CHUNK = 1 << 20


def cache_locally(uri: str, cache_dir: str) -> tuple[str, str]:
    """(local path, sha256) of `uri`; a remote file is copied once into `cache_dir`, a local one
    used in place. The slot is keyed by URI and fingerprint (a changed source is copied again) and
    checked against its recorded hash on every use (a damaged copy is replaced, never loaded).
    The file keeps its name: loaders read the format from the extension."""
    fs, path = storage.filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        with storage.errors_naming("read", uri):
            return path, _sha256(path)
    marker = storage.fingerprints([uri]).get(uri)
    if marker is None:
        raise StorageError(f"no such file: {storage.redact(uri)}")
    slot = hashlib.sha256((uri + marker).encode()).hexdigest()[:16]
    target = os.path.join(os.path.abspath(cache_dir), slot, posixpath.basename(path.split("?", 1)[0]))
    with storage.errors_naming("read", target):
        recorded = _verified(target)
    if recorded:
        return target, recorded
    digest = hashlib.sha256()
    with storage.errors_naming("copy", uri), fs.open(path, "rb") as src:
        storage.write_local(target, _hashed_chunks(src, digest))
    storage.write_bytes(target + ".sha256", digest.hexdigest().encode())
    return target, digest.hexdigest()


def _verified(path: str) -> str | None:
    """The recorded sha256 of a cached file if the file still hashes to it, else None."""
    if not (os.path.exists(path) and os.path.exists(path + ".sha256")):
        return None
    with open(path + ".sha256") as f:
        recorded = f.read().strip()
    return recorded if _sha256(path) == recorded else None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for _ in _hashed_chunks(f, digest):
            pass
    return digest.hexdigest()


def _hashed_chunks(f, digest: Any) -> Iterator[bytes]:
    """The chunks of `f`, fed to `digest` on the way, so a copy is hashed in the same pass."""
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        digest.update(chunk)
        yield chunk
