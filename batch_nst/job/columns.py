"""The plain manifest: read in batches, validated and resolved in Arrow, spilled by id.

A nightly rerun of a million rows spent ~90 s building a WorkItem, a resolved URI and a key per
row in Python. Most manifests are plain: CSV or Parquet with `id`, `content` and `style` only,
every id written and valid (one repeated is refused, naming its rows), every URI printable
ASCII without quotes, backslashes, spaces or `;`, and no `.`/`..` segment. Such a manifest is streamed in record batches, each
validated and resolved in Arrow and spilled into partitions by id (spill.py), so no more than a
batch of it is in memory while it is read; each partition is then planned alone (partitions.py),
keyed exactly as `WorkItem.keyed` keys (the same JSON, the same hash). Any other manifest returns
None and is read row by row (manifest.load), with its errors per row.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.errors import ManifestError, ParamsError
from batch_nst.job import ids, manifest
from batch_nst.job.manifest import WorkItem
from batch_nst.job.spill import Spill, Workspace
from batch_nst.params import StyleParams

SLICE = 262_144  # rows keyed at once: their JSON payloads (~200 bytes each) are what a slice holds
PART_ROWS = 250_000  # rows a partition holds at most, about: its plan peaks near 1 KB a row
CSV_ROW_BYTES = 24  # a short plain CSV row: a CSV's rows are estimated from its size (more rather than fewer)
CSV_BLOCK = 1 << 20  # bytes of CSV parsed at once: pyarrow reads ~20 blocks ahead of a slow consumer
PARQUET_BATCH = 65_536  # rows of Parquet read at once
SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("content", pa.string()), ("style", pa.string())])
_PLAIN = r"^[!#-:<-\[\]-~]+$"  # printable ASCII without space, '"', ';' (several styles) or '\\'
_DOTTED = r"(^|/)\.\.?(/|$)|//|/$"  # in a path without a scheme: what a resolve would normalize
_SCHEME = r"^[a-zA-Z][a-zA-Z0-9+.-]*://"


@dataclass(frozen=True)
class Columns:
    """Rows of a plain manifest (a partition), resolved: one string array per column, and the params."""

    rows: pa.Array  # manifest row numbers, from 1
    ids: pa.Array
    content: pa.Array  # absolute URIs
    style: pa.Array
    params: StyleParams

    def __len__(self) -> int:
        return len(self.ids)

    def filter(self, mask: pa.Array) -> Columns:
        return Columns(*(column.filter(mask) for column in (self.rows, self.ids, self.content, self.style)),
                       self.params)

    def items(self, indexes: pa.Array, keys: pa.Array | None = None) -> list[WorkItem]:
        """WorkItems of the given positions, keyed when `keys` (one per position) are given."""
        picked = [column.take(indexes).to_pylist() for column in (self.rows, self.ids, self.content, self.style)]
        keys_list = keys.to_pylist() if keys is not None else [""] * len(indexes)
        return [WorkItem(row, item_id, content, style, self.params, key)
                for row, item_id, content, style, key in zip(*picked, keys_list)]


@dataclass(frozen=True)
class Plain:
    """A plain manifest, validated and resolved, in partitions by id on local disk."""

    parts: Spill  # rows (SCHEMA) by partition
    workspace: Workspace  # the spill files' folder, kept while the manifest is
    uris: frozenset[str]  # every distinct content and style URI: what to fingerprint
    params: StyleParams

    def __len__(self) -> int:
        return self.parts.rows

    def columns(self, part: int) -> Columns:
        """A partition's rows, read back from disk."""
        table = self.parts.read(part)
        return Columns(*(table[name].combine_chunks() for name in SCHEMA.names), self.params)


def read(uri: str, base: StyleParams, skip_invalid: bool = False, part_rows: int = PART_ROWS) -> Plain | None:
    """The manifest as Plain when it is plain (module docstring), else None; partitions of
    about `part_rows` rows each. Ids repeated are refused here, each repeat named by its row as
    manifest.load names it (a 10 M-row manifest is not read again row by row to say so); with
    `skip_invalid`, None: row by row keeps them as invalid items."""
    if manifest.format_of(uri) == "jsonl" or not _blends_one(base):
        return None
    workspace = Workspace()
    fs, path = storage.filesystem(uri)
    with storage.errors_naming("read", uri), fs.open(path, "rb") as f:
        rows, batches = _reader(uri, f)
        parts = workspace.spill("manifest", max(1, math.ceil(rows / part_rows)), SCHEMA)
        uris: set[str] = set()
        for batch in batches:
            cells = _plain(batch, storage.parent(uri))
            if cells is None:
                return None
            parts.add(pa.table({"row": pa.array(range(parts.rows + 1, parts.rows + batch.num_rows + 1), pa.int64()),
                                **cells}))
            uris.update(pc.unique(pa.concat_arrays([cells["content"], cells["style"]])).to_pylist())
    parts.close()
    repeats = _repeated_ids(parts)
    if not parts.rows or (repeats and skip_invalid):
        return None
    if repeats:
        raise manifest.refusal(uri, repeats)
    return Plain(parts, workspace, frozenset(uris), base)


@dataclass(frozen=True)
class Keys:
    """What keys rows as `WorkItem.keyed` does (the same JSON list hashed the same way): the
    fingerprints as arrays, made once for every partition."""

    uris: pa.Array
    encoded: pa.Array  # each URI's fingerprint as JSON
    head: str
    tail: str

    @classmethod
    def of(cls, prints: dict[str, str], params: StyleParams, weights_id: str) -> Keys:
        return cls(pa.array(list(prints), pa.string()), pa.array([json.dumps(p) for p in prints.values()], pa.string()),
                   "[" + json.dumps(manifest.ALGORITHM_VERSION) + ', "',
                   ", " + json.dumps(manifest.key_json(params)) + ", " + json.dumps(weights_id) + "]")

    def __call__(self, columns: Columns) -> pa.Array:
        """Every row's key; every row's URIs must have a fingerprint."""
        out = []
        for start in range(0, len(columns), SLICE):
            part = slice(start, start + SLICE)
            item_ids, content, style = (c[part] for c in (columns.ids, columns.content, columns.style))
            content_fp = self.encoded.take(pc.index_in(content, value_set=self.uris))
            style_fp = self.encoded.take(pc.index_in(style, value_set=self.uris))
            payload = pc.binary_join_element_wise(
                self.head, item_ids, '", "', content, '", ', content_fp, ', "', style, '", ', style_fp, self.tail, "")
            out.append(pa.array([hashlib.sha256(p.encode()).hexdigest()[:32] for p in payload.to_pylist()],
                                pa.string()))
        return pa.concat_arrays(out) if out else pa.array([], pa.string())


def _reader(uri: str, f) -> tuple[int, Iterator[pa.RecordBatch]]:
    """(rows, or more, estimated before reading; the record batches), CSV or Parquet."""
    kind = manifest.format_of(uri)
    try:
        if kind == "csv":
            return max(1, f.size // CSV_ROW_BYTES), _named(uri, kind, pacsv.open_csv(
                f, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK), convert_options=manifest.CSV_CELLS))
        parquet = pq.ParquetFile(f)
        return parquet.metadata.num_rows, _named(uri, kind, parquet.iter_batches(batch_size=PARQUET_BATCH))
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _unreadable(uri, kind, err) from None


def _named(uri: str, kind: str, batches) -> Iterator[pa.RecordBatch]:
    """The batches; a file broken midway is a ManifestError naming it, as `manifest.read_table` says."""
    try:
        yield from batches
    except (pa.ArrowException, OSError, ValueError) as err:
        raise _unreadable(uri, kind, err) from None


def _unreadable(uri: str, kind: str, err: Exception) -> ManifestError:
    return ManifestError(f"manifest {storage.redact(uri)}: not a readable {kind} table: {err}")


def _plain(batch: pa.RecordBatch, folder: str) -> dict[str, pa.Array] | None:
    """A batch's id, content and style (URIs resolved) when every cell is plain, else None."""
    if set(batch.schema.names) != {"id", "content", "style"}:
        return None
    cells = {}
    for name in ("id", "content", "style"):
        column = batch.column(name)
        if column.type != pa.string() or column.null_count or not pc.all(pc.match_substring_regex(column, _PLAIN)).as_py():
            return None
        cells[name] = column
    if not pc.all(pc.match_substring_regex(cells["id"], f"^{ids.PATTERN.pattern}$")).as_py():
        return None
    content, style = _resolved(cells["content"], folder), _resolved(cells["style"], folder)
    if content is None or style is None:
        return None
    return {"id": cells["id"], "content": content, "style": style}


def _repeated_ids(parts: Spill) -> list[str]:
    """Each row that repeats an earlier row's id, in row order, worded as manifest.load words it;
    found a partition at a time (an id's rows share one)."""
    problems = []
    for part in range(parts.parts):
        table = parts.read(part).select(["row", "id"])
        if pc.count_distinct(table["id"]).as_py() == table.num_rows:
            continue
        counts = table.group_by("id").aggregate([("row", "count")])
        repeated = counts.filter(pc.greater(counts["row_count"], 1))["id"]
        table = table.filter(pc.is_in(table["id"], value_set=repeated)).sort_by([("id", "ascending"),
                                                                                 ("row", "ascending")])
        first: dict[str, int] = {}
        for row, item_id in zip(table["row"].to_pylist(), table["id"].to_pylist()):
            if item_id in first:
                problems.append((row, f"row {row}: duplicate id {item_id!r} (first used in row {first[item_id]})"))
            first.setdefault(item_id, row)
    return [problem for _, problem in sorted(problems)]


def _resolved(column: pa.Array, folder: str) -> pa.Array | None:
    """`storage.resolve(cell, folder)` for every cell, in Arrow; None when some cell is not one
    a plain join resolves (a segment to normalize, a relative path above a remote root, ...)."""
    schemed = pc.match_substring_regex(column, _SCHEME)  # taken as written
    if pc.any(pc.and_(pc.invert(schemed), pc.match_substring_regex(column, _DOTTED))).as_py():
        return None
    absolute = pc.starts_with(column, "/")
    prefix = folder.rstrip("/") + "/"
    if storage.resolve("x", folder) != prefix + "x":
        return None  # a folder that resolve would write differently (normalized, a Windows path)
    joined = pc.binary_join_element_wise(prefix, column, "")
    return pc.if_else(pc.or_(schemed, absolute), column, joined)


def _blends_one(base: StyleParams) -> bool:
    """Whether the base params take one style (a plain row has one): else rows fail, row by row."""
    try:
        base.blend_weights(1)
    except ParamsError:
        return False
    return True
