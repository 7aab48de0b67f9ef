"""The truncated VGG19 feature extractor, built from a local weights file.

Fetching weights (Keras' ImageNet download, or a copy of a file at any URI) lives in
`batch_nst.weights`; this module only turns a local file into a network, so the optimization core
touches no storage. Keras loads both formats a user may hold, chosen by the file's suffix:
the published legacy HDF5 (`*.h5`, `layer_names`/`weight_names` attributes) and Keras 3
`*.weights.h5`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf
from keras.applications import vgg19

from batch_nst.errors import WeightsError
from batch_nst.losses import CONTENT_LAYER, STYLE_LAYERS

if TYPE_CHECKING:  # resolving weights touches storage; the network only needs the local file
    from batch_nst.weights import Weights

LAYERS = (*STYLE_LAYERS, CONTENT_LAYER)
# Four 2x poolings come before block5: each side needs 16 px to leave one feature pixel there.
MIN_SIDE = 16


class Extractor:
    """VGG19 cut at block5_conv2: RGB pixels in [0, 255] -> {layer name: features}.

    Built once per process; nothing after the content layer exists in the graph.
    """

    def __init__(self, weights: Weights):
        self.weights = weights
        full = _load_vgg19(weights)
        outputs = {name: full.get_layer(name).output for name in LAYERS}
        self.model = tf.keras.Model(full.input, outputs, name="vgg19_truncated")
        self.model.trainable = False

    def __call__(self, pixels: tf.Tensor) -> dict[str, tf.Tensor]:
        """[B, H, W, 3] RGB in [0, 255] -> features keyed by layer name ([B, h, w, C] each)."""
        return self.model(vgg19.preprocess_input(pixels), training=False)


def _load_vgg19(weights: Weights) -> tf.keras.Model:
    """The full no-top VGG19 with the file's weights, or WeightsError naming the file."""
    try:
        return vgg19.VGG19(include_top=False, weights=weights.path, input_shape=(None, None, 3))
    except Exception as err:  # Keras raises ValueError/OSError/KeyError for bad files
        raise WeightsError(
            f"cannot load VGG19 weights from {weights.source}: {type(err).__name__}: {err}. "
            "Expected Keras' vgg19 no-top weights as legacy HDF5 (*.h5) or Keras 3 (*.weights.h5)."
        ) from None


def configure_tensorflow(threads: int | None = None) -> None:
    """Per-process device setup; call before any TensorFlow op runs.

    GPU memory growth on, because Ray's fractional GPUs do not cap memory and TF would otherwise
    take the whole card. On CPU, `threads` sizes TF's pools to the cores this process was given,
    so two workers on two cores do not each spin up a pool for the whole machine.
    """
    for gpu in tf.config.list_physical_devices("GPU"):
        tf.config.experimental.set_memory_growth(gpu, True)
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
