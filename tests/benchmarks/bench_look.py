"""One look across a library (issue 13): style strength across sizes, strengths, and animation flicker.

    python -m tests.benchmarks.bench_look [--backend jax] [--sizes 64 128 256 512 1024] [--steps 1000]

1. One content/style pair at each size under `loss_scale` area and seed: how much of the
   content's style loss the output removed (1 - style loss of the output / of the content), the
   content loss per 512x512 area, and the style distance; then the spread across sizes (largest
   over smallest reduction) in each mode. One look means a small spread.
2. The strength strip at 256 px: style and content losses and the style distance at strengths
   0 to 1.
3. A 16-frame 64 px sprite animation (a sprite crossing a still background, as a flipbook sheet):
   independent frames (`temporal_weight` 0) against the default temporal term: the mean change of
   background pixels between consecutive output frames (flicker), final losses, seconds (after a
   warm-up run that compiles).

The seeded VGG19-shaped weights the tests write stand in for ImageNet's (same shapes, same
arithmetic), so the numbers say how the losses behave, not how the pictures look. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

SPRITE, FRAMES = 64, 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--parts", nargs="+", default=["sizes", "strengths", "animation"],
                        choices=["sizes", "strengths", "animation"])
    args = parser.parse_args()
    from batch_nst.engine import backend

    used = backend.use(backend.resolve(args.backend))
    optimizer = _optimizer()
    print(f"backend {used['backend']}, {args.steps} steps, devices {_devices()}\n")
    parts = {"sizes": lambda: _sizes(optimizer, args.sizes, args.steps),
             "strengths": lambda: _strengths(optimizer, args.steps), "animation": lambda: _animation(optimizer, args.steps)}
    for part in args.parts:
        parts[part]()


def _optimizer():
    from batch_nst.engine.optimize import Optimizer
    from batch_nst.engine.vgg import Extractor
    from batch_nst.weights import Weights
    from tests import vgg_weights

    path = os.path.join(tempfile.mkdtemp(), "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(path)
    return Optimizer(Extractor(Weights(path=path, identity="seeded:0", source=path)))


def _pair(size: int):
    """The same picture at every size: a smooth field with finer detail, and a style image."""
    import numpy as np

    from tests.conftest import smooth_image

    from batch_nst.assets import images

    base = smooth_image(1024, 1024, 1).astype(np.float32)
    y, x = np.mgrid[0:1024, 0:1024] / 1024.0
    detail = 40 * np.sin(40 * x + 30 * y)[..., None]
    content = np.clip(base + detail, 0, 255).astype(np.uint8)
    return images.resize(content, size, size), smooth_image(512, 512, 2)


def _sizes(optimizer, sizes: list[int], steps: int) -> None:
    from batch_nst.engine.losses import REFERENCE_AREA
    from batch_nst.params import StyleParams
    from batch_nst.engine.transfer import evaluate, stylize

    print("| loss_scale | size | style loss removed | content loss per 512x512 | style distance | seconds (with compiling) |")
    print("|---|---|---|---|---|---|")
    removed = {}
    for mode in ("area", "seed"):
        for size in sizes:
            content, style = _pair(size)
            params = StyleParams(steps=steps, max_size=size, loss_scale=mode)
            before = evaluate(content, style, content, params=params, extractor=optimizer)
            started = time.perf_counter()
            result = stylize(content, style, params=params, extractor=optimizer)
            seconds = time.perf_counter() - started
            removed[mode, size] = 1 - result.losses.style / before.style
            per_area = result.losses.content * (1.0 if mode == "area" else REFERENCE_AREA / (size * size))
            print(f"| {mode} | {size} | {removed[mode, size]:.1%} | {per_area:.4g} | {result.style_distance:.4g} | "
                  f"{seconds:.1f} |", flush=True)
    for mode in ("area", "seed"):
        values = [removed[mode, size] for size in sizes]
        print(f"\nspread under {mode}: style loss removed {min(values):.1%} to {max(values):.1%}")
    print()


def _strengths(optimizer, steps: int) -> None:
    from batch_nst.params import StyleParams
    from batch_nst.engine.transfer import stylize

    content, style = _pair(256)
    print("| strength | style loss | content loss | style distance |\n|---|---|---|---|")
    for strength in (0.0, 0.25, 0.5, 0.75, 1.0):
        result = stylize(content, style, params=StyleParams(steps=steps, max_size=256, strength=strength),
                         extractor=optimizer)
        print(f"| {strength} | {result.losses.style:.4g} | {result.losses.content:.4g} | "
              f"{result.style_distance:.4g} |", flush=True)
    print()


def _animation(optimizer, steps: int) -> None:
    import numpy as np

    from batch_nst.params import StyleParams
    from batch_nst.engine.transfer import stylize
    from tests.conftest import smooth_image

    background = smooth_image(SPRITE, SPRITE, 11)
    cells, moving = [], np.zeros((SPRITE, SPRITE), bool)
    for t in range(FRAMES):
        cell = background.copy()
        rows, columns = slice(20, 36), slice(2 + 3 * t, 14 + 3 * t)
        cell[rows, columns] = (230, 40, 40)
        moving[rows, columns] = True
        cells.append(cell)
    sheet = np.concatenate(cells, axis=1)
    style = smooth_image(256, 256, 12)
    print("| frames | flicker of the still background (levels) | total loss | style | content | temporal | seconds |")
    print("|---|---|---|---|---|---|---|")
    for weight in (0.0, StyleParams().temporal_weight):
        params = StyleParams(steps=steps, max_size=SPRITE, grid=f"{FRAMES}x1", frames=True, temporal_weight=weight)
        stylize(sheet, style, params=params.with_overrides({"steps": 3}), extractor=optimizer)  # compiles
        started = time.perf_counter()
        result = stylize(sheet, style, params=params, extractor=optimizer)
        seconds = time.perf_counter() - started
        out = [result.image.rgb[:, i * SPRITE:(i + 1) * SPRITE].astype(float) for i in range(FRAMES)]
        flicker = np.mean([np.abs(out[i + 1] - out[i])[~moving].mean() for i in range(FRAMES - 1)])
        losses = result.losses
        label = "independent" if weight == 0 else f"temporal_weight {weight}"
        print(f"| {label} | {flicker:.2f} | {losses.total:.4g} | {losses.style:.4g} | {losses.content:.4g} | "
              f"{losses.temporal:.4g} | {seconds:.1f} |", flush=True)


def _devices() -> str:
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return ", ".join(str(d) for d in jax.devices())
    return "default"


if __name__ == "__main__":
    main()
