"""`batch-nst report`: a static HTML page of an output root, readable from storage with no server.

The page (`report/index.html`, or `report/<run_id>.html` for one run) is a contact sheet:
content | style | result thumbnails (an animation's play, its frame count below; each result links
to the full image), each item's loss curve (inline SVG) and style distance, the parameters that
differ from the defaults, and errors. Items far from the others sharing their style
(distance over OUTLIER times their style's median) are flagged and listed first, so a reviewer
looks at the outliers, not the whole library. Thumbnails are files beside it in `report/thumbs/`
(`batch_nst.thumbnails`), and the page links them and the results relatively: the folder works as
it is, locally, synced or from a bucket served as a static site.
"""

from __future__ import annotations

import html
import json
import math
import posixpath
import statistics
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable

from batch_nst.job import records
from batch_nst import storage, thumbnails
from batch_nst.errors import BatchNSTError
from batch_nst.job.records import Record
from batch_nst.params import WEIGHTED_TERMS, StyleParams

BOX = 128  # their box on the page: larger ones shrink to fit, smaller ones scale up
CURVE_POINTS = 200  # a loss curve's points at most
OUTLIER = 2.0  # an item whose style distance is over this many times its style's median is flagged
OUTLIER_MIN_ITEMS = 3  # ok items with a distance a style needs before any of them is flagged
# Quality flags (assets/quality.py): noisy where the speckle is over NOISY times the content's, or
# over NOISY times SPECKLE_FLOOR for clean contents (a flat sprite's 0 would flag any stroke);
# asset lost where the output's edges correlate with the content's below EDGES_LOST.
NOISY, SPECKLE_FLOOR, EDGES_LOST = 1.5, 2.0, 0.3
_DEFAULTS = json.loads(StyleParams().to_json())


@dataclass(frozen=True)
class Report:
    uri: str  # the page
    items: int
    ok: int
    failed: int
    outliers: int  # ok items flagged as far from their style's median distance
    noisy: int  # ok items whose speckle is over NOISY times their content's (or the floor)
    lost: int  # ok items whose edges kept are under EDGES_LOST
    thumbnails: int  # made by this call (the others were already there)


def write(root: str, run_id: str | None = None, threads: int = 8, sort: str = "distance") -> Report:
    """Write the report page of every item's latest record under `root`, or of one run's records
    (then the style medians are those of that run's items). `sort`: "distance" puts outliers first,
    then ok items by style distance, failed last; "id" orders rows by item id."""
    table = records.from_table(records.read(root))
    if not table:
        raise BatchNSTError(f"no records under {storage.redact(root)}: run a job there first")
    rows = _latest(table) if run_id is None else [r for r in table if r.run_id == run_id]
    if not rows:
        runs = ", ".join(sorted({r.run_id for r in table}))
        raise BatchNSTError(f"run {run_id!r} has no records under {storage.redact(root)} (runs: {runs})")
    ratios = _ratios(rows)
    rows.sort(key=(lambda r: r.id) if sort == "id" else (lambda r: _by_distance(r, ratios)))
    current = {r.id: r.key for r in _latest([r for r in table if r.status == records.OK])}
    folder = storage.join(root, "report")
    existing = {path.rsplit("/", 1)[-1] for path in storage.glob(storage.join(folder, "thumbs", "*.png"))}
    wanted = {name: uri for row in rows for name, uri in thumbnails.for_row(row, current, root)}
    todo = {name: uri for name, uri in wanted.items() if name not in existing}
    with ThreadPoolExecutor(threads) as pool:  # reading and writing storage: I/O bound
        made = dict(zip(todo, pool.map(lambda item: thumbnails.make(folder, *item), todo.items())))
    available = (existing & set(wanted)) | {name for name, ok in made.items() if ok}
    page = storage.join(folder, f"{run_id}.html" if run_id else "index.html")
    title = f"batch-nst run {run_id}" if run_id else "batch-nst: every item's latest record"
    links = {id(r): _href(folder, records.output_uri(root, r.output)) for r in rows if r.output}
    storage.write_bytes(page, _page(title, storage.redact(root), rows, available, current, ratios, links).encode())
    ok = sum(r.status == records.OK for r in rows)
    outliers = sum(_outlier(r, ratios) for r in rows)
    noisy, lost = (sum(flag in _quality_flags(r) for r in rows) for flag in ("noisy", "asset lost"))
    return Report(storage.redact(page), len(rows), ok, len(rows) - ok, outliers, noisy, lost, sum(made.values()))


def _ratios(rows: list[Record]) -> dict[int, float]:
    """Each ok row's style distance over its style's median (by the record's `style` string),
    keyed by id(row); only styles with OUTLIER_MIN_ITEMS ok rows with a distance (older records
    have none) get one: with fewer, a median says nothing about which item stands out."""
    by_style: dict[str, list[Record]] = {}
    for row in rows:
        if row.status == records.OK and row.style_distance is not None:
            by_style.setdefault(row.style, []).append(row)
    ratios = {}
    for group in by_style.values():
        median = statistics.median(r.style_distance for r in group)
        if len(group) >= OUTLIER_MIN_ITEMS and median > 0:
            ratios.update({id(r): r.style_distance / median for r in group})
    return ratios


def _outlier(row: Record, ratios: dict[int, float]) -> bool:
    return _flagged(ratios.get(id(row)))


def _flagged(ratio: float | None) -> bool:
    return ratio is not None and ratio > OUTLIER


def _quality_flags(row: Record) -> list[str]:
    """"noisy" and "asset lost" where an ok record's quality numbers say so (older records have none)."""
    if row.status != records.OK:
        return []
    flags = []
    if row.speckle is not None and row.speckle > NOISY * max(row.content_speckle or 0.0, SPECKLE_FLOOR):
        flags.append("noisy")
    if row.edges is not None and row.edges < EDGES_LOST:
        flags.append("asset lost")
    return flags


def _by_distance(row: Record, ratios: dict[int, float]) -> tuple:
    """Flagged items (outliers, noisy, asset lost) first, then ok items by distance (farthest
    first), those without one, failed last."""
    distance = row.style_distance
    if row.status != records.OK:
        return (3, 0.0, row.id)
    flagged = _outlier(row, ratios) or bool(_quality_flags(row))
    if distance is None:
        return (0 if flagged else 2, 0.0, row.id)
    return (0 if flagged else 1, -distance, row.id)


def _latest(table: list[Record]) -> list[Record]:
    """Each id's most recent record: what the output root holds for it now."""
    latest: dict[str, Record] = {}
    for row in sorted(table, key=lambda r: r.finished_at):
        latest[row.id] = row
    return list(latest.values())


def _href(folder: str, uri: str) -> str | None:
    """A link from the report's folder to `uri`: relative where both lie on one filesystem (one
    bucket), so the page's links hold wherever the root is copied, synced or served; an http(s)
    URI as it is; None elsewhere (no browser reaches s3:// from a page in another bucket)."""
    here, there = (storage.resolve(u).split("://", 1) if "://" in u else ["", storage.resolve(u)] for u in (folder, uri))
    if here[0] != there[0] or (here[0] and here[1].split("/")[0] != there[1].split("/")[0]):
        return storage.redact(uri) if there[0] in ("http", "https") else None
    return urllib.parse.quote(posixpath.relpath(there[1], here[1]))


def _page(title: str, root: str, rows: list[Record], thumbs: set[str], current: dict[str, str],
          ratios: dict[int, float], links: dict[int, str | None]) -> str:
    ok = sum(r.status == records.OK for r in rows)
    body = "\n".join(_row(r, thumbs, current.get(r.id) == r.key, ratios.get(id(r)), links.get(id(r)))
                     for r in rows)
    noisy, lost = (sum(flag in _quality_flags(r) for r in rows) for flag in ("noisy", "asset lost"))
    return _TEMPLATE.format(
        title=html.escape(title), root=html.escape(root), items=len(rows), ok=ok, failed=len(rows) - ok, rows=body,
        box=BOX, outliers=sum(_outlier(r, ratios) for r in rows), times=f"{OUTLIER:g}", noisy=noisy, lost=lost,
        noisy_times=f"{NOISY:g}", floor=f"{SPECKLE_FLOOR:g}", edges=f"{EDGES_LOST:g}")


def _distance(row: Record, ratio: float | None) -> str:
    """The style distance, and how it stands to its style's median where there is one."""
    if row.style_distance is None:
        return "style distance —"
    median = "" if ratio is None else f" ({ratio:.2f}× its style's median)"
    return f"style distance {row.style_distance:.4g}{median}"


def _quality(row: Record) -> str:
    """Speckle against the content's, and the edges kept (older records have neither)."""
    if row.speckle is None:
        return "speckle —"
    return f"speckle {row.speckle:.2f} (content {row.content_speckle:.2f}) · edges kept {row.edges:.2f}"


def _row(row: Record, thumbs: set[str], current: bool, ratio: float | None = None,
         link: str | None = None) -> str:
    pictures = [_img(thumbnails.content_name(row), "content", row.content, thumbs)]
    pictures.append("".join(_img(thumbnails.style_name(uri), "style", uri, thumbs) for uri in row.style.split(";")))
    if row.status == records.OK:
        gone = "unreadable" if current else "replaced by a later run"
        pictures.append(_img(thumbnails.result_name(row), "result", row.output, thumbs, gone, link if current else None)
                        + _frames(row))
        terms = " · ".join(f"{name} {row.loss(name):.4g}" for name in WEIGHTED_TERMS)
        ran = " ".join(html.escape(str(value)) for value in (row.precision, row.backend) if value)
        outcome = (f"<b>total {row.total_loss:.4g}</b><br>{terms}<br>{_distance(row, ratio)}<br>{_quality(row)}<br>"
                   f"{row.steps} steps at "
                   f"{row.opt_width}x{row.opt_height} ({ran}), {row.seconds:.1f} s"
                   f"{_curve(row.loss_history or [])}")
    else:
        pictures.append('<div class="missing">no result</div>')
        outcome = f'<div class="error">{html.escape(row.error or "failed")}</div>'
    cells = "".join(f"<td>{p}</td>" for p in pictures)
    flag = "".join(f'<br><span class="flag">⚑ {name}</span>'
                   for name in ["outlier"] * _flagged(ratio) + _quality_flags(row))
    return (f'<tr class="{html.escape(row.status)}{" outlier" if flag else ""}"><th>{html.escape(row.id)}<br>'
            f'<span class="status">{html.escape(row.status)}</span>{flag}<br><small>run {html.escape(row.run_id)}'
            f"</small></th>{cells}<td>{outcome}</td><td>{_params(row.params)}</td></tr>")


def _img(name: str, role: str, uri: str, thumbs: set[str], missing: str = "unreadable",
         link: str | None = None) -> str:
    """A thumbnail (an animation's plays), linked to the full image where `link` is given."""
    label = html.escape(uri or "")
    if name not in thumbs:
        return f'<div class="missing" title="{label}">{role}: {missing}</div>'
    img = f'<img class="thumb {role}" src="thumbs/{html.escape(name)}" alt="{role}" title="{label}" loading="lazy">'
    return img if link is None else f'<a href="{html.escape(link)}">{img}</a>'


def _frames(row: Record) -> str:
    """An animation's frame count under its result (records before issue 20 have none)."""
    return f'<div class="frames">▶ {row.frames} frames</div>' if (row.frames or 1) > 1 else ""


def _curve(history: Iterable[float]) -> str:
    """The total loss per step as an inline SVG polyline, log scale (it falls by orders)."""
    values = [v for v in history if v is not None and v > 0 and math.isfinite(v)]
    if len(values) < 2:
        return ""
    stride = max(1, math.ceil(len(values) / CURVE_POINTS))
    logs = [math.log10(v) for v in values[::stride]]
    low, high = min(logs), max(logs)
    span = (high - low) or 1.0
    points = " ".join(f"{200 * i / (len(logs) - 1):.1f},{4 + 52 * (high - v) / span:.1f}" for i, v in enumerate(logs))
    return (f'<svg class="curve" viewBox="0 0 200 60" width="200" height="60"><title>total loss per step '
            f'{values[0]:.4g} → {values[-1]:.4g}</title><polyline points="{points}"/></svg>')


def _params(params_json: str | None) -> str:
    """The parameters that differ from the defaults; the whole set folded below."""
    params = json.loads(params_json or "{}")
    changed = {k: v for k, v in params.items() if _DEFAULTS.get(k) != v}
    shown = ", ".join(f"{html.escape(k)}={html.escape(str(v))}" for k, v in sorted(changed.items())) or "defaults"
    full = html.escape(json.dumps(params, indent=1, sort_keys=True))
    return f"{shown}<details><summary>all</summary><pre>{full}</pre></details>"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 13px system-ui, sans-serif; margin: 16px; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px; vertical-align: top; text-align: left; }}
th {{ min-width: 6em; max-width: 14em; overflow-wrap: anywhere; }}
td > a {{ display: block; }}
.frames {{ color: #555; font-size: 11px; }}
.thumb {{ display: block; width: {box}px; height: {box}px; object-fit: contain; margin-bottom: 2px;
  image-rendering: pixelated; /* small sprites scaled up stay crisp */
  background: repeating-conic-gradient(#ccc 0% 25%, #fff 0% 50%) 50% / 16px 16px; }}
.missing {{ width: {box}px; color: #888; font-style: italic; }}
tr.failed .status, .error {{ color: #b00; font-weight: bold; }}
tr.outlier {{ background: #fff4e0; }}
.flag, .outliers {{ color: #b60; font-weight: bold; }}
.error {{ max-width: 40em; white-space: pre-wrap; }}
.curve polyline {{ fill: none; stroke: #36c; stroke-width: 1.5; }}
.curve {{ display: block; margin-top: 4px; background: #f6f8fc; }}
pre {{ font-size: 11px; }}
</style></head><body>
<h1>{title}</h1>
<p>Output root <code>{root}</code>: {items} items, {ok} ok, {failed} failed;
<span class="outliers">{outliers} outliers to review</span>
(style distance over {times}× the median of their style's items),
<span class="outliers">{noisy} noisy</span> (speckle over {noisy_times}× the content's, or over
{noisy_times}× {floor} levels), <span class="outliers">{lost} with the asset lost</span> (edges kept under {edges}).</p>
<table><thead><tr><th>item</th><th>content</th><th>style</th><th>result</th><th>losses</th><th>parameters</th>
</tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""
