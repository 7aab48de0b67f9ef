"""The plan of a plain manifest in columns: no Python object per row until a row is to do.

A nightly rerun of a million rows spent ~90 s building a WorkItem, a resolved URI and a key per
row in Python. Most manifests are plain: CSV or Parquet with `id`, `content` and `style` only,
every id written and valid, every URI printable ASCII without quotes, backslashes, spaces or
`;`, and no `.`/`..` segment. Such a manifest is validated, resolved, keyed and compared with the
done-set in Arrow, in slices of SLICE rows (memory bounded by the slice, not the manifest, beyond
the columns themselves); keys are exactly `WorkItem.keyed`'s (the same JSON, the same hash). Any
other manifest returns None and is read row by row (manifest.load), with its errors per row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch_nst import storage
from batch_nst.errors import ParamsError
from batch_nst.job import ids, manifest
from batch_nst.job.manifest import WorkItem
from batch_nst.params import StyleParams

SLICE = 262_144  # rows keyed at once: their JSON payloads (~200 bytes each) are what a slice holds
_PLAIN = r"^[!#-:<-\[\]-~]+$"  # printable ASCII without space, '"', ';' (several styles) or '\\'
_DOTTED = r"(^|/)\.\.?(/|$)|//|/$"  # in a path without a scheme: what a resolve would normalize
_SCHEME = r"^[a-zA-Z][a-zA-Z0-9+.-]*://"


@dataclass(frozen=True)
class Columns:
    """A plain manifest read and resolved: one string array per column, and the rows' params."""

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


def read(uri: str, base: StyleParams) -> Columns | None:
    """The manifest as Columns when it is plain (module docstring), else None."""
    table = manifest.read_table(uri)
    if table is None or set(table.column_names) != {"id", "content", "style"} or not _blends_one(base):
        return None
    cells = {}
    for name in table.column_names:
        column = table[name].combine_chunks()
        if column.type != pa.string() or column.null_count or not pc.all(pc.match_substring_regex(column, _PLAIN)).as_py():
            return None
        cells[name] = column
    if len(cells["id"]) == 0 or not pc.all(pc.match_substring_regex(cells["id"], f"^{ids.PATTERN.pattern}$")).as_py():
        return None
    if pc.count_distinct(cells["id"]).as_py() != len(cells["id"]):
        return None  # duplicates: each named by its row, row by row
    folder = storage.parent(uri)
    content, style = _resolved(cells["content"], folder), _resolved(cells["style"], folder)
    if content is None or style is None:
        return None
    return Columns(pa.array(np.arange(1, len(content) + 1)), cells["id"], content, style, base)


def keys(columns: Columns, prints: dict[str, str], weights_id: str) -> pa.Array:
    """Every row's key, as `WorkItem.keyed` makes it: the same JSON list hashed the same way.
    Every row's URIs must have a fingerprint in `prints`."""
    params = json.dumps(manifest.key_json(columns.params))
    head = "[" + json.dumps(manifest.ALGORITHM_VERSION) + ', "'
    tail = ", " + params + ", " + json.dumps(weights_id) + "]"
    uris = pa.array(list(prints), pa.string())
    encoded = pa.array([json.dumps(print_) for print_ in prints.values()], pa.string())
    out = []
    for start in range(0, len(columns), SLICE):
        part = slice(start, start + SLICE)
        item_ids, content, style = (c[part] for c in (columns.ids, columns.content, columns.style))
        content_fp = encoded.take(pc.index_in(content, value_set=uris))
        style_fp = encoded.take(pc.index_in(style, value_set=uris))
        payload = pc.binary_join_element_wise(
            head, item_ids, '", "', content, '", ', content_fp, ', "', style, '", ', style_fp, tail, "")
        out.append(pa.array([hashlib.sha256(p.encode()).hexdigest()[:32] for p in payload.to_pylist()], pa.string()))
    return pa.concat_arrays(out) if out else pa.array([], pa.string())


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
