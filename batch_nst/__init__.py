"""batch-nst: Gatys-style neural style transfer for whole asset libraries.

The public surface is what `__all__` lists; everything else may change between versions.
Keras and its backend are imported only when an engine name is first used, so `import batch_nst` stays
cheap for drivers and tools that never build the network.
"""

from __future__ import annotations

import importlib

from batch_nst.errors import (
    BatchNSTError,
    ImageError,
    ManifestError,
    ParamsError,
    StorageError,
    WeightsError,
)
from batch_nst.params import StyleParams

__version__ = "0.1.0"

_LAZY = {
    "stylize": "batch_nst.engine.transfer",
    "stylize_many": "batch_nst.engine.transfer",
    "evaluate": "batch_nst.engine.transfer",
    "style_distance": "batch_nst.engine.transfer",
    "Result": "batch_nst.engine.transfer",
    "Losses": "batch_nst.engine.transfer",
    "StyleCache": "batch_nst.engine.style_cache",
    "Optimizer": "batch_nst.engine.optimize",
    "Progress": "batch_nst.engine.optimize",
    "Extractor": "batch_nst.engine.vgg",
    "Weights": "batch_nst.weights",
    "resolve_weights": "batch_nst.weights",
}

__all__ = [
    "BatchNSTError",
    "ImageError",
    "ManifestError",
    "ParamsError",
    "StorageError",
    "WeightsError",
    "StyleParams",
    *_LAZY,
]


def __getattr__(name: str):
    """Import engine names on first use (PEP 562)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'batch_nst' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
