"""The storage boundary on memory://, a local folder and file:// URIs (no object-store server)."""

import os
import sys
from datetime import datetime, timezone

import pytest

from batch_nst import storage
from batch_nst.errors import StorageError
from tests.conftest import count_calls


# --- read, write, exists ------------------------------------------------------------------------

def test_round_trip_on_memory_local_and_file_uris(mem, tmp_path):
    for uri in ("memory://out/a/b.bin", str(tmp_path / "deep" / "b.bin"), f"file://{tmp_path}/c.bin"):
        assert not storage.exists(uri)
        storage.write_bytes(uri, b"\x00payload")
        assert storage.exists(uri)
        assert storage.read_bytes(uri) == b"\x00payload"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00payload"


def test_local_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.png"
    storage.write_bytes(str(target), b"old")
    storage.write_bytes(str(target), b"new, longer")
    assert target.read_bytes() == b"new, longer"
    assert os.listdir(tmp_path) == ["out.png"]


def test_failed_local_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def broken_replace(src, dst):
        assert os.path.basename(src).startswith(".out.png.") and src.endswith(".tmp")
        assert open(src, "rb").read() == b"new"  # written in full before the rename
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(StorageError, match=r"cannot write .*out\.png: OSError: disk went away"):
        storage.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.png"]


def test_object_store_write_is_one_put(mem, monkeypatch):
    puts = count_calls(monkeypatch, mem, "pipe_file")
    storage.write_bytes("memory://out/x.png", b"abc")
    assert len(puts) == 1 and mem.cat_file("/out/x.png") == b"abc"


# --- glob ---------------------------------------------------------------------------------------

def test_glob_memory_recursive_keeps_the_scheme_and_lists_only_files(mem):
    for path in ("/lib/b.png", "/lib/a.png", "/lib/sub/deep/c.png", "/lib/sub/d.txt", "/other/e.png"):
        mem.pipe_file(path, b"x")
    assert storage.glob("memory://lib/**/*.png") == [
        "memory://lib/a.png", "memory://lib/b.png", "memory://lib/sub/deep/c.png"]
    assert storage.glob("memory://lib/**") == [
        "memory://lib/a.png", "memory://lib/b.png", "memory://lib/sub/d.txt", "memory://lib/sub/deep/c.png"]
    assert storage.glob("memory://lib/*.jpg") == []


def test_glob_local_returns_plain_absolute_paths(tmp_path, monkeypatch):
    for rel in ("b.png", "a.png", "sub/deep/c.png", "sub/d.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    expected = [str(tmp_path / p) for p in ("a.png", "b.png", "sub/deep/c.png")]
    assert storage.glob(f"{tmp_path}/**/*.png") == expected
    assert storage.glob(f"file://{tmp_path}/**/*.png") == expected
    monkeypatch.chdir(tmp_path)
    assert storage.glob("sub/**") == [str(tmp_path / "sub/d.txt"), str(tmp_path / "sub/deep/c.png")]


# --- fingerprints -------------------------------------------------------------------------------

def test_local_fingerprints_follow_content_changes(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "sub" / "b.png"
    b.parent.mkdir()
    a.write_bytes(b"aaaa")
    b.write_bytes(b"bbbb")
    uris = [str(a), str(b), str(tmp_path / "missing.png"), str(tmp_path / "nofolder" / "x.png")]
    first = storage.fingerprints(uris)
    assert set(first) == {str(a), str(b)}
    assert first[str(a)].startswith("size=4;mtime=")
    assert storage.fingerprints(uris) == first
    a.write_bytes(b"aaaaa")  # different size
    st = os.stat(b)
    os.utime(b, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # same size, touched
    second = storage.fingerprints(uris)
    assert second[str(a)] != first[str(a)] and second[str(b)] != first[str(b)]


def test_memory_fingerprints_change_on_rewrite(mem):
    mem.pipe_file("/lib/a.png", b"aaaa")
    mem.store["/lib/a.png"].created = datetime(2000, 1, 1, tzinfo=timezone.utc)  # so a rewrite differs
    before = storage.fingerprints(["memory://lib/a.png", "memory://lib/gone.png"])
    assert list(before) == ["memory://lib/a.png"] and before["memory://lib/a.png"].startswith("size=4;")
    assert storage.fingerprints(["memory://lib/a.png"]) == before
    mem.pipe_file("/lib/a.png", b"AAAA")
    assert storage.fingerprints(["memory://lib/a.png"]) != before


def test_fingerprints_cost_one_listing_per_folder(mem, monkeypatch):
    for path in ("/lib/x/a.png", "/lib/x/b.png", "/lib/y/c.png"):
        mem.pipe_file(path, b"x")
    lists = count_calls(monkeypatch, mem, "ls")
    infos = count_calls(monkeypatch, mem, "info")
    prints = storage.fingerprints(
        ["memory://lib/x/a.png", "memory://lib/x/b.png", "memory://lib/y/c.png", "memory://lib/x/none.png"])
    assert len(prints) == 3
    assert sorted(call[0] for call in lists) == ["/lib/x", "/lib/y"] and infos == []


def test_fingerprint_prefers_etag_over_times(mem, monkeypatch):
    entries = [
        {"name": "b/x/a.png", "size": 3, "type": "file", "LastModified": "2026-01-01", "ETag": '"abc"'},
        {"name": "b/x/t.png", "size": 5, "type": "file", "LastModified": "2026-01-01"},
        {"name": "b/x/sub", "size": 0, "type": "directory"},
    ]
    monkeypatch.setattr(mem, "ls", lambda path, detail=True, **kw: entries)
    prints = storage.fingerprints(["memory://b/x/a.png", "memory://b/x/t.png", "memory://b/x/sub"])
    assert prints == {"memory://b/x/a.png": "size=3;etag=abc",
                      "memory://b/x/t.png": "size=5;lastmodified=2026-01-01"}


# --- errors -------------------------------------------------------------------------------------

def test_missing_file_names_the_uri(mem, tmp_path):
    with pytest.raises(StorageError, match="^no such file: memory://lib/none.png$"):
        storage.read_bytes("memory://lib/none.png")
    with pytest.raises(StorageError, match=f"^no such file: {tmp_path}/none.png$"):
        storage.read_bytes(str(tmp_path / "none.png"))


def test_permission_denied_names_the_uri(mem, monkeypatch):
    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(mem, "pipe_file", denied)
    with pytest.raises(StorageError, match="^permission denied: memory://out/x.png$"):
        storage.write_bytes("memory://out/x.png", b"x")


def test_unknown_scheme_says_no_filesystem_is_installed():
    with pytest.raises(StorageError, match="^cannot open nosuch://x: no filesystem installed for scheme 'nosuch'$"):
        storage.read_bytes("nosuch://x")
    with pytest.raises(StorageError, match="no filesystem installed for scheme 'nosuch'"):
        storage.glob("nosuch://x/*.png")


def test_missing_backend_suggests_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "gcsfs", None)  # importing gcsfs now raises ImportError
    with pytest.raises(StorageError, match=r"^cannot open gs://bucket/x.png: .* scheme 'gs' \(pip install gcsfs\)$"):
        storage.exists("gs://bucket/x.png")


def test_messages_never_contain_credentials(mem, monkeypatch):
    uri = "memory://AKIA:hunter2/x@host/x.png?token=t0ps3cr3t"
    with pytest.raises(StorageError) as missing:
        storage.read_bytes(uri)

    def leaky(path, *args, **kwargs):
        raise OSError(f"backend failed on {path!r}, asked for {uri}")

    monkeypatch.setattr(mem, "cat_file", leaky)
    with pytest.raises(StorageError) as failed:
        storage.read_bytes(uri)
    for message in (str(missing.value), str(failed.value)):
        assert "hunter2" not in message and "t0ps3cr3t" not in message and "***@host/x.png" in message
    assert str(failed.value).startswith("cannot read memory://***@host/x.png?token=***: OSError:")


def test_unexpected_errors_are_not_disguised(mem, monkeypatch):
    monkeypatch.setattr(mem, "cat_file", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        storage.read_bytes("memory://x.png")


class _Flaky:
    """Fault injection: the next `failures` calls of `method` on the memory filesystem raise `error`."""

    def __init__(self, monkeypatch, fs, method, error, failures):
        self.calls, self.failures, self.error = 0, failures, error
        real = getattr(type(fs), method)

        def flaky(this, *args, **kwargs):
            self.calls += 1
            if self.calls <= self.failures:
                raise self.error
            return real(this, *args, **kwargs)

        monkeypatch.setattr(type(fs), method, flaky)


@pytest.fixture
def fast_retries(monkeypatch):
    monkeypatch.setattr(storage, "RETRY_DELAY", 0.001)


@pytest.mark.parametrize(
    "error",
    [TimeoutError("read timed out"), ConnectionResetError("connection reset by peer"),
     OSError("503 Service Unavailable"), RuntimeError("SlowDown: please reduce your request rate")],
    ids=["timeout", "reset", "5xx", "throttling"],
)
def test_transient_errors_are_retried_with_backoff(mem, fast_retries, monkeypatch, error):
    storage.write_bytes("memory://b/x.bin", b"data")
    reads = _Flaky(monkeypatch, mem, "cat_file", error, failures=3)
    assert storage.read_bytes("memory://b/x.bin") == b"data"
    assert reads.calls == 4
    writes = _Flaky(monkeypatch, mem, "pipe_file", error, failures=2)
    storage.write_bytes("memory://b/y.bin", b"more")
    assert writes.calls == 3 and storage.read_bytes("memory://b/y.bin") == b"more"
    lists = _Flaky(monkeypatch, mem, "ls", error, failures=2)
    assert "memory://b/x.bin" in storage.fingerprints(["memory://b/x.bin"])
    assert lists.calls == 3


def test_transient_errors_give_up_after_bounded_attempts(mem, fast_retries, monkeypatch):
    storage.write_bytes("memory://b/x.bin", b"data")
    reads = _Flaky(monkeypatch, mem, "cat_file", TimeoutError("read timed out"), failures=100)
    with pytest.raises(StorageError, match=r"cannot read memory://b/x.bin: TimeoutError: read timed out"):
        storage.read_bytes("memory://b/x.bin")
    assert reads.calls == storage.RETRY_ATTEMPTS


def test_permanent_errors_fail_at_once_naming_the_uri(mem, fast_retries, monkeypatch):
    writes = _Flaky(monkeypatch, mem, "pipe_file", PermissionError("Access Denied"), failures=100)
    with pytest.raises(StorageError, match=r"permission denied: memory://b/z.bin"):
        storage.write_bytes("memory://b/z.bin", b"x")
    assert writes.calls == 1


def test_a_local_file_named_with_double_colons_is_read_written_and_fingerprinted(tmp_path):
    """Defect 7: fsspec took 'a::b.png' for a chained URL, so a planned file was "no such file"."""
    path = str(tmp_path / "a::b.png")
    storage.write_bytes(path, b"pixels")
    assert storage.read_bytes(path) == b"pixels" and storage.exists(path)
    assert storage.glob(str(tmp_path / "*.png")) == [path] and path in storage.fingerprints([path])
