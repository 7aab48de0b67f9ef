"""The one boundary to storage: fsspec URIs (local paths, file://, s3://, gs://, memory://, ...).

What touches storage is here; what only reads a URI as text (resolve, join, redact) is in
batch_nst.uris, and re-exported: `storage.join` and the rest are the names callers use. Every failure is a StorageError naming the URI with credentials redacted: messages reach terminals,
logs and metadata records. Writes are atomic (local: hidden temporary file renamed into place;
object stores: one PUT), so retries and reruns never expose half a file. Fingerprints cost one
listing per folder, not one request per asset. Listing caches are dropped before each listing: a
long-lived worker must see today's files.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import random
import time
import uuid
from collections import defaultdict
from typing import Any, Callable, Iterable, Iterator, TypeVar

from fsspec import AbstractFileSystem
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from batch_nst.errors import StorageError
from batch_nst.uris import is_uri, join, parent, redact, resolve, scrub, split

__all__ = ["resolve", "parent", "join", "redact", "filesystem", "read_bytes", "write_bytes", "exists",
           "glob", "names", "name_batches", "fingerprints", "create", "remove", "remove_empty_folder", "write_local", "errors_naming"]

_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
             "abfss": "adlfs"}
_BACKENDS = {"fsspec", "s3fs", "gcsfs", "adlfs", "botocore", "aiobotocore", "aiohttp", "google", "azure"}
# Change markers in fsspec listing entries, best first: content hashes, then times.
_MARKERS = ("ETag", "etag", "md5Hash", "md5", "checksum", "crc32c", "mtime", "LastModified", "updated", "created")
T = TypeVar("T")
# Transient failures, retried: 5 tries over ~3 s at most by default.
RETRY_ATTEMPTS, RETRY_DELAY, RETRY_MAX_DELAY = 5, 0.2, 2.0
_TRANSIENT = ("timeout", "timed out", "throttl", "slowdown", "slow down", "too many requests", "429", "500 ",
              "502", "503", "504", "internalerror", "serviceunavailable", "connection reset", "connection aborted",
              "temporarily unavailable")


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """(filesystem, path) for `uri`; a missing backend is a StorageError saying what to install."""
    if not is_uri(uri):  # a local path: its '::' is a legal file name, not fsspec's URL chaining
        return LocalFileSystem(), os.path.abspath(uri)
    with errors_naming("open", uri):
        try:
            return url_to_fs(uri)
        except (ImportError, ValueError) as err:
            if isinstance(err, ValueError) and "Protocol not known" not in str(err):
                raise
            scheme = split(uri)[0][:-3].lower() or "file"
            hint = f" (pip install {_PACKAGES[scheme]})" if scheme in _PACKAGES else ""
            raise StorageError(f"cannot open {redact(uri)}: no filesystem installed for scheme "
                               f"'{scheme}'{hint}") from None


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with errors_naming("read", uri):
        return _retried(lambda: fs.cat_file(path))


def write_bytes(uri: str, data: bytes) -> None:
    """Write atomically: a reader sees the old file or the whole new one, never a part."""
    fs, path = filesystem(uri)
    with errors_naming("write", uri):
        if isinstance(fs, LocalFileSystem):
            write_local(path, [data])
        else:
            _retried(lambda: fs.pipe_file(path, data))  # one PUT: published whole or not at all


def create(uri: str, data: bytes) -> bool:
    """Write `uri` only if it does not exist yet; False when it already did (a lock's primitive).

    Local: O_EXCL. Object stores: a conditional PUT (If-None-Match) where the backend has one;
    elsewhere a check, a write and a read-back that sees who won.
    """
    fs, path = filesystem(uri)
    with errors_naming("create", uri):
        if isinstance(fs, LocalFileSystem):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return True
        try:
            _retried(lambda: fs.pipe_file(path, data, mode="create"))
            return True
        except FileExistsError:
            return False
        except (TypeError, NotImplementedError, ValueError):  # no conditional PUT here
            if _retried(lambda: fs.exists(path)):
                return False
            _retried(lambda: fs.pipe_file(path, data))
            return _retried(lambda: fs.cat_file(path)) == data


def remove(uris: Iterable[str]) -> None:
    """Delete files (missing ones are fine): one bulk call per filesystem where it has one."""
    by_fs: dict[Any, list[str]] = defaultdict(list)
    first: dict[Any, str] = {}
    for uri in uris:
        fs, path = filesystem(uri)
        by_fs[fs].append(path)
        first.setdefault(fs, uri)
    for fs, paths in by_fs.items():
        with errors_naming("delete", first[fs]):
            try:
                _retried(lambda: fs.rm(paths))
            except FileNotFoundError:
                for path in paths:  # some were already gone: remove the rest one by one
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm_file(path)


def remove_empty_folder(uri: str) -> None:
    """Delete a local folder if it is empty (object stores have no folders to leave behind)."""
    fs, path = filesystem(uri)
    if isinstance(fs, LocalFileSystem):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    with errors_naming("check", uri):
        fs.invalidate_cache(path)
        return _retried(lambda: fs.exists(path))


def glob(pattern: str) -> list[str]:
    """Files (not folders) matching `pattern`, ** recursive, sorted, as URIs that can be opened
    again: the pattern's scheme kept for remote ones, plain absolute paths for local ones."""
    fs, path = filesystem(pattern)
    with errors_naming("list", pattern):
        fs.invalidate_cache()
        found = _retried(lambda: fs.glob(path, detail=True))
    names = sorted(name for name, info in found.items() if info.get("type") == "file")
    if isinstance(fs, LocalFileSystem):
        return names
    prefix = split(pattern)[0]
    return [prefix + name.lstrip("/") for name in names]


def names(folder: str) -> list[str]:
    """The names in one folder, from a listing without details (no stat per entry locally: a
    million names in about a second); a missing folder has none."""
    fs, path = filesystem(folder)
    with errors_naming("list", folder):
        try:
            if isinstance(fs, LocalFileSystem):  # fsspec's ls spends ~15 us an entry on its path
                return os.listdir(path)
            fs.invalidate_cache(path)
            entries = _retried(lambda: fs.ls(path, detail=False))
        except (FileNotFoundError, NotADirectoryError):
            return []
    return [posixpath.basename(entry.rstrip("/")) for entry in entries]


def name_batches(folder: str, size: int = 65_536) -> Iterator[list[str]]:
    """`names`, a batch at a time: a local folder is scanned as it goes (10 M names never held
    at once); an object store's listing comes whole, as `names`."""
    fs, path = filesystem(folder)
    if not isinstance(fs, LocalFileSystem):
        yield from (batch for batch in [names(folder)] if batch)
        return
    with errors_naming("list", folder):
        try:
            with os.scandir(path) as entries:
                batch = []
                for entry in entries:
                    batch.append(entry.name)
                    if len(batch) == size:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        except (FileNotFoundError, NotADirectoryError):
            return


def fingerprints(uris: Iterable[str]) -> dict[str, str]:
    """For each existing URI, its size plus the best change marker its listing gives (missing
    URIs are absent). One url_to_fs per scheme and one ls per folder, never a request per file:
    an incremental run over a large library decides what changed from listings alone."""
    systems: dict[str, AbstractFileSystem] = {}
    folders: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for uri in dict.fromkeys(uris):
        prefix = split(uri)[0]
        if prefix not in systems:
            systems[prefix] = filesystem(uri)[0]
        path = systems[prefix]._strip_protocol(uri).rstrip("/")
        folders[prefix, posixpath.dirname(path)].append((uri, path))
    result = {}
    for (prefix, folder), members in folders.items():
        listing = _listing(systems[prefix], folder, parent(members[0][0]))
        for uri, path in members:
            info = listing.get(path)
            if info is not None and info.get("type") == "file":
                result[uri] = _fingerprint(info)
    return result


def write_local(path: str, chunks: Iterable[bytes]) -> None:
    """Write to a hidden temporary file beside `path`, fsync, then rename over it (batch_nst.cache
    streams its copies through here too)."""
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _listing(fs: AbstractFileSystem, folder: str, shown: str) -> dict[str, dict[str, Any]]:
    """{path: info} for the entries of one folder; empty when the folder does not exist."""
    with errors_naming("list", shown):
        fs.invalidate_cache(folder)
        try:
            entries = _retried(lambda: fs.ls(folder, detail=True))
        except (FileNotFoundError, NotADirectoryError):
            return {}
    return {fs._strip_protocol(e["name"]).rstrip("/"): e for e in entries}


def _fingerprint(info: dict[str, Any]) -> str:
    """"size=N;marker=value" from a listing entry (S3 quotes its ETags: the quotes go)."""
    key = next((k for k in _MARKERS if info.get(k) not in (None, "")), None)
    marker = ";" + key.lower() + "=" + str(info[key]).strip('"') if key else ""
    return f"size={info.get('size')}{marker}"


def _retried(call: Callable[[], T]) -> T:
    """`call()`, tried again with jittered exponential backoff while it fails transiently
    (timeouts, dropped connections, 5xx, throttling): a nightly job outlives a flaky bucket.
    Permanent failures (missing, denied, bad request) raise at once."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return call()
        except Exception as err:
            if attempt == RETRY_ATTEMPTS - 1 or not _transient(err):
                raise
            time.sleep(min(RETRY_MAX_DELAY, RETRY_DELAY * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")


def _transient(err: Exception) -> bool:
    if isinstance(err, (FileNotFoundError, PermissionError, NotADirectoryError, IsADirectoryError)):
        return False
    if isinstance(err, (TimeoutError, ConnectionError)):
        return True
    text = f"{type(err).__name__} {err}".lower()
    return any(marker in text for marker in _TRANSIENT)


@contextlib.contextmanager
def errors_naming(verb: str, uri: str) -> Iterator[None]:
    """Turn fsspec, backend and OS exceptions into StorageError naming the redacted URI; the
    cause is dropped (`from None`) because backend tracebacks quote raw URIs, secrets included.
    Public for the modules that open files through `filesystem` themselves (batch_nst.cache)."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError:
        raise StorageError(f"no such file: {redact(uri)}") from None
    except PermissionError:
        raise StorageError(f"permission denied: {redact(uri)}") from None
    except Exception as err:
        if not isinstance(err, (OSError, ValueError)) and type(err).__module__.split(".")[0] not in _BACKENDS:
            raise
        reason = scrub(f"{type(err).__name__}: {err}", uri)
        raise StorageError(f"cannot {verb} {redact(uri)}: {reason}") from None
