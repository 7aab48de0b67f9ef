"""bench_quality's inputs: Kenney assets chosen per size band, a walk animation, and the styles.

Every choice is deterministic (sorted names, one fixed seed) so every run, on any machine, scores
the same pairs, and everything lands in one cache folder (CACHE) that anyone can delete: arcade's
wheel (Kenney's CC0 images) is fetched with pip when its images are not there yet, and each input
is written once as the PNG (or GIF) that every tool then reads, so all three see the same pixels.
"""

from __future__ import annotations

import io
import math
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CACHE = Path(os.environ.get("BATCH_NST_BENCH_CACHE", "~/.cache/batch-nst-bench")).expanduser()
ARCADE = "arcade==3.3.3"
IN_WHEEL = "arcade/resources/assets/images/"
SEED = 23
REPO = Path(__file__).resolve().parents[2]
BANDS = ("tiny", "small", "128", "large", "animation")

# (band, glob under the Kenney images, how many): one seeded pick per rule, among the sorted
# matches whose short side falls in the band, so tank parts, lasers, ships, 96x128 character
# frames, 128 px tiles, items and enemies, cards and a background all take part.
RULES = (
    ("tiny", "topdown_tanks/*barrel*.png", 2),
    ("tiny", "space_shooter/laser*.png", 1),
    ("tiny", "space_shooter/meteorGrey_tiny*.png", 1),
    ("small", "space_shooter/playerShip*.png", 1),
    ("small", "topdown_tanks/tank_*.png", 1),
    ("small", "animated_characters/*/*_idle.png", 1),
    ("small", "space_shooter/meteorGrey_big*.png", 1),
    ("128", "tiles/boxCrate.png", 1),
    ("128", "tiles/brickBrown.png", 1),
    ("128", "tiles/grass.png", 1),
    ("128", "items/*.png", 1),
    ("128", "enemies/*.png", 1),
    ("large", "cards/*.png", 1),
    ("large", "backgrounds/instructions_*.png", 1),
)
WALK = "animated_characters/*/*_walk[0-9].png"
QUICK = (("tiny", "brush"), ("128", "waves"), ("animation", "mosaic"))  # (band, style): its first asset
# What a 2-core CPU can score in about an hour at 200 steps: every band and style, the flat tiles
# (where the asset is easiest to lose) twice.
SAMPLE = (("tiny", "brush"), ("tiny", "mosaic"), ("small", "waves"), ("small", "brush"), ("128", "mosaic"),
          ("128", "waves"), ("large", "brush"), ("animation", "mosaic"))


@dataclass(frozen=True)
class Asset:
    """One content: `path` is what every tool reads; an animation's `frames` are its frames as PNGs
    (the peers stylize frames one by one, having no animation input)."""

    name: str
    band: str
    path: Path
    frames: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Pair:
    asset: Asset
    style: str  # a key of styles()
    style_path: Path

    @property
    def name(self) -> str:
        return f"{self.asset.name}+{self.style}"


def band(width: int, height: int) -> str:
    """Size band by the short side: what decides how many VGG pooling levels a sprite survives."""
    side = min(width, height)
    return "tiny" if side <= 32 else "small" if side <= 96 else "128" if side <= 128 else "large"


def kenney_root() -> Path:
    """The Kenney images unpacked from arcade's wheel in the cache, fetched with pip the first time."""
    root = CACHE / "arcade" / IN_WHEEL
    if root.is_dir():
        return root
    wheels = CACHE / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", ARCADE, "-d", str(wheels)],
                   check=True)
    wheel = next(wheels.glob("arcade-3.3.3-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(CACHE / "arcade", [n for n in archive.namelist() if n.startswith(IN_WHEEL)])
    return root


def assets() -> list[Asset]:
    """Every rule's seeded picks, then the walk animation, written into the cache."""
    root, rng = kenney_root(), random.Random(SEED)
    chosen = []
    for band_name, pattern, count in RULES:
        matches = [p for p in sorted(root.glob(pattern)) if band(*Image.open(p).size) == band_name]
        for path in rng.sample(matches, min(count, len(matches))):
            chosen.append(_still(root, path, band_name))
    return chosen + [_walk(root, rng)]


def _still(root: Path, path: Path, band_name: str) -> Asset:
    """The asset as an 8-bit RGB(A) PNG: palette files would reach pastiche as one grey channel."""
    name = str(path.relative_to(root).with_suffix(""))
    out = CACHE / "inputs" / f"{name.replace('/', '__')}.png"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        _rgba_or_rgb(Image.open(path)).save(out)
    return Asset(name, band_name, out)


def _rgba_or_rgb(image: Image.Image) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _walk(root: Path, rng: random.Random) -> Asset:
    """One seeded character's walk cycle as a looping GIF, and its frames as PNGs decoded back
    from that GIF (so the peers get exactly the frames batch-nst gets)."""
    characters = sorted({p.parent for p in root.glob(WALK)})
    character = rng.choice(characters)
    frames = [Image.open(p).convert("RGBA") for p in sorted(character.glob(WALK.split("/")[-1]))]
    name = f"{character.relative_to(root)}/walk"
    out = CACHE / "inputs" / f"{name.replace('/', '__')}.gif"
    if not out.exists():
        buffer = io.BytesIO()
        frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0, disposal=2)
        out.write_bytes(buffer.getvalue())
    decoded = Image.open(out)
    paths = []
    for index in range(decoded.n_frames):
        decoded.seek(index)
        path = out.with_name(f"{out.stem}__{index}.png")
        if not path.exists():
            decoded.convert("RGBA").save(path)
        paths.append(path)
    return Asset(name, "animation", out, tuple(paths))


def styles() -> dict[str, Path]:
    """The example job's two styles and a procedural painterly one."""
    folder = REPO / "jobs" / "example" / "styles"
    return {"waves": folder / "waves.png", "mosaic": folder / "mosaic.png", "brush": brush_style()}


def brush_style(size: int = 512, seed: int = SEED) -> Path:
    """Layered random brush strokes along a swirling flow, coarse to fine, from a seeded palette:
    a painterly style with strokes at several scales and no photo behind it (repeatable anywhere)."""
    out = CACHE / "styles" / f"brush-{seed}.png"
    if out.exists():
        return out
    rng = np.random.default_rng(seed)
    palette = rng.integers(20, 236, (6, 3))
    canvas = Image.new("RGB", (size, size), tuple(int(c) for c in palette[0]))
    for count, length, width in ((250, 90, 16), (700, 45, 8), (1800, 18, 3)):
        _strokes(ImageDraw.Draw(canvas), rng, palette, size, count, length, width)
        canvas = canvas.filter(ImageFilter.SMOOTH)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def _strokes(draw: ImageDraw.ImageDraw, rng, palette: np.ndarray, size: int, count: int, length: float,
             width: int) -> None:
    """`count` strokes, each along the flow field at its start plus a little noise."""
    for _ in range(count):
        x, y = rng.uniform(0, size, 2)
        angle = math.sin(x / 80) * 2 + math.cos(y / 60) + rng.normal(0, 0.3)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        colour = np.clip(palette[rng.integers(len(palette))] + rng.integers(-30, 31, 3), 0, 255)
        draw.line([(x - dx, y - dy), (x + dx, y + dy)], fill=tuple(int(c) for c in colour), width=width)


def pairs(selection: str = "full") -> list[Pair]:
    """full: every asset with every style; quick and sample: QUICK's or SAMPLE's (band, style)
    pairs, each band's first asset."""
    chosen, style_paths = assets(), styles()
    if selection == "full":
        return [Pair(a, s, p) for a in chosen for s, p in style_paths.items()]
    first = {}
    for asset in chosen:
        first.setdefault(asset.band, asset)
    return [Pair(first[b], s, style_paths[s]) for b, s in {"quick": QUICK, "sample": SAMPLE}[selection]]
