"""The plan of a plain manifest, one partition at a time: memory bounded by a partition.

The manifest is already in partitions by id (columns.py); the done-set's inputs are spilled into
the same partitions as they are read: every record (id, key, status, time, and the place it was
read in, which breaks ties of time as `records.latest_ok` does) and the ids of `images/`. Then
each partition is planned alone, in Arrow: its rows with a missing input are invalid, the others
keyed; a row is done when its id's latest record in the partition is `ok` with its key and its
image is listed; the rest is written to the to-do stream (todo.py). No WorkItem is made for a row
done; a partition's rows, records and images are what the driver holds at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from batch_nst.errors import BatchNSTError
from batch_nst.job import columns, records
from batch_nst.job.columns import Plain
from batch_nst.job.manifest import WorkItem
from batch_nst.job.spill import Spill
from batch_nst.job.todo import Todo

_RECORDS = ["id", "key", "status", "finished_at"]
_RECORD_SCHEMA = records.SCHEMA.empty_table().select(_RECORDS).schema.append(pa.field("place", pa.int64()))
_IMAGE_SCHEMA = pa.schema([("id", pa.string())])


@dataclass(frozen=True)
class Planned:
    """A plain manifest's plan: the items to do streamed, how many are done, the invalid rows."""

    todo: Todo
    done: int
    invalid: list[WorkItem]  # rows with an input missing, by row: the caller says why


def plan(manifest: Plain, root: str, force: bool, prints: dict[str, str], weights_id: str) -> Planned:
    """Plan every partition of `manifest` against the root's records and images (none with `force`)."""
    history = None if force else _spill_records(manifest, root)
    images = _spill_images(manifest, root) if history is not None and history.rows else None
    keys = columns.Keys.of(prints, manifest.params, weights_id)
    known = pa.array(list(prints), pa.string())
    todo, done, invalid = Todo(manifest.workspace, manifest.parts.parts, manifest.params), 0, []
    for part in range(manifest.parts.parts):
        rows = manifest.columns(part)
        readable = pc.and_(pc.is_in(rows.content, value_set=known), pc.is_in(rows.style, value_set=known))
        invalid += rows.items(pc.indices_nonzero(pc.invert(readable)))
        rows = rows.filter(readable)
        row_keys = keys(rows)
        finished = _done(rows.ids, row_keys, history, images, part)
        todo.add(part, rows.filter(pc.invert(finished)), row_keys.filter(pc.invert(finished)))
        done += pc.sum(finished).as_py() or 0
    for spill in (history, images):
        if spill is not None:
            spill.discard()  # read once: its disk back now
    return Planned(todo.close(), done, sorted(invalid, key=lambda item: item.row))


def _done(ids: pa.Array, keys: pa.Array, history: Spill | None, images: Spill | None, part: int) -> pa.Array:
    """Which rows are done: their id's latest record `ok` with their key, and their image listed."""
    if images is None:
        return pa.array(np.zeros(len(ids), bool))
    table = history.read(part)
    latest = records.latest_of(table.select(_RECORDS), table["place"].to_numpy())
    return pc.and_(pc.is_in(_pairs(ids, keys), value_set=_pairs(latest["id"], latest["key"])),
                   pc.is_in(ids, value_set=images.read(part)["id"]))


def _pairs(ids: pa.Array, keys: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(ids, keys, "\x00")


def _spill_records(manifest: Plain, root: str) -> Spill:
    """Every record of the root into the manifest's partitions, numbered in the order read; read
    again from the start when a compaction replaced a file midway (as `records.read` does)."""
    for attempt in range(records.READ_ATTEMPTS):
        spill = manifest.workspace.spill("records", manifest.parts.parts, _RECORD_SCHEMA)
        try:
            for batch in records.batches(root, _RECORDS):
                place = pa.array(np.arange(spill.rows, spill.rows + batch.num_rows), pa.int64())
                spill.add(pa.Table.from_batches([batch]).append_column("place", place))
            return spill.close()
        except BatchNSTError:
            spill.discard()
            if attempt == records.READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _spill_images(manifest: Plain, root: str) -> Spill:
    """The ids with an image under the root, listed in batches, into the manifest's partitions."""
    spill = manifest.workspace.spill("images", manifest.parts.parts, _IMAGE_SCHEMA)
    return spill.add_all(pa.table({"id": ids}) for ids in records.stored_id_batches(root))
