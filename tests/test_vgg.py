"""The truncated extractor and both weights formats; weights resolution from URIs."""


import fsspec
import keras
import numpy as np
import pytest
from keras import ops

from batch_nst.engine import losses
from batch_nst.errors import WeightsError
from batch_nst.engine.vgg import LAYERS, Extractor, Variant
from batch_nst.params import SEED, StyleParams
from batch_nst.weights import Weights
from batch_nst.weights import resolve_weights
from tests.conftest import smooth_image


def test_extractor_is_cut_at_the_content_layer(extractor):
    assert extractor.model().layers[-1].name == losses.CONTENT_LAYERS[-1]
    names = {layer.name for layer in extractor.model().layers}
    assert "block5_conv3" not in names and "block5_pool" not in names
    feats = extractor(ops.convert_to_tensor(smooth_image(32, 48, 0)[None].astype(np.float32)))
    assert set(feats) == set(LAYERS)
    assert feats["block1_conv1"].shape == (1, 32, 48, 64)
    assert feats[losses.CONTENT_LAYER].shape == (1, 2, 3, 512)


def test_average_pooling_is_the_same_network_with_each_max_pooling_averaged(extractor):
    """Variant(pooling="avg") keeps every convolution and its weights; only block1..4_pool change,
    and a block1_pool window's output is the mean of its four inputs (the max under "max")."""
    plain, avg = extractor.model(), extractor.model("fp32", Variant(pooling="avg"))
    kinds = lambda m: [(layer.name, type(layer).__name__) for layer in m.layers[1:]]  # noqa: E731
    assert [n for n, _ in kinds(plain)] == [n for n, _ in kinds(avg)]
    changed = {n: (a, b) for (n, a), (_, b) in zip(kinds(plain), kinds(avg)) if a != b}
    assert changed == {f"block{i}_pool": ("MaxPooling2D", "AveragePooling2D") for i in range(1, 5)}
    for a, b in zip(plain.weights, avg.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))
    x = ops.convert_to_tensor(smooth_image(32, 32, 3)[None].astype(np.float32))
    first = ops.convert_to_numpy(_upto(plain, "block1_conv2", x))
    pooled = lambda m: ops.convert_to_numpy(_upto(m, "block1_pool", x))  # noqa: E731
    windows = first.reshape(1, 16, 2, 16, 2, 64)
    np.testing.assert_allclose(pooled(avg), windows.mean(axis=(2, 4)), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(pooled(plain), windows.max(axis=(2, 4)), rtol=1e-6)
    assert Variant.of(StyleParams()) == Variant(pooling="avg")
    assert Variant.of(StyleParams(**SEED)) == Variant() and Variant.of(StyleParams(tileable=True, **SEED)).tileable


def _upto(model, name, x):
    """The model's layers applied in turn to `x`, up to and including `name` (VGG is a chain)."""
    for layer in model.layers[1:]:
        x = layer(x)
        if layer.name == name:
            return x
    raise KeyError(name)


def test_legacy_and_keras3_files_give_the_same_network(extractor, keras3_weights_path):
    other = Extractor(Weights(keras3_weights_path, "k3", keras3_weights_path))
    x = ops.convert_to_tensor(smooth_image(32, 32, 1)[None].astype(np.float32))
    a, b = extractor(x), other(x)
    for name in LAYERS:
        np.testing.assert_array_equal(ops.convert_to_numpy(a[name]), ops.convert_to_numpy(b[name]))
    assert float(ops.max(a[losses.CONTENT_LAYER])) > 0  # real weights, not a dead network


def test_weights_from_local_path_memory_and_file_uri(legacy_weights_path, tmp_path):
    data = open(legacy_weights_path, "rb").read()
    local = resolve_weights(legacy_weights_path, cache_dir=str(tmp_path / "cache"))
    assert local.path == legacy_weights_path and local.identity.startswith("sha256=")
    with fsspec.open("memory://models/vgg19_notop.h5", "wb") as f:
        f.write(data)
    remote = resolve_weights("memory://models/vgg19_notop.h5", cache_dir=str(tmp_path / "cache"))
    assert remote.identity == local.identity
    assert remote.path.startswith(str(tmp_path / "cache")) and remote.path.endswith("vgg19_notop.h5")
    file_uri = resolve_weights("file://" + legacy_weights_path, cache_dir=str(tmp_path / "cache"))
    assert file_uri.identity == local.identity
    Extractor(remote)  # the cached copy loads


def test_corrupt_weights_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "vgg19_notop.h5"
    bad.write_bytes(b"this is not hdf5" * 100)
    with pytest.raises(WeightsError, match=r"cannot load VGG19 weights from .*vgg19_notop\.h5"):
        Extractor(Weights(str(bad), "x", str(bad)))


def test_wrong_shaped_weights_are_refused(tmp_path):
    import h5py

    path = tmp_path / "small.h5"
    with h5py.File(path, "w") as f:  # a legacy file with one conv of the wrong shape
        f.attrs["layer_names"] = [b"block1_conv1"]
        g = f.create_group("block1_conv1")
        g.attrs["weight_names"] = [b"k:0", b"b:0"]
        g["k:0"] = np.zeros((3, 3, 3, 8), np.float32)
        g["b:0"] = np.zeros(8, np.float32)
    with pytest.raises(WeightsError, match="small.h5"):
        Extractor(Weights(str(path), "x", str(path)))


def test_missing_weights_uri_says_how_to_pass_a_copy(tmp_path):
    with pytest.raises(WeightsError, match=r"no such file.*--weights PATH"):
        resolve_weights(str(tmp_path / "absent.h5"), cache_dir=str(tmp_path))


def test_imagenet_without_internet_says_how_to_pass_a_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached copy
    import keras.utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsError, match=r"cannot download the ImageNet VGG19 weights.*--weights PATH"):
        resolve_weights("imagenet")


@pytest.mark.parametrize("name", ["tensorflow", "torch", "jax"])
def test_auto_precision_follows_the_cpu_flags_where_the_backend_runs_bf16_natively(monkeypatch, name):
    """TF and PyTorch run bf16 convolutions natively with AMX or AVX-512 BF16; XLA on CPU never does."""
    from batch_nst.engine import backend, vgg

    assert vgg.effective_precision("fp32") == "fp32" and vgg.effective_precision("bf16") == "bf16"
    monkeypatch.setattr("keras.backend.backend", lambda: name)
    monkeypatch.setitem(backend._GPU_CAPABILITY, name, lambda: None)  # as on a machine without GPUs
    for flags, native in [({"avx512f", "amx_bf16"}, True), ({"avx512f", "avx512_bf16"}, True), ({"avx2"}, False)]:
        backend.native_bf16.cache_clear()
        monkeypatch.setattr(backend, "_cpu_flags", lambda flags=flags: flags)
        assert vgg.effective_precision("auto") == ("bf16" if native and name != "jax" else "fp32")
    monkeypatch.setitem(backend._GPU_CAPABILITY, name, lambda: (9, 0))  # an H100
    backend.native_bf16.cache_clear()
    assert vgg.effective_precision("auto") == "bf16"
    monkeypatch.undo()
    backend.native_bf16.cache_clear()


def test_bf16_network_keeps_float32_weights_and_close_features(extractor):
    x = ops.convert_to_tensor(smooth_image(32, 32, 2)[None].astype(np.float32))
    fp32, bf16 = extractor(x, "fp32"), extractor(x, "bf16")
    assert "bfloat16" in str(bf16[losses.CONTENT_LAYER].dtype)
    assert all(w.dtype == "float32" for w in extractor.model("bf16").weights)
    ref = ops.convert_to_numpy(fp32[losses.CONTENT_LAYER])
    err = np.abs(ops.convert_to_numpy(ops.cast(bf16[losses.CONTENT_LAYER], "float32")) - ref).max()
    assert err < 0.05 * np.abs(ref).max()


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="only TensorFlow traces while Keras builds")
def test_a_network_first_requested_inside_a_trace_is_refused(weights):
    """Built while TensorFlow traces, VGG19 keeps Keras' random initial weights, not the file's:
    different in every process (issue 20's bf16 'irreproducibility'). Built before, it serves."""
    import tensorflow as tf

    extractor, x = Extractor(weights), ops.convert_to_tensor(smooth_image(16, 16, 1)[None].astype(np.float32))
    with pytest.raises(RuntimeError, match="inside a compiled function"):
        tf.function(lambda x: extractor(x, "bf16")[losses.CONTENT_LAYER])(x)
    extractor.model("bf16")
    assert tf.function(lambda x: extractor(x, "bf16")[losses.CONTENT_LAYER])(x).shape == (1, 1, 1, 512)


def test_uint8_pixels_give_the_features_of_their_float_values(extractor):
    # preprocess_input subtracts the ImageNet means in the input's dtype: uint8 would wrap around
    pixels = smooth_image(32, 32, 1)[None]
    as_decoded = ops.convert_to_numpy(extractor(ops.convert_to_tensor(pixels))[losses.CONTENT_LAYER])
    as_float = ops.convert_to_numpy(extractor(ops.convert_to_tensor(pixels.astype(np.float32)))[losses.CONTENT_LAYER])
    np.testing.assert_array_equal(as_decoded, as_float)
