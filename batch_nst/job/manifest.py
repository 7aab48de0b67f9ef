"""Manifests: tables of content/style pairs read from any URI, validated whole before any work.

Formats by extension: .csv, .parquet/.pq, .jsonl/.ndjson. Columns: `content`, `style` (URIs;
relative ones resolve against the manifest's folder), optional `id`, and optional per-row
overrides named like the StyleParams fields. Every schema problem is collected and raised as one
ManifestError naming the rows (row numbers count data rows from 1), so a user fixes them in one go;
or, with `skip_invalid` (`run --skip-invalid`), each bad row is kept as an item carrying its problem.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import math
import sys
from dataclasses import dataclass
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch_nst.job import ids
from batch_nst import storage
from batch_nst.errors import BatchNSTError, ManifestError
from batch_nst.params import StyleParams, param_names

# Bump when the optimization changes its output for the same inputs and parameters: every key
# changes, so the next run redoes everything.
ALGORITHM_VERSION = "9"  # 2: loss_scale="area" (issue 13); 3: the look on real weights (issue 22); 4: average pooling;
# 5: the content loss at block4_conv2; 6: alpha_mode="mask" (a sprite's style spent on what is seen);
# 7: upscaled_loss="written" (the losses score what an upscaled asset keeps on the way down), TV weight 2.0;
# 8: relative_style (each item's style loss relative to its content's own: one look across a library)
# 9: style_target 0.3 (the style stops pulling an item once it is 0.3 of its content's own: every item alike)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
REQUIRED = ("content", "style")
COLUMNS = frozenset(("id", *REQUIRED, *param_names()))
MAX_REPORTED = 20
CSV_CELLS = pacsv.ConvertOptions(  # every known column read as text, none taken for null (`read_table`)
    column_types=dict.fromkeys(COLUMNS, pa.string()), null_values=[], strings_can_be_null=False,
    quoted_strings_can_be_null=False)
_PARAMS = frozenset(param_names())
key_json = functools.lru_cache(maxsize=256)(StyleParams.key_json)  # per distinct params, not per row


@dataclass(frozen=True, slots=True)  # slots: a million of them must fit a driver
class WorkItem:
    """One manifest row, resolved and validated: what a worker needs to make one image."""

    row: int  # data row number in the manifest, from 1: for messages
    id: str  # safe file name: the output is images/<id>.<ext> (.png, or an animation's own container)
    content: str  # absolute URI
    style: str  # absolute URI
    params: StyleParams  # effective: defaults, then CLI flags, then the row's overrides
    key: str = ""  # content-addressed; set once fingerprints are known (`keyed`)
    problem: str = ""  # why the row is invalid (`load(skip_invalid=True)`): the run records it failed

    @property
    def styles(self) -> tuple[str, ...]:
        """The style URIs: one, or several blended by params.style_blend ("a.png;b.png")."""
        return tuple(self.style.split(";"))

    def keyed(self, content_fp: str, style_fp: str, weights_identity: str) -> "WorkItem":
        """This item with its key: changes iff an input, a parameter, the weights or the algorithm do."""
        payload = json.dumps(
            [ALGORITHM_VERSION, self.id, self.content, content_fp, self.style, style_fp,
             key_json(self.params), weights_identity]
        )
        return WorkItem(self.row, self.id, self.content, self.style, self.params,
                        hashlib.sha256(payload.encode()).hexdigest()[:32])


def load(uri: str, base: StyleParams = StyleParams(), skip_invalid: bool = False) -> list[WorkItem]:
    """Read and validate a manifest: its items, or one ManifestError listing every bad row. With
    `skip_invalid`, a bad row becomes an item carrying its `problem` instead (the run records it
    failed and runs the rest); an unreadable manifest or a bad column still refuses the whole."""
    names, rows = _read(uri)
    _check_columns(uri, names)
    folder = storage.parent(uri)
    items, rejected = [], []
    shared: dict[Any, Any] = {}  # equal params and URIs shared by all rows: memory per row stays small
    for row, values in enumerate(rows, start=1):
        try:
            items.append(_item(row, values, folder, base, shared))
        except BatchNSTError as err:
            rejected.append(_rejected(row, values, base, f"row {row}: {err}"))
    items = _with_derived_ids(items, folder)
    duplicates = _duplicate_ids(items)
    rejected += [dataclasses.replace(items[n], problem=problem) for n, problem in duplicates.items()]
    if rejected and not skip_invalid:
        raise refusal(uri, [item.problem for item in rejected])
    items = [item for n, item in enumerate(items) if n not in duplicates]
    return items + _rejected_ids(rejected, folder, {item.id for item in items})


def refusal(uri: str, problems: list[str]) -> ManifestError:
    """The one error refusing a manifest: how many problems, the first MAX_REPORTED named."""
    shown = "\n  ".join(problems[:MAX_REPORTED])
    more = f"\n  ... and {len(problems) - MAX_REPORTED} more" if len(problems) > MAX_REPORTED else ""
    return ManifestError(f"manifest {storage.redact(uri)}: {len(problems)} problem(s):\n  {shown}{more}")


def write(table: pa.Table, uri: str) -> None:
    """Write a manifest in the format its extension names, atomically."""
    buf = io.BytesIO()
    kind = format_of(uri)
    if kind == "csv":
        pacsv.write_csv(table, buf)
    elif kind == "parquet":
        pq.write_table(table, buf)
    else:
        buf.write("".join(json.dumps(r) + "\n" for r in table.to_pylist()).encode())
    storage.write_bytes(uri, buf.getvalue())


def format_of(uri: str) -> str:
    path = uri.split("?", 1)[0].lower()
    for ext, kind in FORMATS.items():
        if path.endswith(ext):
            return kind
    raise ManifestError(f"manifest {storage.redact(uri)}: unknown format; use one of {', '.join(FORMATS)}")


def _read(uri: str) -> tuple[list[str], Iterable[dict[str, Any]]]:
    """(column names, rows as dicts)."""
    if format_of(uri) == "jsonl":
        try:
            return _json_lines(storage.read_bytes(uri))
        except ValueError as err:
            raise ManifestError(f"manifest {storage.redact(uri)}: not a readable jsonl table: {err}") from None
    table = read_table(uri)
    return table.column_names, _rows(table)


def read_table(uri: str) -> pa.Table | None:
    """A CSV or Parquet manifest as one Arrow table; None for JSON Lines (parsed row by row, as
    written). Text is never taken for null: 'NA', 'NaN', 'null', 'N/A' are read as written (and
    refused where they are not valid), a CSV's empty cell as "" (not given)."""
    kind = format_of(uri)
    if kind == "jsonl":
        return None
    data = storage.read_bytes(uri)
    try:
        if kind == "csv":
            return pacsv.read_csv(io.BytesIO(data), convert_options=CSV_CELLS)
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise ManifestError(f"manifest {storage.redact(uri)}: not a readable {kind} table: {err}") from None


def _json_lines(data: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    """JSON lines parsed as written (pyarrow's reader would guess column types from the first
    rows): a key left out, a `null` and a `NaN` are not given (`_missing`). Blank lines are skipped."""
    rows = []
    for line_no, line in enumerate(data.decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as err:
            raise ValueError(f"line {line_no}: {err}") from None
        if not isinstance(value, dict):
            raise ValueError(f"line {line_no}: not a JSON object")
        rows.append(value)
    return list(dict.fromkeys(name for row in rows for name in row)), rows


def _check_columns(uri: str, names: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in names]
    unknown = [c for c in names if c not in COLUMNS]
    if missing or unknown:
        parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
        parts += [f"unknown column(s) {', '.join(unknown)} (known: {', '.join(sorted(COLUMNS))})"] if unknown else []
        raise ManifestError(f"manifest {storage.redact(uri)}: {'; '.join(parts)}")


def _rows(table: pa.Table) -> Iterable[dict[str, Any]]:
    for batch in table.to_batches(max_chunksize=10_000):
        yield from batch.to_pylist()


def _item(row: int, values: dict[str, Any], folder: str, base: StyleParams, shared: dict[Any, Any]) -> WorkItem:
    values = {name: value for name, value in values.items() if not _missing(value)}
    content = sys.intern(_uri_cell(values.get("content"), "content", folder))
    style = values.get("style")
    parts = style.split(";") if isinstance(style, str) else [style]
    style = sys.intern(";".join(_uri_cell(part, "style", folder) for part in parts))
    item_id = values.get("id")
    if item_id is None or item_id == "":
        item_id = ""  # derived once every row is read: ids.derive_all needs them all
    elif not isinstance(item_id, str) or not ids.PATTERN.fullmatch(item_id):
        raise ManifestError(
            f"id {item_id!r} is not a safe file name (ASCII letters, digits, '.', '_', '-'; "
            "no slashes; at most 200 characters; not starting with '.' or '-')"
        )
    return WorkItem(row, item_id, content, style, _params(values, base, len(parts), shared))


def _params(values: dict[str, Any], base: StyleParams, styles: int, shared: dict[Any, Any]) -> StyleParams:
    """A row's params, built and validated once per distinct set of overrides (most rows share
    one): building them per row was most of a large manifest's planning time."""
    overrides = {name: value for name, value in values.items() if name in _PARAMS and value != ""}
    seen = ("params", repr(sorted(overrides.items())), styles)
    if seen not in shared:
        params = base.with_overrides(overrides)
        params.blend_weights(styles)  # as many weights as styles
        shared[seen] = shared.setdefault(params, params)
    return shared[seen]


def _missing(value: Any) -> bool:
    """Whether a cell is not given, so its column takes the default: a null (JSON `null`, a Parquet
    null) or a NaN number, which is how pandas writes a missing number (NaN, a null in Parquet) and
    a missing string (None). CSV text is never missing (`_read`): there an empty cell is."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _uri_cell(value: Any, name: str, folder: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(f"{name} is empty" if value in (None, "") else f"{name} must be a URI, got {value!r}")
    if "\x00" in value:
        raise ManifestError(f"{name} contains a NUL character")
    return storage.resolve(value.strip(), folder)


def _with_derived_ids(items: list[WorkItem], folder: str) -> list[WorkItem]:
    """The items, those without an id given one by `ids.derive_all` (distinct from the written ones)."""
    unnamed = [n for n, item in enumerate(items) if not item.id]
    derived = ids.derive_all([(items[n].content, items[n].style) for n in unnamed], folder,
                             taken=(item.id for item in items if item.id))
    for n, item_id in zip(unnamed, derived):
        items[n] = dataclasses.replace(items[n], id=item_id)
    return items


def _duplicate_ids(items: list[WorkItem]) -> dict[int, str]:
    """The positions of the rows repeating an earlier row's id, each with its problem."""
    first: dict[str, int] = {}
    problems = {}
    for n, item in enumerate(items):
        if item.id in first:
            problems[n] = f"row {item.row}: duplicate id {item.id!r} (first used in row {first[item.id]})"
        else:
            first[item.id] = item.row
    return problems


def _rejected(row: int, values: dict[str, Any], base: StyleParams, problem: str) -> WorkItem:
    """An invalid row as an item to record failed: its cells as written (text only), the base
    params, and its written id when that is a safe one (else `_rejected_ids` derives one)."""
    text = {name: values.get(name) if isinstance(values.get(name), str) else "" for name in ("id", "content", "style")}
    item_id = text["id"] if ids.PATTERN.fullmatch(text["id"]) else ""
    return WorkItem(row, item_id, text["content"], text["style"], base, problem=problem)


def _rejected_ids(rejected: list[WorkItem], folder: str, taken: set[str]) -> list[WorkItem]:
    """Invalid rows' items with ids no valid row has, so their failed records never stand for a
    valid item's state: a written id where still free, else one derived from the row's cells (the
    id the row gets once fixed, when its id was derived) or from its row number."""
    out, derive = [], []
    for item in sorted(rejected, key=lambda item: item.row):
        if item.id and item.id not in taken:
            taken.add(item.id)
            out.append(item)
        else:
            derive.append(item)
    pairs = [(item.content or f"row-{item.row}", item.style) for item in derive]
    derived = ids.derive_all(pairs, folder, taken=taken)
    return sorted(out + [dataclasses.replace(item, id=new) for item, new in zip(derive, derived)],
                  key=lambda item: item.row)
