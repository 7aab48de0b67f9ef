"""Seeded VGG19-shaped weights files for tests: the real ImageNet ones cannot be downloaded here.

He-normal kernels (std sqrt(2 / fan_in)) and zero biases keep activations in a sane range through
the 16 ReLU convolutions. Written in both formats a user may hold: Keras' published legacy HDF5
layout (root `layer_names`, per-layer `weight_names`, as in `..._notop.h5`) and Keras 3's
`.weights.h5`.
"""

from __future__ import annotations

import numpy as np

from batch_nst import imagenet_q8


def seeded_arrays(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """layer -> (kernel [3, 3, cin, cout], bias [cout]) float32, He-normal from `seed`."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, cin, cout in imagenet_q8.CONVS:
        std = np.sqrt(2.0 / (9 * cin))
        out[name] = (rng.normal(0.0, std, (3, 3, cin, cout)).astype(np.float32), np.zeros(cout, np.float32))
    return out


def write_legacy_h5(path: str, seed: int = 0) -> None:
    """The layout of Keras' published `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`."""
    imagenet_q8.write_legacy_h5(path, seeded_arrays(seed))


def write_keras3(path: str, seed: int = 0) -> None:
    """Keras 3 `.weights.h5` of a VGG19 no-top model holding the same seeded arrays."""
    from keras.applications import vgg19

    model = vgg19.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    arrays = seeded_arrays(seed)
    for name, (kernel, bias) in arrays.items():
        model.get_layer(name).set_weights([kernel, bias])
    model.save_weights(path)
