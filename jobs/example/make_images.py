"""Draws the example assets and styles shipped in jobs/example (made by the project; CC0).

    python jobs/example/make_images.py

Deterministic: the committed PNGs are exactly what this writes.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = os.path.dirname(os.path.abspath(__file__))


def crate(size: int = 96) -> Image.Image:
    """A wooden crate texture: planks with grain, a frame and a diagonal brace."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    grain = 0.5 + 0.25 * np.sin(x / 3.0 + 2.0 * np.sin(y / 11.0)) + 0.1 * rng.normal(size=(size, size))
    wood = np.stack([150 + 70 * grain, 95 + 45 * grain, 45 + 20 * grain], -1)
    img = Image.fromarray(np.clip(wood, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    dark = (70, 40, 20)
    for i in range(0, size, size // 4):
        draw.line([(0, i), (size, i)], fill=dark, width=2)
    draw.rectangle([0, 0, size - 1, size - 1], outline=dark, width=8)
    draw.line([(8, 8), (size - 8, size - 8)], fill=dark, width=8)
    return img


def potion(width: int = 64, height: int = 80) -> Image.Image:
    """A potion-bottle sprite on a transparent background (RGBA, soft edges)."""
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.rectangle([26, 6, 38, 26], fill=(200, 200, 220, 255))
    draw.rectangle([24, 2, 40, 8], fill=(120, 70, 40, 255))
    draw.ellipse([8, 22, 56, 76], fill=(60, 170, 90, 255), outline=(20, 60, 30, 255), width=3)
    draw.ellipse([18, 32, 30, 46], fill=(210, 250, 220, 200))
    return img


def waves(size: int = 128) -> Image.Image:
    """Swirling blue and yellow brush-like bands: a stand-in for a painterly style."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    t = np.sin(14 * x + 6 * np.sin(9 * y)) * np.cos(11 * y + 4 * np.sin(7 * x))
    blue, yellow = np.array([30, 60, 150]), np.array([240, 200, 60])
    mix = ((t + 1) / 2)[..., None]
    img = Image.fromarray((blue * (1 - mix) + yellow * mix).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(0.8))


def mosaic(size: int = 128, cells: int = 40) -> Image.Image:
    """Coloured Voronoi tiles with dark grout: a stand-in for a mosaic style."""
    rng = np.random.default_rng(3)
    points = rng.uniform(0, size, (cells, 2))
    colours = rng.integers(40, 255, (cells, 3))
    y, x = np.mgrid[0:size, 0:size]
    d = (x[..., None] - points[:, 0]) ** 2 + (y[..., None] - points[:, 1]) ** 2
    order = np.sort(d, axis=-1)
    img = colours[np.argmin(d, axis=-1)]
    img[(np.sqrt(order[..., 1]) - np.sqrt(order[..., 0])) < 1.5] = (30, 25, 20)
    return Image.fromarray(img.astype(np.uint8))


def main() -> None:
    out = {"assets/crate.png": crate(), "assets/props/potion.png": potion(),
           "styles/waves.png": waves(), "styles/mosaic.png": mosaic()}
    for rel, img in out.items():
        path = os.path.join(HERE, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        img.save(path)


if __name__ == "__main__":
    main()
