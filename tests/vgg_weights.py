"""Seeded VGG19-shaped weights files for tests: the real ImageNet ones cannot be downloaded here.

He-normal kernels (std sqrt(2 / fan_in)) and zero biases keep activations in a sane range through
the 16 ReLU convolutions. Written in both formats a user may hold: Keras' published legacy HDF5
layout (root `layer_names`, per-layer `weight_names`, as in `..._notop.h5`) and Keras 3's
`.weights.h5`.
"""

from __future__ import annotations

import h5py
import numpy as np

# (name, input channels, output channels) of every no-top VGG19 convolution, in order.
CONVS = [
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256), ("block3_conv4", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512), ("block4_conv4", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512), ("block5_conv4", 512, 512),
]
POOLS = {"block1_conv2": "block1_pool", "block2_conv2": "block2_pool", "block3_conv4": "block3_pool",
         "block4_conv4": "block4_pool", "block5_conv4": "block5_pool"}


def seeded_arrays(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """layer -> (kernel [3, 3, cin, cout], bias [cout]) float32, He-normal from `seed`."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, cin, cout in CONVS:
        std = np.sqrt(2.0 / (9 * cin))
        out[name] = (rng.normal(0.0, std, (3, 3, cin, cout)).astype(np.float32), np.zeros(cout, np.float32))
    return out


def write_legacy_h5(path: str, seed: int = 0) -> None:
    """The layout of Keras' published `vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`."""
    arrays = seeded_arrays(seed)
    layer_names = ["input_1"]
    for name, _, _ in CONVS:
        layer_names.append(name)
        if name in POOLS:
            layer_names.append(POOLS[name])
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [n.encode() for n in layer_names]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.2.4"
        for layer in layer_names:
            group = f.create_group(layer)
            names = [f"{layer}_W_1:0", f"{layer}_b_1:0"] if layer in arrays else []
            group.attrs["weight_names"] = [n.encode() for n in names]
            for weight_name, value in zip(names, arrays.get(layer, ())):
                group.create_dataset(weight_name, data=value)


def write_keras3(path: str, seed: int = 0) -> None:
    """Keras 3 `.weights.h5` of a VGG19 no-top model holding the same seeded arrays."""
    from keras.applications import vgg19

    model = vgg19.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    arrays = seeded_arrays(seed)
    for name, (kernel, bias) in arrays.items():
        model.get_layer(name).set_weights([kernel, bias])
    model.save_weights(path)
