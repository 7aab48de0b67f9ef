"""A small LRU of per-style values, so a library that shares a few styles computes each once per
process: Gram targets per style, size and precision (engine/batch.py), decoded style images (the
worker)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Hashable


class StyleCache:
    """Least recently used values by key, at most `capacity`; `misses` counts the computations."""

    def __init__(self, capacity: int = 32):
        self.capacity = capacity
        self._values: OrderedDict[Hashable, Any] = OrderedDict()
        self.misses = 0

    def get(self, key: Hashable, compute) -> Any:
        if key in self._values:
            self._values.move_to_end(key)
            return self._values[key]
        self.misses += 1
        value = self._values[key] = compute()
        if len(self._values) > self.capacity:
            self._values.popitem(last=False)
        return value
