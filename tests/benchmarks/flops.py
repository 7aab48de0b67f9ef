"""Arithmetic of one optimization step, for GFLOP/s and share-of-peak figures in benchmarks."""

from __future__ import annotations

import keras


def step_gflop(model: keras.Model, size: int) -> float:
    """GFLOP of one step at size x size: each 3x3 convolution's multiply-adds x 2, forward and
    again for the input gradient (the frozen network needs no weight gradients)."""
    flop, side = 0, size
    for layer in model.layers:
        if isinstance(layer, keras.layers.MaxPooling2D):
            side //= 2
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = layer.kernel.shape  # (3, 3, in, out)
            flop += 2 * side * side * kernel[0] * kernel[1] * kernel[2] * kernel[3]
    return 2 * flop / 1e9
