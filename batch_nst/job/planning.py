"""Planning: what a run does, decided from the manifest, listings and fingerprints alone.

An item is done when its id's latest record is `ok` with the item's key and its image is still
there; invalid when an input is missing or its row is bad (kept by --skip-invalid); else to do,
in dispatch order: grouped by style, so each worker computes a style's Grams once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from batch_nst import storage, weights
from batch_nst.errors import BatchNSTError
from batch_nst.job import columns, manifest, records
from batch_nst.job.columns import Columns
from batch_nst.job.manifest import WorkItem

if TYPE_CHECKING:
    from batch_nst.job.driver import JobConfig


@dataclass(frozen=True)
class Plan:
    todo: list[WorkItem]  # in dispatch order: grouped by style
    done: pa.Array  # ids with an `ok` record of the same key, and the image it wrote
    invalid: list[tuple[WorkItem, str]]  # inputs missing at planning time (or rows --skip-invalid kept), why
    weights_identity: str

    @property
    def steps(self) -> int:
        """Estimated work: optimization steps over the items to do."""
        return sum(sum(item.params.stages()) for item in self.todo)


def load(config: JobConfig) -> list[WorkItem] | Columns:
    """The manifest validated: in columns when it is plain (columns.py), else row by row, as
    items (or one ManifestError naming every bad row)."""
    return columns.read(config.manifest, config.params) or manifest.load(
        config.manifest, config.params, config.skip_invalid)


def plan(config: JobConfig, rows: list[WorkItem] | Columns | None = None, weights_id: str | None = None) -> Plan:
    """Decide what to do from listings and fingerprints alone, for the manifest's `rows` (read
    here unless given); `weights_id` saves hashing a weights file already resolved."""
    rows = load(config) if rows is None else rows
    weights_id = weights_id or weights.identity(config.weights)
    if isinstance(rows, Columns):
        return _plan_columns(config, rows, weights_id)
    invalid = [(item, item.problem) for item in rows if item.problem]  # rows kept by --skip-invalid
    items = [item for item in rows if not item.problem]
    prints, unreadable = _fingerprints({u for item in items for u in (item.content, *item.styles)})
    current = {} if config.force else records.current_ok(config.output_root)
    stored = records.stored_ids(config.output_root) if current else set()
    todo, done = [], []
    for item in items:
        if not all(u in prints for u in (item.content, *item.styles)):
            invalid.append((item, _missing(item, prints, unreadable)))
            continue
        item = item.keyed(prints[item.content], ";".join(prints[u] for u in item.styles), weights_id)
        (done if current.get(item.id) == item.key and item.id in stored else todo).append(item)
    todo.sort(key=lambda item: (item.style, item.params.max_size, item.row))
    return Plan(todo, pa.array([item.id for item in done], pa.string()), invalid, weights_id)


def _plan_columns(config: JobConfig, rows: Columns, weights_id: str) -> Plan:
    """`plan` in Arrow: a WorkItem is made only for the rows to do (and the invalid ones)."""
    prints, unreadable = _fingerprints(set(pc.unique(pa.concat_arrays([rows.content, rows.style])).to_pylist()))
    known = pa.array(list(prints), pa.string())
    readable = pc.and_(pc.is_in(rows.content, value_set=known), pc.is_in(rows.style, value_set=known))
    missing = pc.indices_nonzero(pc.invert(readable))
    invalid = [(item, _missing(item, prints, unreadable)) for item in rows.items(missing)]
    rows = rows.filter(readable)
    keys = columns.keys(rows, prints, weights_id)
    latest = records.SCHEMA.empty_table().select(["id", "key"]) if config.force else records.latest_ok(
        config.output_root)
    stored = records.stored_id_array(config.output_root) if latest.num_rows else pa.array([], pa.string())
    done = pc.and_(pc.is_in(_pairs(rows.ids, keys), value_set=_pairs(latest["id"], latest["key"])),
                   pc.is_in(rows.ids, value_set=stored))
    todo = pc.indices_nonzero(pc.invert(done))
    todo = todo.take(pc.sort_indices(pa.table({"style": rows.style.take(todo), "row": rows.rows.take(todo)}),
                                     sort_keys=[("style", "ascending"), ("row", "ascending")]))
    return Plan(rows.items(todo, keys.take(todo)), rows.ids.filter(done), invalid, weights_id)


def _pairs(ids: pa.Array, keys: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(ids, keys, "\x00")


def _missing(item: WorkItem, prints: dict[str, str], unreadable: dict[str, str]) -> str:
    """Why an item's inputs cannot be read: each missing one named, or its storage's error."""
    return "; ".join(unreadable.get(u) or f"no such file: {storage.redact(u)}"
                     for u in (item.content, *item.styles) if u not in prints)


def _fingerprints(uris: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Fingerprints per URI, listed scheme by scheme, and the error for URIs whose storage could
    not be listed at all (a scheme nobody installed, a bucket that refuses): those rows fail alone."""
    by_scheme: dict[str, set[str]] = {}
    for uri in uris:
        by_scheme.setdefault(uri.split("://", 1)[0] if "://" in uri else "", set()).add(uri)
    prints, errors = {}, {}
    for group in by_scheme.values():
        try:
            prints.update(storage.fingerprints(group))
        except BatchNSTError as err:
            errors.update(dict.fromkeys(group, str(err)))
    return prints, errors
