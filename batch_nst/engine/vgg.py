"""The truncated VGG19 feature extractor, built from a local weights file.

Fetching weights (Keras' ImageNet download, or a copy of a file at any URI) lives in
`batch_nst.weights`; this module only turns a local file into a network, so the optimization core
touches no storage. Keras loads both formats a user may hold, chosen by the file's suffix:
the published legacy HDF5 (`*.h5`, `layer_names`/`weight_names` attributes) and Keras 3
`*.weights.h5`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
from keras import ops
from keras.applications import vgg19

from batch_nst.engine import autodiff, backend
from batch_nst.errors import WeightsError
from batch_nst.engine.losses import CONTENT_LAYERS, STYLE_LAYERS

if TYPE_CHECKING:  # resolving weights touches storage; the network only needs the local file
    from batch_nst.params import StyleParams
    from batch_nst.weights import Weights

LAYERS = (*STYLE_LAYERS, *CONTENT_LAYERS)
# Four 2x poolings come before block5: each side needs 16 px to leave one feature pixel there.
MIN_SIDE = 16
# Keras dtype policy per precision: bf16 runs the convolutions in bfloat16 with float32 weights;
# Grams, losses, Adam and the image stay float32 (losses.py casts features first).
POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16"}


@dataclass(frozen=True)
class Variant:
    """Which network of the same weights: the padding of its convolutions and its pooling."""

    tileable: bool = False  # circular padding, for seamless textures (StyleParams.tileable)
    pooling: str = "max"  # "max": Keras' VGG19 (the seed); "avg": Gatys et al.'s (StyleParams.pooling)

    @classmethod
    def of(cls, params: StyleParams) -> Variant:
        return cls(params.tileable, params.pooling)


class Extractor:
    """VGG19 cut at block5_conv2: RGB pixels in [0, 255] -> {layer name: features}.

    Built once per process; nothing after the content layer exists in the graph. The float32
    network is built at once (it also checks the weights); the bfloat16 one and the variants
    (circular padding, average pooling) on first request.
    """

    def __init__(self, weights: Weights):
        self.weights = weights
        self._models = {("fp32", Variant()): _truncated(weights, "fp32")}

    def __call__(self, pixels: Any, precision: str = "fp32", variant: Variant = Variant()) -> dict[str, Any]:
        """[B, H, W, 3] RGB in [0, 255] (array or tensor) -> features keyed by layer name ([B, h, w, C] each)."""
        model = self.model(precision, variant)
        return features(model, autodiff.current().variables(model), pixels)

    def model(self, precision: str = "fp32", variant: Variant = Variant()) -> keras.Model:
        """The network for a precision ("fp32" or "bf16") and a variant; build it outside any
        compiled function: one built while TensorFlow traces keeps Keras' random initial weights,
        not the file's (different in every process: measured, issue 20), so that is refused."""
        if (precision, variant) not in self._models and _tracing():
            raise RuntimeError(f"the {precision} network ({variant}) was first requested inside a compiled "
                               "function: build it before (Extractor.model), where the weights file loads")
        if (precision, Variant()) not in self._models:
            self._models[(precision, Variant())] = _truncated(self.weights, precision)
        if (precision, variant) not in self._models:
            self._models[(precision, variant)] = _variant(self._models[(precision, Variant())], variant)
        return self._models[(precision, variant)]


def _tracing() -> bool:
    """Whether TensorFlow is tracing a function here (JAX and PyTorch build networks eagerly)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return not tf.executing_eagerly()


def features(model: keras.Model, variables: tuple, pixels: Any) -> dict[str, Any]:
    """The network's features of pixels in [0, 255], given the weights as `autodiff` passes them.

    Pixels are cast to float32 first: preprocess_input subtracts the ImageNet means in the
    input's dtype, so uint8 pixels (as decoded) would wrap around instead of going negative.
    """
    return autodiff.current().call(model, variables, vgg19.preprocess_input(ops.cast(pixels, "float32")))


def _truncated(weights: Weights, precision: str) -> keras.Model:
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])  # layers take the policy at construction
    try:
        full = _load_vgg19(weights)
    finally:
        keras.config.set_dtype_policy(previous)
    outputs = {name: full.get_layer(name).output for name in LAYERS}
    model = keras.Model(full.input, outputs, name=f"vgg19_truncated_{precision}")
    model.trainable = False
    autodiff.current().freeze(model)
    return model


class _WrapPad(keras.layers.Layer):
    """Circular padding by one pixel: a tiling texture's edges see each other, not zeros."""

    def call(self, x):
        x = keras.ops.concatenate([x[:, -1:], x, x[:, :1]], axis=1)
        return keras.ops.concatenate([x[:, :, -1:], x, x[:, :, :1]], axis=2)


def _variant(plain: keras.Model, variant: Variant) -> keras.Model:
    """The same network (same weights, same precision) rebuilt layer by layer: with `tileable`
    every 3x3 convolution's zero padding becomes circular padding; with `avg` pooling every 2x2
    max pooling becomes an average (the weights do not change: a pooling has none)."""
    inputs = keras.Input((None, None, 3))
    x, outputs = inputs, {}
    for layer in plain.layers[1:]:  # VGG is a chain: input, then convolutions and poolings
        if isinstance(layer, keras.layers.Conv2D) and variant.tileable:
            conv = keras.layers.Conv2D(layer.filters, layer.kernel_size, padding="valid", activation=layer.activation,
                                       name=layer.name, dtype=layer.dtype_policy)
            x = conv(_WrapPad(dtype=layer.dtype_policy)(x))
            conv.set_weights(layer.get_weights())
        elif isinstance(layer, keras.layers.MaxPooling2D) and variant.pooling == "avg":
            x = keras.layers.AveragePooling2D(layer.pool_size, layer.strides, name=layer.name,
                                              dtype=layer.dtype_policy)(x)
        else:
            x = layer(x)
        if layer.name in LAYERS:
            outputs[layer.name] = x
    model = keras.Model(inputs, outputs, name=f"{plain.name}_{variant.pooling}{'_tileable' * variant.tileable}")
    model.trainable = False
    autodiff.current().freeze(model)
    return model


def _load_vgg19(weights: Weights) -> keras.Model:
    """The full no-top VGG19 with the file's weights, or WeightsError naming the file."""
    try:
        return vgg19.VGG19(include_top=False, weights=weights.path, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises ValueError/OSError/KeyError for bad files
        raise WeightsError(
            f"cannot load VGG19 weights from {weights.source}: {type(err).__name__}: {err}. "
            "Expected Keras' vgg19 no-top weights as legacy HDF5 (*.h5) or Keras 3 (*.weights.h5)."
        ) from None


def effective_precision(requested: str) -> str:
    """"auto" -> "bf16" where this backend runs it natively on this device, else "fp32"; others
    unchanged. Elsewhere bf16 would be emulated, slower than fp32 (backend.native_bf16)."""
    if requested != "auto":
        return requested
    return "bf16" if backend.native_bf16() else "fp32"
