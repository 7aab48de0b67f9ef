"""Pending records: a worker's copy of a finished chunk's records, until the driver has them in a part.

    metadata/_pending/<run_id>/<chunk>.parquet   one file per finished chunk, all its items' records

A worker writes one file per chunk (not one per item: at sprite rates a PUT and a DELETE per item
neared an object store's request limits), named by the chunk's ids, so Ray's retry of the same
chunk replaces the file instead of doubling it. The driver deletes the files of the chunks it has
written into parts. So a killed driver loses nothing that finished: the next run counts pending
records as done and gathers them (`recover`), dropping any it had already written.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.errors import BatchNSTError
from batch_nst.job import records

_KEY = ["run_id", "id", "key", "status"]  # a record already written, whatever its other columns


@dataclass(frozen=True)
class Chunk:
    """A finished chunk's records as the driver receives them: one table, and the pending file
    that holds a copy of them (None for the driver's own records, or when the copy failed)."""

    table: pa.Table
    pending: str | None = None


def folder(root: str, run_id: str | None = None) -> str:
    """metadata/_pending, or one run's folder in it."""
    base = storage.join(records.metadata_dir(root), records.PENDING)
    return storage.join(base, run_id) if run_id else base


def write_chunk(root: str, run_id: str, recs: pa.Table | list[records.Record]) -> Chunk:
    """A worker's copy of a chunk's records (a table, or Records), written atomically as one file;
    best effort (the driver still gets the records and writes them in its part when this write fails)."""
    table = recs if isinstance(recs, pa.Table) else records.table(recs)
    name = hashlib.sha256("\n".join(table["id"].to_pylist()).encode()).hexdigest()[:24]
    uri = storage.join(folder(root, run_id), f"{name}.parquet")
    try:
        storage.write_bytes(uri, records.parquet(table))
    except BatchNSTError:
        return Chunk(table)
    return Chunk(table, uri)


def files(root: str, run_id: str | None = None) -> list[str]:
    """The pending files of one run, or of every run."""
    return storage.glob(storage.join(folder(root, run_id), "*.parquet" if run_id else "*/*.parquet"))


def read(uri: str) -> pa.Table:
    """One pending file's records, in SCHEMA (a file of an older version lacks newer columns)."""
    fs, path = storage.filesystem(uri)
    with storage.errors_naming("read", uri):
        table = pq.read_table(path, filesystem=fs)
    return pa.table({f.name: table[f.name].cast(f.type) if f.name in table.column_names else
                     pa.nulls(table.num_rows, f.type) for f in records.SCHEMA}, schema=records.SCHEMA)


def latest_per_id(table: pa.Table) -> pa.Table:
    """One record per (run, id), the latest: a chunk lost after its worker wrote its copy is redone
    item by item, and each item's later record is the one kept."""
    if table.num_rows < 2:
        return table
    order = table.sort_by([("finished_at", "descending")])
    keys = pc.binary_join_element_wise(order["run_id"], order["id"], "\x00")
    first = pc.equal(pc.index_in(keys, value_set=keys), pa.array(range(order.num_rows), pa.int32()))
    return order.filter(first)


def recover(root: str) -> dict[str, int]:
    """Gather the pending records of earlier runs into parts; returns how many per run.

    Call only while holding the output root's lock: then no live run has pending records.
    Records already in the metadata (the driver died between writing a part and deleting its
    pending copies) are dropped, so nothing is doubled.
    """
    uris = files(root)
    if not uris:
        return {}
    pending = latest_per_id(pa.concat_tables([read(uri) for uri in uris]))
    written = records.read(root, _KEY)
    written = written.filter(pc.is_in(written["run_id"], value_set=pending["run_id"].unique()))
    fresh = pending.filter(pc.invert(pc.is_in(_keys(pending), value_set=_keys(written))))
    counts = Counter(fresh["run_id"].to_pylist())
    for run_id in sorted(counts):
        stamp = hashlib.sha256("\n".join(uris).encode()).hexdigest()[:8]  # the same files: the same name
        records.write_part(root, f"part-{run_id}-recovered-{stamp}", fresh.filter(pc.equal(fresh["run_id"], run_id)))
    storage.remove(uris)
    for run_folder in {storage.parent(uri) for uri in uris}:
        storage.remove_empty_folder(run_folder)
    return dict(counts)


def _keys(table: pa.Table) -> pa.Array:
    """One string per record naming it by `_KEY` (a null key or status reads as empty)."""
    return pc.binary_join_element_wise(*(pc.fill_null(table[name], "") for name in _KEY), "\x00")


def remove(uris: list[str]) -> None:
    """Delete pending files whose records are written (a copy left behind is dropped by the next
    `recover`, so a failure here loses nothing)."""
    with contextlib.suppress(BatchNSTError):
        storage.remove(uris)
