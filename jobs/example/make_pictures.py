"""Draws README's pictures of each game-asset feature, with the project's own engine.

    python jobs/example/make_pictures.py --weights WEIGHTS [--steps 150] [--only strength frames ...]

Each picture is a strip of labelled panels (inputs, then results side by side), written to
jobs/example/pictures/. Transparent pixels are shown over a checkerboard. The committed pictures
were made on the real ImageNet weights at the defaults: `--weights imagenet-q8 --steps 150`, and
`--steps 300 --only look` for look.png (report.png, a screenshot, with the seeded test weights).
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from batch_nst import Extractor, Optimizer, StyleParams, resolve_weights, stylize
from batch_nst.job.manifest import ALGORITHM_VERSION
from batch_nst.params import SEED

HERE = os.path.dirname(os.path.abspath(__file__))
PANEL = 160  # each panel's box


def panel(image: Image.Image, label: str) -> Image.Image:
    """An image scaled into a PANEL box over a checkerboard, its label underneath."""
    image = image.convert("RGBA")
    scale = PANEL / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.Resampling.NEAREST)
    y, x = np.mgrid[0:PANEL, 0:PANEL]
    board = np.where(((x // 10) + (y // 10)) % 2 == 0, 205, 250).astype(np.uint8)
    tile = Image.fromarray(np.dstack([board] * 3)).convert("RGBA")
    tile.alpha_composite(image, ((PANEL - image.width) // 2, (PANEL - image.height) // 2))
    out = Image.new("RGB", (PANEL, PANEL + 18), "white")
    out.paste(tile.convert("RGB"), (0, 0))
    ImageDraw.Draw(out).text((4, PANEL + 3), label, fill="black")
    return out


def strip(panels: list[Image.Image]) -> Image.Image:
    out = Image.new("RGB", (sum(p.width for p in panels) + 6 * (len(panels) - 1), panels[0].height), "white")
    for i, p in enumerate(panels):
        out.paste(p, (i * (p.width + 6), 0))
    return out


def tiled(image: Image.Image, times: int = 2) -> Image.Image:
    """The image repeated times x times: a seam shows where a texture does not tile."""
    out = Image.new(image.mode, (image.width * times, image.height * times))
    for y in range(times):
        for x in range(times):
            out.paste(image, (x * image.width, y * image.height))
    return out


def periodic(size: int = 128) -> Image.Image:
    """A texture that tiles: blue and yellow bands made of whole periods across the tile."""
    y, x = np.mgrid[0:size, 0:size] * (2 * np.pi / size)
    t = np.sin(3 * x + 1.5 * np.sin(2 * y)) * np.cos(2 * y + np.sin(x))
    mix = ((t + 1) / 2)[..., None]
    return Image.fromarray((np.array([30, 60, 150]) * (1 - mix) + np.array([240, 200, 60]) * mix).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--only", nargs="+", help="make only these pictures (e.g. strength report)")
    args = parser.parse_args()
    optimizer = Optimizer(Extractor(resolve_weights(args.weights)))
    load = lambda rel: Image.open(os.path.join(HERE, rel))  # noqa: E731
    crate, potion = load("assets/crate.png"), load("assets/props/potion.png")
    waves, mosaic = load("styles/waves.png"), load("styles/mosaic.png")
    base = StyleParams(steps=args.steps, max_size=128)

    def run(content, style, **changes) -> Image.Image:
        return stylize(content, style, params=base.with_overrides(changes), extractor=optimizer).to_pil()

    sheet = Image.new("RGBA", (potion.width * 4, potion.height * 2))
    for i in range(8):  # a 4x2 sprite sheet: the potion, rotated a little more in each cell
        sheet.alpha_composite(potion.convert("RGBA").rotate(i * 12, Image.Resampling.BICUBIC),
                              ((i % 4) * potion.width, (i // 4) * potion.height))
    flipbook = Image.new("RGB", (crate.width * 4, crate.height))
    for i in range(4):  # a flipbook: the potion crossing the crate, frame by frame
        frame = crate.convert("RGBA")
        frame.alpha_composite(potion.convert("RGBA").resize((crate.width // 2, crate.height // 2)),
                              (i * crate.width // 6, crate.height // 4))
        flipbook.paste(frame.convert("RGB"), (i * crate.width, 0))
    pictures = {
        "look": lambda: [panel(crate, "content"), panel(waves, "style"),
                         panel(run(crate, waves, max_size=256, **SEED), "the seed's recipe"),
                         panel(run(crate, waves, max_size=256), f"defaults (version {ALGORITHM_VERSION})"),
                         panel(potion, "content (sprite)"), panel(mosaic, "style"),
                         panel(run(potion, mosaic, max_size=256, **SEED), "the seed's recipe"),
                         panel(run(potion, mosaic, max_size=256), f"defaults (version {ALGORITHM_VERSION})")],
        "alpha_mode": lambda: [panel(potion, "content (sprite)"), panel(mosaic, "style"),
                       panel(run(potion, mosaic, alpha_mode="restore"), "alpha_mode=restore"),
                       panel(run(potion, mosaic, alpha_mode="mask"), "alpha_mode=mask")],
        "tileable": lambda: [panel(tiled(periodic()), "content (a tile), 2x2"), panel(mosaic, "style"),
                     panel(tiled(run(periodic(), mosaic)), "result 2x2: seams"),
                     panel(tiled(run(periodic(), mosaic, tileable=True)), "tileable=true, 2x2")],
        "preserve_color": lambda: [panel(crate, "content"), panel(waves, "style"), panel(run(crate, waves), "default"),
                           panel(run(crate, waves, preserve_color=True), "preserve_color=true")],
        "style_blend": lambda: [panel(crate, "content"), panel(waves, "style A"), panel(mosaic, "style B"),
                        *[panel(run(crate, [waves, mosaic], style_blend=b), f"style_blend={b}")
                          for b in ("1;0", "0.5;0.5", "0;1")]],
        "style_scale": lambda: [panel(crate, "content"), panel(mosaic, "style"),
                        *[panel(run(crate, mosaic, style_scale=s), f"style_scale={s}") for s in (0.5, 1.0, 2.0)]],
        "schedule": lambda: [panel(waves, "content"), panel(mosaic, "style"),
                     panel(run(waves, mosaic, max_size=256), f"single, {args.steps} @256"),
                     panel(run(waves, mosaic, max_size=256, schedule="multiscale",
                               stage_steps=f"{args.steps};{args.steps // 3}"),
                           f"multiscale {args.steps}@128+{args.steps // 3}@256")],
        "optimizer": lambda: [panel(crate, "content"), panel(mosaic, "style"), panel(run(crate, mosaic), "adam"),
                      panel(run(crate, mosaic, optimizer="lbfgs", steps=args.steps // 3),
                            f"lbfgs, {args.steps // 3} iterations")],
        "grid": lambda: [panel(sheet, "content: 4x2 sheet"), panel(waves, "style"),
                 panel(run(sheet, waves, grid="4x2", alpha_mode="mask"), "grid=4x2")],
        "strength": lambda: [panel(crate, "content"), panel(mosaic, "style"),
                     *[panel(run(crate, mosaic, strength=s), f"strength={s}") for s in (0.0, 0.25, 0.5, 0.75, 1.0)]],
        "loss_scale": lambda: [panel(mosaic, "style"),
                       *[panel(run(crate.resize((side, side)), mosaic, max_size=side, loss_scale=mode),
                               f"{mode}, {side} px") for mode in ("seed", "area") for side in (48, 256)]],
        "frames": lambda: [panel(flipbook, "content: 4 frames"), panel(waves, "style"),
                   panel(run(flipbook, waves, grid="4x1", frames=True, temporal_weight=0), "independent frames"),
                   panel(run(flipbook, waves, grid="4x1", frames=True), "frames=true")],
    }
    os.makedirs(os.path.join(HERE, "pictures"), exist_ok=True)
    for name in args.only or [*pictures, "report"]:
        if name == "report":
            report_picture(args.weights, base)
        else:
            strip(pictures[name]()).save(os.path.join(HERE, "pictures", f"{name}.png"), optimize=True)


def report_picture(weights: str, params: StyleParams) -> None:
    """The example assets through a worker into a scratch output root, its report, and a
    screenshot of the page in headless Chromium (playwright, from the test extra)."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from batch_nst.job import records
    from batch_nst import report
    from batch_nst.job.manifest import WorkItem
    from batch_nst.job.worker import Worker, WorkerConfig

    root = tempfile.mkdtemp()
    path = lambda rel: os.path.join(HERE, rel)  # noqa: E731
    items = [WorkItem(1, "crate-waves", path("assets/crate.png"), path("styles/waves.png"), params, "k1"),
             WorkItem(2, "potion-mosaic", path("assets/props/potion.png"), path("styles/mosaic.png"),
                      params.with_overrides({"alpha_mode": "mask"}), "k2"),
             WorkItem(3, "missing", path("assets/nope.png"), path("styles/waves.png"), params, "k3")]
    worker = Worker(WorkerConfig(output_root=root, weights=weights, run_id="example"))
    records.write_part(root, "part-example-00000", worker.process(items))
    page = report.write(root).uri
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("BATCH_NST_CHROMIUM", "/usr/bin/chromium"),
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        view = browser.new_page(viewport={"width": 1100, "height": 560})
        view.goto("file://" + page)
        view.screenshot(path=os.path.join(HERE, "pictures", "report.png"))
        browser.close()


if __name__ == "__main__":
    main()
