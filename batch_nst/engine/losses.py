"""The seed's loss terms, written once in `keras.ops` for every backend.

Every function keeps the batch axis: item b's loss depends only on item b, so several same-size
items can be optimized in one step and still get exactly their solo losses and gradients.
Grams and losses are computed in float32 whatever dtype the features arrive in.

The weighted terms are named once, in params.WEIGHTED_TERMS; `loss_terms` returns them by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from batch_nst.params import CONTENT_LAYERS, WEIGHTED_TERMS

REFERENCE_AREA = 512 * 512  # loss_scale="area": the pixel sums are taken per this many pixels
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
CONTENT_LAYER = "block5_conv2"  # the seed's; StyleParams.content_layer chooses among CONTENT_LAYERS


@dataclass(frozen=True)
class Targets:
    """Constant targets of one optimization, computed once, never per step."""

    content: Any  # [B, h, w, 512] features of the content image at the content layer
    grams: dict[str, Any]  # layer -> [B, C, C] Gram matrices of the style image
    masks: dict[str, Any] | None = None  # layer -> [B, h, w, 1] opacity on its grid (alpha_mode="mask")
    temporal: dict[str, Any] | None = None  # animations: see `temporal_loss`; None for still images
    written: tuple[Any, Any] | None = None  # ([B, H, H], [B, W, W]): see `as_written`; None: seen as is
    own_style: Any | None = None  # [B] the content's own style term (params.relative_style); None: absolute

    def part(self, b: int) -> "Targets":
        """Item b's targets, as a batch of one (a still item: frames are never taken apart)."""
        assert self.temporal is None, "an animation's frames are optimized together"
        pick = lambda tensors: {n: t[b:b + 1] for n, t in tensors.items()}  # noqa: E731
        return Targets(self.content[b:b + 1], pick(self.grams), None if self.masks is None else pick(self.masks),
                       written=None if self.written is None else tuple(m[b:b + 1] for m in self.written),
                       own_style=None if self.own_style is None else self.own_style[b:b + 1])

    def tensors(self) -> tuple:
        """As backend tensors in plain dicts: what compiled steps take (a dataclass would not
        trace; NumPy targets would be copied to the device at every step)."""
        def convert(tensors: dict[str, Any] | None) -> dict[str, Any] | None:
            return None if tensors is None else {n: ops.convert_to_tensor(t) for n, t in tensors.items()}

        written = None if self.written is None else tuple(ops.convert_to_tensor(m) for m in self.written)
        own = None if self.own_style is None else ops.convert_to_tensor(self.own_style)
        return (ops.convert_to_tensor(self.content), convert(self.grams), convert(self.masks), convert(self.temporal),
                written, own)


def as_written(image: Any, written: tuple[Any, Any] | None) -> Any:
    """The working image [B, H, W, 3] as it will be written and seen again: each item's rows and
    columns through its round trip to its own size (`prepare.round_trips`), clipped to [0, 255] as
    8-bit pixels are (Lanczos overshoots at sharp edges); as is without one."""
    if written is None:
        return image
    rows, columns = written
    return ops.clip(ops.einsum("bwk,bhkc->bhwc", columns, ops.einsum("bhk,bkwc->bhwc", rows, image)), 0.0, 255.0)


def gram_matrix(features: Any, mask: Any | None = None) -> Any:
    """Channel outer products averaged over pixels: [B, H, W, C] -> [B, C, C].

    With a `mask` ([B, H, W, 1] opacity on the features' grid) the average is weighted by opacity,
    so transparent pixels add nothing (a departure from the seed, for sprites).
    """
    features = ops.cast(features, "float32")
    batch, height, width, channels = features.shape
    flat = ops.reshape(features, (-1, height * width, channels))
    if mask is None:
        return ops.matmul(ops.transpose(flat, (0, 2, 1)), flat) / float(height * width)
    weight = ops.reshape(mask, (-1, height * width, 1))
    total = ops.maximum(ops.sum(weight, axis=(1, 2)), 1e-6)[:, None, None]
    return ops.matmul(ops.transpose(flat * weight, (0, 2, 1)), flat) / total


def style_loss(gram: Any, target: Any) -> Any:
    """Mean squared Gram difference per item: [B, C, C] -> [B]."""
    return ops.mean(ops.square(gram - target), axis=(1, 2))


def style_term(grams: dict[str, Any], targets: dict[str, Any], style_norm: str = "seed") -> Any:
    """The style term per item [B]: the mean over STYLE_LAYERS of each layer's `style_loss`.

    style_norm="target" (a departure from the seed) divides each layer's loss by its target Gram's
    mean square, so every layer counts by its relative error. On ImageNet VGG19 the raw losses
    span five orders of magnitude (block4_conv1's ~1e11, block1_conv1's ~1e6 on the example crate):
    the seed's mean is block4 alone, and the shallow layers, which hold colours and fine
    texture, go unconstrained and come out as colour speckle. The target's mean square is a
    constant of the targets; recomputing it in a step costs a C x C sum per layer (<0.1% of the network).
    """
    per_layer = [style_loss(grams[n], targets[n]) for n in STYLE_LAYERS]
    if style_norm == "target":
        per_layer = [loss / ops.maximum(ops.mean(ops.square(targets[n]), axis=(1, 2)), 1e-12)
                     for loss, n in zip(per_layer, STYLE_LAYERS)]
    return sum(per_layer) / len(STYLE_LAYERS)


def content_loss(features: Any, target: Any, mask: Any | None = None) -> Any:
    """Half the summed squared feature difference per item: [B, H, W, C] -> [B]; with a `mask`
    (on the features' grid), each pixel's difference weighted by its opacity."""
    diff = ops.square(ops.cast(features, "float32") - target)
    if mask is not None:
        diff = diff * mask
    return 0.5 * ops.sum(diff, axis=(1, 2, 3))


def tv_loss(image: Any, wrap: bool = False) -> Any:
    """Anisotropic total variation of the [0, 255] image per item: [B, H, W, 3] -> [B].

    With `wrap` (tileable textures; a departure from the seed) the differences across the
    wrapped edges count too, so the optimization smooths the seam like any other neighbour pair.
    """
    if wrap:
        dy, dx = image - ops.roll(image, 1, axis=1), image - ops.roll(image, 1, axis=2)
    else:
        dy, dx = image[:, 1:] - image[:, :-1], image[:, :, 1:] - image[:, :, :-1]
    return ops.sum(_abs(dy), axis=(1, 2, 3)) + ops.sum(_abs(dx), axis=(1, 2, 3))


def _abs(x: Any) -> Any:
    """|x| whose gradient at 0 is 0 on every backend (JAX's own abs gives +1 there, TF and
    PyTorch 0; flat regions are common in sprites, so this moved TV gradients by 19-76%)."""
    return x * ops.sign(x)


def temporal_loss(image: Any, temporal: dict[str, Any] | None) -> Any:
    """Animations: half the squared difference between each frame and the one before it, each
    pixel weighted by how little the content changed there: [B, H, W, 3] -> [B].

    `temporal` holds `weight` [B, H, W, 1] (1 where consecutive content frames agree, towards 0
    where they differ; 0 for a first frame), `linked` [B, 1, 1, 1] (1 where the frame before is
    item b - 1 of this batch) and `anchor` [B, H, W, 3] (the frame before as already stylized, for
    the first frame of a batch that continues an animation). Item b's term couples it to b - 1:
    the batch's summed loss, and so its gradient, is what ties the frames.
    """
    if temporal is None:
        return ops.zeros((image.shape[0],), "float32")
    linked = temporal["linked"]
    before = linked * ops.roll(image, 1, axis=0) + (1.0 - linked) * temporal["anchor"]
    return 0.5 * ops.sum(temporal["weight"] * ops.square(image - before), axis=(1, 2, 3))


def area_scale(height: int, width: int, loss_scale: str) -> float:
    """What the content and temporal sums are multiplied by: REFERENCE_AREA / (H * W) under
    "area", so a 64 px sprite, a 2048 px texture and every multiscale stage get a 512x512 image's
    balance between them and the (size-independent) style term; 1 under "seed".

    TV is multiplied by its square root instead: TV sums differences between neighbours, and a
    picture's neighbours differ by less the more pixels it has, so its TV grows with the side,
    not the area (measured: it doubles at each multiscale stage under "seed"; per area it halved,
    per side it stays level)."""
    return REFERENCE_AREA / (height * width) if loss_scale == "area" else 1.0


def style_targets(features: dict[str, Any], masks: dict[str, Any] | None = None) -> dict[str, Any]:
    """Gram matrices of the style layers (opacity-weighted with `masks`), the style half of `Targets`."""
    return {name: gram_matrix(features[name], None if masks is None else masks[name]) for name in STYLE_LAYERS}


def loss_terms(features: dict[str, Any], image: Any, targets: Targets, weights: dict[str, Any], *,
               wrap: bool = False, loss_scale: str = "seed", style_norm: str = "seed",
               content_layer: str = CONTENT_LAYER) -> dict[str, Any]:
    """All loss terms per item, each [B]: the WEIGHTED_TERMS unweighted (the pixel sums scaled by
    `area_scale`, the style layers by `style_term`, over the content's own where `targets.own_style`
    is given (relative_style), the content at `content_layer`, where `targets.content` was taken),
    and `total`, their sum weighted by `weights` (term name -> float32 scalar), which the
    optimizer descends. Relative, in `total` the style term counts as at least
    `weights["style_floor"]` where given (params.style_floor()): below it the style stops pulling
    and the content and TV terms alone act, so each item settles near that fraction of its
    content's own distance however near the style it could go."""
    masks = targets.masks or {}
    grams = {n: gram_matrix(features[n], masks.get(n)) for n in STYLE_LAYERS}
    scale = area_scale(image.shape[1], image.shape[2], loss_scale)
    style = style_term(grams, targets.grams, style_norm)
    terms = {
        "style": style if targets.own_style is None else style / targets.own_style,
        "content": scale * content_loss(features[content_layer], targets.content, masks.get(content_layer)),
        "tv": math.sqrt(scale) * tv_loss(image, wrap),
        "temporal": scale * temporal_loss(image, targets.temporal),
    }
    held = "style_floor" in weights and targets.own_style is not None
    pulled = dict(terms, style=ops.maximum(terms["style"], weights["style_floor"])) if held else terms
    return {"total": sum(weights[name] * pulled[name] for name in WEIGHTED_TERMS), **terms}


def layer_masks(mask: np.ndarray) -> dict[str, Any]:
    """Opacity [B, H, W, 1] averaged onto each loss layer's grid (area-weighted, as a box filter).

    Computed once per item in NumPy: constants need no backend op (Keras has no area resize).
    Each 2x2 pooling before a layer halves the grid, rounding down.
    """
    out = {}
    for name in (*STYLE_LAYERS, *CONTENT_LAYERS):
        height, width = mask.shape[1:3]
        for _ in range(int(name[5]) - 1):  # blockN: N - 1 poolings before it
            height, width = height // 2, width // 2
        grid = _area(mask.shape[1], height) @ mask[..., 0] @ _area(mask.shape[2], width).T  # two matmuls:
        out[name] = ops.convert_to_tensor(grid[..., None], "float32")  # one 3-way einsum loops H*W*h*w a pixel
    return out


def _area(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of a box-filter resize: each output pixel the mean of the input it covers."""
    scale = src / dst
    edges = np.arange(dst + 1) * scale
    pixels = np.arange(src)[None]
    overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
    return np.clip(overlap, 0.0, None) / scale
