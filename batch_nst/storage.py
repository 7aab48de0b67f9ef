"""The one boundary to storage: fsspec URIs (local paths, file://, s3://, gs://, memory://, ...).

Every error becomes a StorageError naming the URI with its credentials redacted. Writes are atomic:
a local file is written under a hidden temporary name and renamed into place; an object store's
single PUT is atomic by itself. Listing-based fingerprints let a run decide what changed with one
listing call per folder instead of one request per asset.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import uuid
from collections import defaultdict
from typing import Any, Iterable

import fsspec
from fsspec.core import url_to_fs

from batch_nst.errors import StorageError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_SECRET_QUERY = re.compile(r"(?i)([?&][^=&]*(?:token|signature|key|secret|password|credential)[^=&]*=)[^&]*")
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
             "abfss": "adlfs"}
# Change markers in fsspec listings, best first: content hashes, then times.
_MARKERS = ("ETag", "etag", "md5Hash", "md5", "crc32c", "checksum", "mtime", "LastModified", "updated", "created")


def _scheme(uri: str) -> str | None:
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def is_local(uri: str) -> bool:
    return _scheme(uri) in (None, "file", "local")


def resolve(uri: str, base: str | None = None) -> str:
    """An absolute URI: relative paths join `base` (a folder URI or path; default the cwd)."""
    if _scheme(uri) is not None:
        return uri
    if os.path.isabs(uri):
        return os.path.normpath(uri)
    base = base if base is not None else os.getcwd()
    if _scheme(base) in (None, "file", "local"):
        return os.path.normpath(os.path.join(_local_path(base), uri))
    scheme, rest = base.split("://", 1)
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, uri))}"


def parent(uri: str) -> str:
    """The folder holding `uri`, scheme kept."""
    if is_local(uri):
        return os.path.dirname(os.path.abspath(_local_path(uri)))
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{posixpath.dirname(rest.rstrip('/'))}"


def join(base: str, *parts: str) -> str:
    if is_local(base):
        return os.path.join(_local_path(base), *parts)
    return posixpath.join(base, *parts)


def redact(uri: str) -> str:
    """The URI with user:password@ and secret query values replaced by ***, for messages and records."""
    uri = re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1***@", uri)
    return _SECRET_QUERY.sub(r"\1***", uri)


def filesystem(uri: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """(filesystem, path) for a URI, or a StorageError saying what to install."""
    try:
        return url_to_fs(uri)
    except (ImportError, ValueError) as err:
        scheme = _scheme(uri) or "file"
        hint = f" (pip install {_PACKAGES[scheme]})" if scheme in _PACKAGES else ""
        raise StorageError(f"cannot open {redact(uri)}: no filesystem installed for scheme '{scheme}'{hint}: {err}") from None


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with _errors("read", uri):
        return fs.cat_file(path)


def write_bytes(uri: str, data: bytes) -> None:
    """Write atomically: readers see the old file or the whole new one, never a part."""
    fs, path = filesystem(uri)
    with _errors("write", uri):
        if not is_local(uri):
            fs.pipe_file(path, data)
            return
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    with _errors("check", uri):
        return fs.exists(path)


def glob(pattern: str) -> list[str]:
    """Files matching `pattern` (recursive ** allowed), sorted, as full URIs."""
    fs, path = filesystem(pattern)
    with _errors("list", pattern):
        fs.invalidate_cache()
        found = fs.glob(path, detail=True)
    files = sorted(name for name, info in found.items() if info.get("type") == "file")
    if is_local(pattern):
        return files
    return [f"{_scheme(pattern)}://{name.lstrip('/')}" for name in files]


def fingerprints(uris: Iterable[str]) -> dict[str, str]:
    """For each existing URI, size plus the best change marker its listing gives: one listing
    call per folder, not one request per file. Missing URIs are absent from the result."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for uri in uris:
        by_folder[parent(uri)].append(uri)
    result = {}
    for folder, members in by_folder.items():
        listing = _listing(folder)
        for uri in members:
            info = listing.get(_strip(uri))
            if info is not None and info.get("type") == "file":
                result[uri] = _fingerprint(info)
    return result


def cache_locally(uri: str, cache_dir: str) -> tuple[str, str]:
    """(local path, sha256) of `uri`, copying a remote file once into `cache_dir`.

    The copy is keyed by URI and fingerprint (a changed source is copied again) and verified
    against its recorded hash on every use (a damaged cache is copied again).
    """
    if is_local(uri):
        path = _local_path(uri)
        with _errors("read", uri):
            return path, _sha256(path)
    prints = fingerprints([uri])
    if uri not in prints:
        raise StorageError(f"no such file: {redact(uri)}")
    slot = hashlib.sha256(f"{uri}\n{prints[uri]}".encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, slot, posixpath.basename(uri.split("?", 1)[0]))
    if os.path.exists(path) and os.path.exists(path + ".sha256"):
        recorded = open(path + ".sha256").read().strip()
        if _sha256(path) == recorded:
            return path, recorded
    write_bytes(path, read_bytes(uri))
    digest = _sha256(path)
    write_bytes(path + ".sha256", digest.encode())
    return path, digest


def _listing(folder: str) -> dict[str, dict[str, Any]]:
    fs, path = filesystem(folder)
    try:
        fs.invalidate_cache(path)  # a long-lived process must see today's files, not a cached listing
        return {_strip_fs(fs, e["name"]): e for e in fs.ls(path, detail=True)}
    except FileNotFoundError:
        return {}
    except Exception as err:
        raise StorageError(f"cannot list {redact(folder)}: {type(err).__name__}: {err}") from None


def _fingerprint(info: dict[str, Any]) -> str:
    marker = next(((k, info[k]) for k in _MARKERS if info.get(k) not in (None, "")), None)
    return f"size={info.get('size')}" + (f";{marker[0].lower()}={marker[1]}" if marker else "")


def _strip(uri: str) -> str:
    fs, path = filesystem(uri)
    return _strip_fs(fs, path)


def _strip_fs(fs, name: str) -> str:
    return fs._strip_protocol(name).rstrip("/")


def _local_path(uri: str) -> str:
    return os.path.abspath(uri[len("file://"):] if uri.startswith("file://") else uri)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _errors:
    """Turn fsspec/OS exceptions into StorageError naming the (redacted) URI."""

    def __init__(self, verb: str, uri: str):
        self.verb, self.uri = verb, uri

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, StorageError):
            return False
        if isinstance(err, FileNotFoundError):
            raise StorageError(f"no such file: {redact(self.uri)}") from None
        if isinstance(err, PermissionError):
            raise StorageError(f"permission denied: cannot {self.verb} {redact(self.uri)}") from None
        if isinstance(err, (OSError, ValueError, RuntimeError)) or type(err).__module__.split(".")[0] in (
            "fsspec", "s3fs", "gcsfs", "botocore", "aiobotocore", "aiohttp"):
            raise StorageError(f"cannot {self.verb} {redact(self.uri)}: {type(err).__name__}: {err}") from None
        return False
