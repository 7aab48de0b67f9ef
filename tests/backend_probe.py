"""The parity group of tests/probe.py: what tests/test_backends.py compares across backends.

Every loss term and its pixel gradient (plain, tileable, masked), a 10-step stylize of one pair,
L-BFGS, a batch of two sprite sheets under the multiscale schedule, and a run resumed from a
checkpoint (another backend's: TensorFlow's, sent when its probe is done).
"""

from __future__ import annotations

CASES = ("plain", "tileable", "masked")
SIZE, STEPS, CHECKPOINT_AT = 32, 10, 5


def probe_image():
    """A perturbed content with a flat patch: |x| is differentiated at 0 there (where JAX's own
    abs would give +1 and TF and PyTorch 0)."""
    import numpy as np

    from tests.conftest import smooth_image

    noise = np.random.default_rng(5).uniform(-20, 20, (1, SIZE, SIZE, 3))
    image = np.clip(smooth_image(SIZE, SIZE, 1)[None] + noise, 0, 255).astype(np.float32)
    image[:, :8, :8] = 128.0
    return image


def sprite_mask():
    import numpy as np

    y, x = np.mgrid[0:SIZE, 0:SIZE]
    return ((((y - 16) ** 2 + (x - 14) ** 2) < 100) * 1.0)[None, ..., None].astype(np.float32)


def pair(optimizer):
    """The stylized pair, its targets, and the seed's arithmetic for the runs compared.

    Under "area" at 32 px the content term is 256x, and with it the round-off of its zero
    gradient at step 1, which Adam's normalized first steps turn into pixels 3-4 levels apart
    between backends (losses still within 0.5%); style_norm="target" likewise magnifies the small
    layers' round-off. The terms are compared under the defaults (`terms`)."""
    import numpy as np

    from batch_nst.engine import losses
    from batch_nst.params import SEED, StyleParams
    from tests.conftest import smooth_image

    content = smooth_image(SIZE, SIZE, 1)[None].astype(np.float32)
    style = smooth_image(SIZE, SIZE, 2)[None].astype(np.float32)
    params = StyleParams(steps=STEPS, precision="fp32", **SEED)
    return content, style, losses.Targets(optimizer.content_features(content, params), optimizer.style_grams(style)), params


def terms(optimizer, content, style) -> dict:
    """Each weighted term and its pixel gradient, one term switched on at a time, in each case."""
    from keras import ops

    from batch_nst.engine import losses
    from batch_nst.engine.vgg import Variant
    from batch_nst.params import WEIGHTED_TERMS, StyleParams

    image, out = probe_image(), {}
    for case in CASES:
        params, mask = StyleParams(tileable=case == "tileable"), sprite_mask() if case == "masked" else None
        variant = Variant.of(params)
        targets = losses.Targets(optimizer.content_features(content, params),
                                 optimizer.style_grams(style, mask=mask, variant=Variant(pooling=params.pooling)),
                                 None if mask is None else losses.layer_masks(mask))
        gradient = optimizer.gradient(image.shape, "fp32", params)
        for term in WEIGHTED_TERMS:
            weights = {name: ops.convert_to_tensor(float(name == term)) for name in WEIGHTED_TERMS}
            (_, values), grad = gradient(ops.convert_to_tensor(image), optimizer.variables("fp32", variant),
                                         targets.tensors(), weights)
            out[f"{case}/{term}"] = ops.convert_to_numpy(values[term])
            out[f"{case}/{term}/grad"] = ops.convert_to_numpy(grad)
    return out


def parity(optimizer) -> dict:
    """The parity group's arrays, this backend's checkpoint (step 5 of 10) among them."""
    import numpy as np

    from batch_nst.engine.transfer import stylize_many
    from batch_nst.params import SEED, StyleParams
    from tests.conftest import smooth_image

    content, style, targets, params = pair(optimizer)
    out = terms(optimizer, content, style)
    pixels, (history,) = optimizer.run(content, targets, params)
    out["run/pixels"], out["run/history"] = pixels, np.asarray(history)
    _, (history,) = optimizer.run(content, targets, StyleParams(steps=STEPS, optimizer="lbfgs", precision="fp32",
                                                                                **SEED))
    out["lbfgs/history"] = np.asarray(history)
    sheet = np.concatenate([smooth_image(SIZE, SIZE, 3), smooth_image(SIZE, SIZE, 4)], axis=1)  # a 2x1 sheet
    sheets = stylize_many([sheet, sheet[:, ::-1]], [style[0].astype(np.uint8)] * 2, extractor=optimizer,
                          params=StyleParams(grid="2x1", schedule="multiscale", stage_steps="3;3", precision="fp32",
                                             min_size=0))
    out["sheets/history"] = np.asarray([r.history for r in sheets])
    out["sheets/total"] = np.asarray([r.losses.total for r in sheets])
    states = []
    optimizer.run(content, targets, params, checkpoint=states.append, checkpoint_every=CHECKPOINT_AT)
    out["checkpoint"] = np.frombuffer(states[0].to_bytes(), np.uint8)
    return out


def resumed(optimizer, checkpoint: bytes) -> dict:
    """The 10-step run continued from another backend's checkpoint."""
    import numpy as np

    from batch_nst.engine.checkpoint import State

    content, _, targets, params = pair(optimizer)
    pixels, (history,) = optimizer.run(content, targets, params, resume=State.from_bytes(checkpoint))
    return {"resumed/pixels": pixels, "resumed/history": np.asarray(history)}
