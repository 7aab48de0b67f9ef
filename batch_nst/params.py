"""Frozen, validated parameters. The defaults are defined here once and only here.

`StyleParams` is everything that changes an output image; it is part of every item's key, built
the same way by the CLI (`from_mapping` of parsed flags) and by manifest rows (`with_overrides`).

Default recipe (algorithm version 9, chosen on the real ImageNet weights: README, "The recipe"):
the seed's losses with each style layer taken relative to its target (`style_norm="target"`, style
weight 1e7), the content compared at block4_conv2 (weight 3e-5; Gatys et al.'s conv4_2), VGG19
with average pooling (`pooling="avg"`), assets under 256 px optimized at 256 px and brought back
down (`min_size`), the losses scoring what that way down keeps (`upscaled_loss="written"`),
total-variation weight 2.0, and Adam at a constant learning rate 5.0 (the TF
tutorial's 0.02 on [0, 1] pixels) with beta_1 0.99 and epsilon 0.1 / 255, 1000 steps at most
512 px; the content, TV and temporal terms are taken per 512x512 area, TV per 512 px side
(`loss_scale="area"`, issue 13); sprites' losses count their opaque pixels only
(`alpha_mode="mask"`), and each item's style loss is taken relative to its content's own
(`relative_style`), which stops pulling once it is 0.3 of that (`style_target`). `SEED`'s
overrides (`style_norm="seed"`, `loss_scale="seed"`, `min_size=0`, style weight 1e-2, content
weight 4e-2 at block5_conv2, TV weight 0.12, `pooling="max"`, `alpha_mode="restore"`,
`relative_style=False`, `style_target=0`) are the seed's arithmetic exactly. `precision` only
changes the network's arithmetic (bf16 where the hardware runs it natively); the losses and their
weights stay float32.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from batch_nst.errors import ParamsError
from batch_nst.fields import checked, opt

INITS = ("content", "noise")
PRECISIONS = ("auto", "fp32", "bf16")
ALPHA_MODES = ("restore", "mask")
SCHEDULES = ("single", "multiscale")
OPTIMIZERS = ("adam", "lbfgs")
LOSS_SCALES = ("area", "seed")
STYLE_NORMS = ("target", "seed")
POOLINGS = ("avg", "max")
UPSCALED_LOSSES = ("written", "working")
CONTENT_LAYERS = ("block4_conv2", "block5_conv2")  # the network is cut at the deeper one
MAX_STAGES = 6
# Default temporal_weight: a still background's flicker fell 5x on a flipbook (0.01: 4x; 1 and 10
# no stiller, the content worse); README, "One look".
TEMPORAL_WEIGHT = 0.1
# The weighted loss terms, named once: each has a `<name>_weight` field below, and drives the
# engine's loss dict, the result's `Losses`, the `<name>_loss` record columns, report and CLI summary.
WEIGHTED_TERMS = ("style", "content", "tv", "temporal")
TERMS = ("total", *WEIGHTED_TERMS)  # total: the weighted sum the optimizer descends
# The overrides that give the seed's arithmetic exactly (`StyleParams(**SEED)`, or these flags).
SEED = {"style_norm": "seed", "loss_scale": "seed", "min_size": 0, "style_weight": 1e-2, "tv_weight": 0.12,
        "pooling": "max", "content_layer": "block5_conv2", "content_weight": 4e-2, "alpha_mode": "restore",
        "relative_style": False, "style_target": 0.0}


@dataclass(frozen=True)
class StyleParams:
    """What shapes one stylized image. Hashable, JSON-able, validated on construction."""

    steps: int = field(default=1000, metadata=opt("optimization steps", low=1, high=100_000))
    max_size: int = field(
        default=512, metadata=opt("long side the optimization runs at, at most (larger assets are scaled down)",
                                   low=16, high=16384)
    )
    min_size: int = field(
        default=256,
        metadata=opt("smaller assets are optimized with this long side (at most max_size) and brought back to "
                      "their own size, alpha exact: VGG sees a 96 px sprite as 6x6 deep features, and the way down "
                      "averages away the pixel noise the optimizer leaves (0 = never scaled up, the seed)",
                      low=0, high=16384),
    )
    upscaled_loss: str = field(
        default="written",
        metadata=opt("assets scaled up to min_size: written = the losses see the working image as the asset's own "
                      "size holds it (brought down and back up), so they score the pixels written; working = the "
                      "working image itself, whose finer detail the way down removes (version 6)",
                      choices=UPSCALED_LOSSES),
    )
    relative_style: bool = field(
        default=True,
        metadata=opt("one look across a library: each item's style loss taken relative to its content's own (the "
                      "content's distance from the style where it is optimized), so an asset far from the style is "
                      "not pulled harder than one near it (README, \"Quality on real weights\")"),
    )
    style_target: float = field(
        default=0.3,
        metadata=opt("with relative_style: the style stops pulling an item once its style term is this fraction of "
                      "its content's own, so every asset comes the same way toward the style instead of those "
                      "near it going much farther (0 = no stop: each goes as far as it can, version 8)",
                      low=0.0, high=0.99),
    )
    style_weight: float = field(default=1e7, metadata=opt("weight of the mean style loss", low=0.0))
    content_weight: float = field(default=3e-5, metadata=opt("weight of the content loss", low=0.0))
    tv_weight: float = field(default=2.0, metadata=opt("weight of the total-variation loss", low=0.0))
    temporal_weight: float = field(
        default=TEMPORAL_WEIGHT,
        metadata=opt("animations: weight of the term keeping consecutive output frames close where their content "
                      "frames agree (0 = frames independent); no effect on still images", low=0.0),
    )
    strength: float = field(
        default=0.5,
        metadata=opt("style strength, 0 to 1: 0 = the content unchanged, 1 = style only, 0.5 = the weights as "
                      "given; scales style, TV and temporal weights by 2*strength, content and style_target by "
                      "2*(1-strength)",
                      low=0.0, high=1.0),
    )
    loss_scale: str = field(
        default="area",
        metadata=opt("area: content and temporal terms scaled by 512*512/(H*W) of the size optimized, TV by "
                      "512/sqrt(H*W), so every size gets a 512x512 image's balance; seed: the seed's plain sums",
                      choices=LOSS_SCALES),
    )
    style_norm: str = field(
        default="target",
        metadata=opt("target: each style layer's loss taken relative to its target Gram's mean square, so all five "
                      "layers count (on ImageNet VGG19 block4's raw loss outweighs block1's 1e5 times, which leaves "
                      "colour speckle); seed: the seed's plain mean of the layers' losses", choices=STYLE_NORMS),
    )
    pooling: str = field(
        default="avg",
        metadata=opt("VGG19's four poolings: avg (Gatys et al. 2016; every pixel of a window gets gradient, so no "
                      "hatching) or max (Keras' network, the seed: gradient reaches one pixel in four)",
                      choices=POOLINGS),
    )
    content_layer: str = field(
        default="block4_conv2",
        metadata=opt("VGG19 layer the content loss compares: block4_conv2 (Gatys et al.'s conv4_2: 1/8 of the size "
                      "optimized, so an asset's shapes and edges hold) or block5_conv2 (the seed's: 1/16, an 8x8 grid "
                      "at 128 px)", choices=CONTENT_LAYERS),
    )
    learning_rate: float = field(default=5.0, metadata=opt("Adam learning rate, in pixel units", low=0.0, open_low=True))
    seed: int = field(default=0, metadata=opt("random seed (used by --init noise)", low=0, high=2**31 - 1))
    init: str = field(default="content", metadata=opt("start from the content image or from noise", choices=INITS))
    stop_tol: float = field(
        default=0.0,
        metadata=opt("stop an item once its loss improved by less than this fraction over stop_window steps "
                      "(0 = off: always run all steps)", low=0.0, high=1.0),
    )
    stop_window: int = field(default=20, metadata=opt("steps stop_tol looks back over", low=1, high=10_000))
    style_scale: float = field(
        default=1.0,
        metadata=opt("style image's size relative to the optimization's long side: < 1 finer strokes, "
                      "> 1 coarser", low=0.05, high=8.0),
    )
    style_size: int = field(
        default=0,
        metadata=opt("the style image's long side in the asset's own pixels, whatever the asset's size: strokes "
                      "of one size across a library (0 = off: style_scale decides)", low=0, high=16384),
    )
    style_blend: str = field(
        default="",
        metadata=opt("weights of several styles (style URIs joined by ';'), e.g. '0.7;0.3'; empty = equal"),
    )
    preserve_color: bool = field(
        default=False,
        metadata=opt("keep the content's colours: transfer the style to luminance only"),
    )
    alpha_mode: str = field(
        default="mask",
        metadata=opt("restore: alpha set aside and put back exactly (the seed); mask: also compute the losses over "
                      "opaque pixels only and leave fully transparent pixels' colour untouched", choices=ALPHA_MODES),
    )
    tileable: bool = field(
        default=False,
        metadata=opt("seamless textures: circular padding in every convolution and a wrapping TV loss"),
    )
    schedule: str = field(
        default="single",
        metadata=opt("single: optimize at max_size only (the seed); multiscale: coarse to fine, each stage twice "
                      "the last's size up to max_size (or the asset's own size), each starting from the last",
                      choices=SCHEDULES),
    )
    stage_steps: str = field(
        default="",
        metadata=opt("multiscale: steps of each stage, coarse to fine, e.g. '300;100;50' (then `steps` is not "
                      "used); empty = three stages of steps, steps/2, steps/4"),
    )
    optimizer: str = field(
        default="adam",
        metadata=opt("adam (the seed) or lbfgs (Gatys et al.'s; steps = iterations, learning_rate unused, "
                      "precision auto = fp32)",
                      choices=OPTIMIZERS),
    )
    grid: str = field(
        default="",
        metadata=opt("sprite sheets and atlases: COLSxROWS equal cells, each stylized with the same style "
                      "targets and put back in place; empty = the whole image"),
    )
    frames: bool = field(
        default=False,
        metadata=opt("with grid: the sheet's cells, in reading order, are the frames of one animation (a "
                      "flipbook), optimized together with the temporal term"),
    )
    precision: str = field(
        default="auto",
        metadata=opt("network arithmetic: auto = bf16 where the hardware has it, else fp32", choices=PRECISIONS),
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, checked(f, getattr(self, f.name)))
        self.blend_weights(None)  # validates style_blend's numbers
        self._stage_list()
        sheet = self.cells() != (1, 1)  # also validates grid
        if self.style_size and self.style_scale != 1.0:
            raise ParamsError("style_size and style_scale cannot both be set: style_size is in pixels, style_scale "
                              "relative to the asset")
        if self.style_target and not self.relative_style:
            raise ParamsError(f"style_target {self.style_target} is a fraction of the content's own style term and "
                              "needs relative_style: set style_target 0 with it off (--style-target 0 "
                              "--no-relative-style)")
        if self.frames and not sheet:
            raise ParamsError("frames needs a grid: it makes a sheet's cells one animation (animated GIF, APNG "
                              "and WebP contents are animations without it)")
        if self.frames and (self.optimizer == "lbfgs" or self.stop_tol > 0):
            raise ParamsError("frames needs optimizer=adam and stop_tol=0: an animation's frames are optimized "
                              "together and stop together")
        if sheet and self.schedule == "multiscale" and self.stop_tol > 0:
            raise ParamsError("stop_tol cannot be combined with grid and schedule=multiscale: a sheet's cells "
                              "would leave their stages at different steps")

    def stages(self) -> tuple[int, ...]:
        """Steps of each optimization stage, coarse to fine: (steps,) for the single schedule."""
        if self.schedule == "single":
            return (self.steps,)
        return self._stage_list() or (self.steps, max(1, self.steps // 2), max(1, self.steps // 4))

    def _stage_list(self) -> tuple[int, ...]:
        """stage_steps as numbers (checked whatever the schedule); () when empty."""
        if not self.stage_steps.strip():
            return ()
        try:
            stages = tuple(int(s) for s in self.stage_steps.split(";"))
        except ValueError:
            raise ParamsError(f"stage_steps must be integers separated by ';', got {self.stage_steps!r}") from None
        if not 1 <= len(stages) <= MAX_STAGES or min(stages) < 1 or sum(stages) > 100_000:
            raise ParamsError(f"stage_steps must be 1 to {MAX_STAGES} counts >= 1 (at most 100000 in all), "
                              f"got {self.stage_steps!r}")
        return stages

    def cells(self) -> tuple[int, int]:
        """grid as (columns, rows); (1, 1) when empty."""
        if not self.grid.strip():
            return 1, 1
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", self.grid)
        if not match or not all(1 <= int(n) <= 256 for n in match.groups()):
            raise ParamsError(f"grid must be COLSxROWS with 1 to 256 each, e.g. '4x2', got {self.grid!r}")
        return int(match[1]), int(match[2])

    def loss_weights(self) -> dict[str, float]:
        """Each weighted term's weight, by name, with `strength` applied: the style side (style, and
        TV and temporal, which tame the style's artefacts) times 2s, content times 2(1 - s). The odds
        of style to content thus move by s / (1 - s): monotone from content only (0) to style only
        (1), exactly the weights as given at 0.5 (2 * 0.5 is 1.0 in floating point)."""
        style_side, content_side = 2.0 * self.strength, 2.0 * (1.0 - self.strength)
        return {name: getattr(self, f"{name}_weight") * (content_side if name == "content" else style_side)
                for name in WEIGHTED_TERMS}

    def style_floor(self) -> float:
        """The relative style term below which the style stops pulling: `style_target` moved by
        `strength` as the content weight is (times 2(1 - s)), so more strength still means more
        style for items that reach the target (0.3 at 0.5; none at 1, style only)."""
        return self.style_target * 2.0 * (1.0 - self.strength)

    def blend_weights(self, styles: int | None) -> tuple[float, ...]:
        """style_blend as normalized weights for `styles` styles (equal when empty); ParamsError
        when it is not numbers >= 0 with a positive sum, or has another count than `styles`."""
        if not self.style_blend.strip():
            return tuple([1.0 / styles] * styles) if styles else ()
        try:
            weights = tuple(float(w) for w in self.style_blend.split(";"))
        except ValueError:
            raise ParamsError(f"style_blend must be numbers separated by ';', got {self.style_blend!r}") from None
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ParamsError(f"style_blend weights must be >= 0 with a positive sum, got {self.style_blend!r}")
        if styles is not None and len(weights) != styles:
            raise ParamsError(f"style_blend has {len(weights)} weights for {styles} style(s)")
        return tuple(w / sum(weights) for w in weights)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "StyleParams":
        """Build from a mapping, ignoring keys that are not parameters and values that are None."""
        return cls().with_overrides(values)

    def with_overrides(self, values: Mapping[str, Any]) -> "StyleParams":
        """A copy with the given parameters replaced (None and unknown keys left alone)."""
        names = {f.name for f in dataclasses.fields(self)}
        changes = {k: v for k, v in values.items() if k in names and v is not None}
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) of every parameter: the form stored in records."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    def changed(self) -> dict[str, Any]:
        """The parameters that differ from the defaults (computed per item key: no new defaults each call)."""
        defaults = _defaults()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(defaults, f.name)}

    def key_json(self) -> str:
        """Canonical JSON of the non-default parameters: the form hashed into item keys, so adding
        an option (whose default keeps the old behaviour) leaves every existing key as it was.
        Changing a default's value must bump manifest.ALGORITHM_VERSION instead."""
        return json.dumps(self.changed(), sort_keys=True)


@functools.cache
def _defaults() -> StyleParams:
    return StyleParams()


def param_names() -> tuple[str, ...]:
    """Names of every StyleParams field, in declaration order (CLI flags, manifest columns)."""
    return tuple(f.name for f in dataclasses.fields(StyleParams))
