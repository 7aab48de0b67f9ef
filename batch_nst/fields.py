"""A parameter field's CLI help and bounds, and the checking of a value against them.

`params.StyleParams` declares each field with `opt(help, low=..., high=..., choices=...)` beside
its default; `checked` coerces what a CLI string, a table cell or Python code gave into the
field's type and refuses, naming the field, what its bounds do not allow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from batch_nst.errors import ParamsError

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(float32).max, without importing numpy here


def opt(help_: str, **bounds: Any) -> Any:
    """A field's CLI help and numeric bounds, kept beside its default."""
    return {"help": help_, **bounds}


def checked(f: dataclasses.Field, value: Any) -> Any:
    """Coerce `value` to the field's type and check its bounds, or raise ParamsError naming it."""
    kind = type(f.default)
    meta = f.metadata
    try:
        value = _coerce(kind, value)
    except (TypeError, ValueError):
        finite = " (a finite number)" if kind is float else ""
        raise ParamsError(f"{f.name} must be {kind.__name__}{finite}, got {value!r}") from None
    if kind is float and abs(value) > FLOAT32_MAX:  # the losses and the optimizer run in float32
        raise ParamsError(f"{f.name} must be at most {FLOAT32_MAX:.4g} (float32's largest), got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ParamsError(f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and (value < low or (meta.get("open_low") and value == low)):
        raise ParamsError(f"{f.name} must be {'>' if meta.get('open_low') else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ParamsError(f"{f.name} must be <= {high}, got {value!r}")
    return value


_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _coerce(kind: type, value: Any) -> Any:
    """bool/int/float/str from CLI strings or table cells; bools for numbers, and non-integral
    floats for ints, are refused."""
    if kind is bool:
        if isinstance(value, bool) or value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _BOOLS:
            return _BOOLS[value.strip().lower()]
        raise ValueError(value)
    if isinstance(value, bool):
        raise TypeError(value)
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(value)
        return value
    if not isinstance(value, str):
        raise TypeError(value)
    return value
