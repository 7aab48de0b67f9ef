"""The local cache of remote files: copied once, copied again when the source changes, verified
on every use, local files used in place, a missing source named."""

import hashlib
import os

import pytest

from batch_nst.cache import cache_locally
from batch_nst.errors import StorageError
from tests.conftest import count_calls


def test_cache_locally_copies_once_and_verifies(mem, tmp_path, monkeypatch):
    data = b"weights" * 1000
    mem.pipe_file("/models/vgg.weights.h5", data)
    opens = count_calls(monkeypatch, mem, "_open")
    cache = str(tmp_path / "cache")
    path, sha = cache_locally("memory://models/vgg.weights.h5", cache)
    assert sha == hashlib.sha256(data).hexdigest()
    assert path.startswith(cache) and os.path.basename(path) == "vgg.weights.h5"
    assert open(path, "rb").read() == data and len(opens) == 1
    assert sorted(os.listdir(os.path.dirname(path))) == ["vgg.weights.h5", "vgg.weights.h5.sha256"]

    assert cache_locally("memory://models/vgg.weights.h5", cache) == (path, sha)
    assert len(opens) == 1  # a hit does not read the source again

    with open(path, "r+b") as f:
        f.write(b"X")  # damaged cache
    assert cache_locally("memory://models/vgg.weights.h5", cache) == (path, sha)
    assert open(path, "rb").read() == data and len(opens) == 2


def test_cache_locally_copies_again_when_the_source_changes(mem, tmp_path):
    mem.pipe_file("/m/w.h5", b"one")
    first, _ = cache_locally("memory://m/w.h5", str(tmp_path))
    mem.pipe_file("/m/w.h5", b"three")
    second, sha = cache_locally("memory://m/w.h5", str(tmp_path))
    assert first != second and open(second, "rb").read() == b"three"
    assert sha == hashlib.sha256(b"three").hexdigest()


def test_cache_locally_uses_local_files_in_place(tmp_path):
    src = tmp_path / "w.h5"
    src.write_bytes(b"local")
    cache = tmp_path / "cache"
    for uri in (str(src), f"file://{src}"):
        assert cache_locally(uri, str(cache)) == (str(src), hashlib.sha256(b"local").hexdigest())
    assert not cache.exists()


def test_cache_locally_missing_source(mem, tmp_path):
    with pytest.raises(StorageError, match="^no such file: memory://m/none.h5$"):
        cache_locally("memory://m/none.h5", str(tmp_path))
    with pytest.raises(StorageError, match="no such file: .*none.h5"):
        cache_locally(str(tmp_path / "none.h5"), str(tmp_path))
