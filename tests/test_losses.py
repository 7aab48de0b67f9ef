"""Each loss term against an independent NumPy implementation of the seed's formulas."""

import numpy as np
import pytest
from keras import ops

from batch_nst import losses


def np_gram(f):  # [H, W, C] -> [C, C]
    h, w, c = f.shape
    flat = f.reshape(h * w, c).astype(np.float64)
    return flat.T @ flat / (h * w)


def np_tv(img):  # [H, W, 3]
    return np.abs(np.diff(img, axis=0)).sum() + np.abs(np.diff(img, axis=1)).sum()


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_gram_matrix_matches_numpy(rng):
    f = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
    got = losses.gram_matrix(ops.convert_to_tensor(f))
    for b in range(2):
        np.testing.assert_allclose(got[b], np_gram(f[b]), rtol=1e-5, atol=1e-6)


def test_style_content_tv_match_numpy(rng):
    a, b = rng.normal(size=(2, 6, 6, 8)).astype(np.float32), rng.normal(size=(2, 6, 6, 8)).astype(np.float32)
    ga, gb = losses.gram_matrix(ops.convert_to_tensor(a)), losses.gram_matrix(ops.convert_to_tensor(b))
    style = losses.style_loss(ga, gb)
    content = losses.content_loss(ops.convert_to_tensor(a), ops.convert_to_tensor(b))
    img = rng.uniform(0, 255, size=(2, 9, 11, 3)).astype(np.float32)
    tv = losses.tv_loss(ops.convert_to_tensor(img))
    for i in range(2):
        np.testing.assert_allclose(style[i], np.mean((np_gram(a[i]) - np_gram(b[i])) ** 2), rtol=1e-4)
        np.testing.assert_allclose(content[i], 0.5 * np.sum((a[i] - b[i]) ** 2.0), rtol=1e-5)
        np.testing.assert_allclose(tv[i], np_tv(img[i].astype(np.float64)), rtol=1e-5)


def test_loss_terms_weighting_and_layer_mean(rng):
    shapes = {n: (1, 4, 4, 3) for n in losses.STYLE_LAYERS} | {losses.CONTENT_LAYER: (1, 2, 2, 5)}
    feats = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    other = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    targets = losses.Targets(content=other[losses.CONTENT_LAYER], grams=losses.style_targets(other))
    image = ops.convert_to_tensor(rng.uniform(0, 255, size=(1, 8, 8, 3)).astype(np.float32))
    w = {"style": 0.3, "content": 2.0, "tv": 0.05}
    terms = {k: float(v[0]) for k, v in losses.loss_terms(feats, image, targets, w).items()}
    style = np.mean([np.mean((np_gram(np.asarray(feats[n])[0]) - np_gram(np.asarray(other[n])[0])) ** 2) for n in losses.STYLE_LAYERS])
    content = 0.5 * np.sum((np.asarray(feats[losses.CONTENT_LAYER]) - np.asarray(other[losses.CONTENT_LAYER])) ** 2)
    tv = np_tv(np.asarray(image)[0].astype(np.float64))
    assert terms["style"] == pytest.approx(style, rel=1e-4)
    assert terms["content"] == pytest.approx(content, rel=1e-5)
    assert terms["tv"] == pytest.approx(tv, rel=1e-5)
    assert terms["total"] == pytest.approx(0.3 * style + 2.0 * content + 0.05 * tv, rel=1e-4)


def test_batch_items_are_independent(rng):
    """Item b's loss depends only on item b: what lets several items share a step."""
    a = rng.normal(size=(3, 4, 4, 6)).astype(np.float32)
    t = rng.normal(size=(3, 4, 4, 6)).astype(np.float32)
    batched = losses.content_loss(ops.convert_to_tensor(a), ops.convert_to_tensor(t))
    solo = [losses.content_loss(ops.convert_to_tensor(a[i : i + 1]), ops.convert_to_tensor(t[i : i + 1]))[0] for i in range(3)]
    np.testing.assert_allclose(batched, solo, rtol=1e-6)


def test_layer_masks_are_tensorflows_area_resize_onto_each_layers_grid(rng):
    """The masks' box filter (NumPy, for every backend) is what tf.image.resize(method="area") gives."""
    tf = pytest.importorskip("tensorflow")
    mask = rng.uniform(size=(2, 37, 21, 1)).astype(np.float32)
    got = losses.layer_masks(mask)
    for name in (*losses.STYLE_LAYERS, losses.CONTENT_LAYER):
        height, width = 37, 21
        for _ in range(int(name[5]) - 1):
            height, width = height // 2, width // 2
        want = tf.image.resize(mask, (height, width), method="area").numpy()
        np.testing.assert_allclose(np.asarray(got[name]), want, rtol=1e-5, atol=1e-6)
