"""Each loss term against an independent NumPy implementation of the seed's formulas."""

import numpy as np
import pytest
from keras import ops

from batch_nst.engine import losses


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
    w = {"style": 0.3, "content": 2.0, "tv": 0.05, "temporal": 7.0}
    terms = {k: float(v[0]) for k, v in losses.loss_terms(feats, image, targets, w).items()}
    style = np.mean([np.mean((np_gram(np.asarray(feats[n])[0]) - np_gram(np.asarray(other[n])[0])) ** 2) for n in losses.STYLE_LAYERS])
    content = 0.5 * np.sum((np.asarray(feats[losses.CONTENT_LAYER]) - np.asarray(other[losses.CONTENT_LAYER])) ** 2)
    tv = np_tv(np.asarray(image)[0].astype(np.float64))
    assert terms["style"] == pytest.approx(style, rel=1e-4)
    assert terms["content"] == pytest.approx(content, rel=1e-5)
    assert terms["tv"] == pytest.approx(tv, rel=1e-5)
    assert terms["total"] == pytest.approx(0.3 * style + 2.0 * content + 0.05 * tv, rel=1e-4)
    assert terms["temporal"] == 0.0  # a still image has no frame before it


def test_style_target_counts_the_style_term_as_at_least_the_target_in_total_only(rng):
    """Below style_target an item's style stops pulling (its total holds w * target, so no style
    gradient reaches it); above, the total is the plain weighted sum. The style term reported is
    the item's own either way (records and reports show how far it went)."""
    shapes = {n: (2, 4, 4, 3) for n in losses.STYLE_LAYERS} | {losses.CONTENT_LAYER: (2, 2, 2, 5)}
    feats = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    other = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    image = ops.convert_to_tensor(rng.uniform(0, 255, size=(2, 8, 8, 3)).astype(np.float32))
    w = {"style": 0.3, "content": 2.0, "tv": 0.05, "temporal": 7.0}
    absolute = losses.Targets(content=other[losses.CONTENT_LAYER], grams=losses.style_targets(other))
    plain = losses.loss_terms(feats, image, absolute, w)
    # absolute style losses (no content's own to be a fraction of) are never held
    np.testing.assert_array_equal(losses.loss_terms(feats, image, absolute, w | {"style_floor": 1e9})["total"],
                                  plain["total"])
    own = np.asarray(plain["style"]) / np.array([0.5, 2.0], np.float32)  # item 0 at 0.5 of its own, item 1 at 2.0
    targets = losses.Targets(content=other[losses.CONTENT_LAYER], grams=losses.style_targets(other),
                             own_style=ops.convert_to_tensor(own))
    held = {k: np.asarray(v) for k, v in losses.loss_terms(feats, image, targets, w | {"style_floor": 0.8}).items()}
    rest = np.asarray(plain["total"]) - 0.3 * np.asarray(plain["style"])
    np.testing.assert_allclose(held["style"], [0.5, 2.0], rtol=1e-5)
    np.testing.assert_allclose(held["total"], rest + 0.3 * np.array([0.8, 2.0]), rtol=1e-5)


def test_style_norm_target_takes_each_layer_relative_to_its_target_and_is_scale_free(rng):
    """style_norm="target": mean over layers of mean((G - Gt)^2) / mean(Gt^2); a layer whose
    features are 1000x larger (as block4's are on ImageNet VGG19) counts no more than the others."""
    feats = {n: rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * (1000.0 if n == "block4_conv1" else 1.0)
             for n in losses.STYLE_LAYERS}
    other = {n: rng.normal(size=(2, 4, 4, 3)).astype(np.float32) * (1000.0 if n == "block4_conv1" else 1.0)
             for n in losses.STYLE_LAYERS}
    grams = {n: losses.gram_matrix(ops.convert_to_tensor(f)) for n, f in feats.items()}
    targets = {n: losses.gram_matrix(ops.convert_to_tensor(f)) for n, f in other.items()}
    relative = np.asarray(losses.style_term(grams, targets, "target"))
    seed = np.asarray(losses.style_term(grams, targets, "seed"))
    for b in range(2):
        per_layer = [(np_gram(feats[n][b]) - np_gram(other[n][b]), np_gram(other[n][b])) for n in losses.STYLE_LAYERS]
        assert relative[b] == pytest.approx(np.mean([np.mean(d ** 2) / np.mean(t ** 2) for d, t in per_layer]), rel=1e-4)
        assert seed[b] == pytest.approx(np.mean([np.mean(d ** 2) for d, _ in per_layer]), rel=1e-4)
    scaled = {n: g * 4.0 for n, g in grams.items()}, {n: t * 4.0 for n, t in targets.items()}
    np.testing.assert_allclose(losses.style_term(*scaled, "target"), relative, rtol=1e-5)


def test_area_scale_multiplies_the_pixel_sums_by_the_reference_area(rng):
    """loss_scale="area" at H x W: content and temporal times 512*512/(H*W), TV times its root; style as it is."""
    shapes = {n: (1, 4, 4, 3) for n in losses.STYLE_LAYERS} | {losses.CONTENT_LAYER: (1, 2, 2, 5)}
    feats = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    other = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    image = rng.uniform(0, 255, size=(2, 8, 16, 3)).astype(np.float32)
    weight = np.concatenate([np.zeros((1, 8, 16, 1)), np.ones((1, 8, 16, 1))]).astype(np.float32)  # frame 0: none before
    temporal = {"weight": weight, "linked": np.array([0, 1], np.float32).reshape(2, 1, 1, 1),
                "anchor": np.zeros((2, 8, 16, 3), np.float32)}
    feats = {n: ops.concatenate([f, f], axis=0) for n, f in feats.items()}
    targets = losses.Targets(ops.concatenate([other[losses.CONTENT_LAYER]] * 2, axis=0),
                             {n: ops.concatenate([g, g], axis=0) for n, g in losses.style_targets(other).items()},
                             temporal=temporal)
    weights = dict.fromkeys(("style", "content", "tv", "temporal"), 1.0)
    seed = losses.loss_terms(feats, ops.convert_to_tensor(image), targets, weights, loss_scale="seed")
    area = losses.loss_terms(feats, ops.convert_to_tensor(image), targets, weights, loss_scale="area")
    factor = 512 * 512 / (8 * 16)
    np.testing.assert_allclose(np.asarray(area["style"]), np.asarray(seed["style"]), rtol=1e-6)
    for term, times in (("content", factor), ("tv", np.sqrt(factor)), ("temporal", factor)):
        np.testing.assert_allclose(np.asarray(area[term]), times * np.asarray(seed[term]), rtol=1e-5)
    assert float(seed["temporal"][1]) > 0 and float(seed["temporal"][0]) == 0.0
    assert losses.area_scale(512, 512, "area") == 1.0  # at 512x512 "area" is the seed's arithmetic


def test_temporal_loss_ties_each_frame_to_the_one_before(rng):
    """Frame b against frame b - 1 where linked, against its anchor where not, weighted per pixel."""
    image = rng.uniform(0, 255, size=(3, 5, 4, 3)).astype(np.float32)
    anchor = rng.uniform(0, 255, size=(3, 5, 4, 3)).astype(np.float32)
    weight = rng.uniform(size=(3, 5, 4, 1)).astype(np.float32)
    linked = np.array([0, 1, 1], np.float32).reshape(3, 1, 1, 1)
    got = np.asarray(losses.temporal_loss(ops.convert_to_tensor(image), {
        "weight": ops.convert_to_tensor(weight), "linked": ops.convert_to_tensor(linked),
        "anchor": ops.convert_to_tensor(anchor)}))
    before = [anchor[0], image[0], image[1]]
    want = [0.5 * np.sum(weight[b] * (image[b] - before[b]) ** 2) for b in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_batch_items_are_independent(rng):
    """Item b's loss depends only on item b: what lets several items share a step."""
    a = rng.normal(size=(3, 4, 4, 6)).astype(np.float32)
    t = rng.normal(size=(3, 4, 4, 6)).astype(np.float32)
    batched = losses.content_loss(ops.convert_to_tensor(a), ops.convert_to_tensor(t))
    solo = [losses.content_loss(ops.convert_to_tensor(a[i : i + 1]), ops.convert_to_tensor(t[i : i + 1]))[0] for i in range(3)]
    np.testing.assert_allclose(batched, solo, rtol=1e-6)


@pytest.mark.parametrize("layer", losses.CONTENT_LAYERS)
def test_the_content_term_compares_the_chosen_layer_only(rng, layer):
    """content_layer picks the features the content term reads (and its mask); the other content
    layer's features, however far off, change nothing."""
    shapes = {n: (1, 4, 4, 3) for n in losses.STYLE_LAYERS} | {n: (1, 2, 2, 5) for n in losses.CONTENT_LAYERS}
    feats = {n: ops.convert_to_tensor(rng.normal(size=s).astype(np.float32)) for n, s in shapes.items()}
    target = ops.convert_to_tensor(rng.normal(size=(1, 2, 2, 5)).astype(np.float32))
    targets = losses.Targets(content=target, grams=losses.style_targets(feats))
    image = ops.zeros((1, 8, 8, 3))
    weights = {"style": 0.0, "content": 1.0, "tv": 0.0, "temporal": 0.0}
    other = next(n for n in losses.CONTENT_LAYERS if n != layer)
    far = feats | {other: feats[other] + 1e3}
    got = [float(losses.loss_terms(f, image, targets, weights, content_layer=layer)["content"][0]) for f in (feats, far)]
    want = 0.5 * np.sum((np.asarray(feats[layer]) - np.asarray(target)) ** 2)
    assert got == pytest.approx([want, want], rel=1e-6)


def test_layer_masks_are_tensorflows_area_resize_onto_each_layers_grid(rng):
    """The masks' box filter (NumPy, for every backend) is what tf.image.resize(method="area") gives."""
    tf = pytest.importorskip("tensorflow")
    mask = rng.uniform(size=(2, 37, 21, 1)).astype(np.float32)
    got = losses.layer_masks(mask)
    for name in (*losses.STYLE_LAYERS, *losses.CONTENT_LAYERS):
        height, width = 37, 21
        for _ in range(int(name[5]) - 1):
            height, width = height // 2, width // 2
        want = tf.image.resize(mask, (height, width), method="area").numpy()
        np.testing.assert_allclose(np.asarray(got[name]), want, rtol=1e-5, atol=1e-6)
