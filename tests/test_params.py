import dataclasses
import json

import pytest

from batch_nst.params import SEED, StyleParams, param_names
from batch_nst.errors import ParamsError


def test_defaults_are_the_documented_recipe():
    p = StyleParams()
    assert (p.steps, p.max_size, p.learning_rate, p.init) == (1000, 512, 5.0, "content")
    assert (p.style_weight, p.content_weight, p.tv_weight, p.content_layer) == (1e7, 3e-5, 2.0, "block4_conv2")
    assert p.upscaled_loss == "written" and p.relative_style and p.style_target == 0.3
    assert (p.loss_scale, p.style_norm, p.min_size, p.strength, p.style_size, p.frames) == ("area", "target", 256, 0.5, 0,
                                                                                            False)
    assert p.pooling == "avg"


def test_the_seed_overrides_give_the_seeds_arithmetic():
    seed = StyleParams(**SEED)
    assert (seed.style_norm, seed.loss_scale, seed.min_size, seed.style_weight, seed.tv_weight, seed.pooling) == (
        "seed", "seed", 0, 1e-2, 0.12, "max")
    assert (seed.relative_style, seed.style_target) == (False, 0.0)
    assert (seed.content_weight, seed.content_layer) == (4e-2, "block5_conv2")
    assert (seed.learning_rate, seed.steps) == (5.0, 1000)  # unchanged from the seed


def test_strength_moves_the_style_target_as_it_moves_the_content_weight():
    """More strength, a lower stop: items that reach the target still get more style with it."""
    floors = [StyleParams(strength=s).style_floor() for s in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert floors == pytest.approx([0.6, 0.45, 0.3, 0.15, 0.0])
    assert StyleParams(**SEED).style_floor() == 0.0


def test_strength_moves_the_style_to_content_odds_monotonically():
    weights = {s: StyleParams(strength=s, **SEED).loss_weights() for s in (0.0, 0.25, 0.5, 0.75, 1.0)}
    assert weights[0.5] == {"style": 1e-2, "content": 4e-2, "tv": 0.12, "temporal": StyleParams().temporal_weight}
    assert weights[0.0]["style"] == weights[0.0]["tv"] == weights[0.0]["temporal"] == 0.0  # content alone
    assert weights[1.0]["content"] == 0.0  # style alone (with its regularizers)
    odds = [w["style"] / w["content"] for s, w in weights.items() if 0 < s < 1]
    assert odds == sorted(odds) and odds[0] < odds[1] < odds[2]
    assert odds[0] == pytest.approx(0.25 / 3) and odds[2] == pytest.approx(0.25 * 3)  # s / (1 - s) times 1e-2 / 4e-2


def test_coerces_strings_and_integral_floats_from_tables():
    p = StyleParams.from_mapping({"steps": "20", "max_size": 64.0, "tv_weight": "0", "unknown": 3, "seed": None})
    assert (p.steps, p.max_size, p.tv_weight, p.seed) == (20, 64, 0.0, 0)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"steps": 2.5}, "steps must be int"),
        ({"steps": True}, "steps must be int"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"style_weight": -1}, "style_weight must be >= 0"),
        ({"tv_weight": "nan"}, "tv_weight must be float"),
        ({"max_size": 10**6}, "max_size must be <= 16384"),
        ({"init": "zeros"}, "init must be one of content, noise"),
        ({"strength": 1.5}, "strength must be <= 1"),
        ({"loss_scale": "pixels"}, "loss_scale must be one of area, seed"),
        ({"style_norm": "layers"}, "style_norm must be one of target, seed"),
        ({"min_size": -1}, "min_size must be >= 0"),
        ({"style_size": 256, "style_scale": 0.5}, "style_size and style_scale cannot both be set"),
        ({"frames": True}, "frames needs a grid"),
        ({"frames": True, "grid": "4x1", "optimizer": "lbfgs"}, "frames needs optimizer=adam and stop_tol=0"),
        ({"frames": True, "grid": "4x1", "stop_tol": 0.01}, "frames needs optimizer=adam and stop_tol=0"),
        ({"temporal_weight": -1}, "temporal_weight must be >= 0"),
        ({"strength": "nan"}, r"strength must be float \(a finite number\)"),
        ({"style_weight": 1e39}, r"style_weight must be at most 3.403e\+38 \(float32's largest\)"),
        ({"content_weight": 1e300}, "content_weight must be at most"),
        ({"relative_style": False}, r"style_target 0.3 .* needs relative_style: set style_target 0 with it off"),
        ({"style_target": 1.0}, "style_target must be <= 0.99"),
    ],
)
def test_bad_values_name_the_parameter(values, message):
    with pytest.raises(ParamsError, match=message):
        StyleParams.from_mapping(values)


def test_frozen_hashable_and_canonical_json():
    p = StyleParams(steps=3)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'steps'"):
        p.steps = 4
    assert hash(p) == hash(StyleParams(steps=3))
    assert json.loads(p.to_json())["steps"] == 3
    assert list(json.loads(p.to_json())) == sorted(param_names())


def test_style_blend_weights():
    assert StyleParams(style_blend="0.7;0.3").blend_weights(2) == pytest.approx((0.7, 0.3))
    assert StyleParams(style_blend="1;3").blend_weights(2) == pytest.approx((0.25, 0.75))
    assert StyleParams().blend_weights(3) == pytest.approx((1 / 3,) * 3)
    for bad, message in [("a;b", "numbers separated by ';'"), ("-1;2", ">= 0 with a positive sum"), ("0;0", "positive sum")]:
        with pytest.raises(ParamsError, match=message):
            StyleParams(style_blend=bad)
    with pytest.raises(ParamsError, match="has 2 weights for 3 style"):
        StyleParams(style_blend="1;2").blend_weights(3)


def test_readme_lists_every_option_as_a_manifest_column():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    manifests = readme.split("### Manifests", 1)[1].split("###", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", manifests.split("every one of them", 1)[1].split(")", 1)[0]))
    assert listed == set(param_names())


def test_readme_defaults_table_states_the_defaults_of_the_code():
    """README's recipe table gives each number's default; it must be the one copy in StyleParams
    (it once said tv_weight 0.5 while the code said 1.0)."""
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    table = readme.split("## The recipe (defaults)", 1)[1].split("\n## ", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]+?) \|", table, re.MULTILINE))
    numbers = {name: value for name, value in rows.items() if re.fullmatch(r"[0-9.e+-]+", value)}
    assert {"steps", "max_size", "style_weight", "content_weight", "tv_weight", "min_size", "strength"} <= set(numbers)
    defaults = StyleParams()
    for name, value in numbers.items():
        assert float(value) == getattr(defaults, name), name
    words = {name: value.strip("`") for name, value in rows.items() if value.startswith("`")}
    assert words["pooling"] == defaults.pooling and words["style_norm"] == defaults.style_norm


def test_readme_names_the_flags_that_give_the_seed():
    import pathlib
    import re

    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    flags = readme.split("` reproduces it exactly**", 1)[0].rsplit("**`", 1)[1]
    named = {k.replace("-", "_"): v for k, v in re.findall(r"--(?!no-)([a-z-]+) (\S+)", flags)}
    named.update({k.replace("-", "_"): False for k in re.findall(r"--no-([a-z-]+)", flags)})
    assert named.keys() == SEED.keys() and StyleParams.from_mapping(named) == StyleParams(**SEED)
