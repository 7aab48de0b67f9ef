"""The metadata contract: one Parquet record per item processed per run, and run summaries.

Layout under the output root (README, "Output root"):
    metadata/part-<run_id>-<seq>.parquet      records a run wrote, a part every few thousand
    metadata/compacted-<stamp>-<n>.parquet    records compaction gathered (compact.py)
    metadata/_pending/<run_id>/<chunk>.parquet a worker's records of one chunk (pending.py)
    runs/<run_id>.json                        the run summary
Records are `Record`s where they are made or read one by one (a worker's items, the report), and
Arrow tables of `SCHEMA` wherever they travel in numbers (a worker's chunk, the driver's parts):
no per-record Python on the way.
Readers go through `read`, which reads each record once even while a compaction replaces the
files (`live_files`). pyarrow's dataset discovery skips `_pending/` as every name starting with "_".
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from datetime import datetime
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.errors import BatchNSTError
from batch_nst.job.schema import COLUMNS, SCHEMA, Record, for_item, from_table, now, record, table

__all__ = [  # with schema.py's Record and what makes one: writers and readers reach them here (records.Record)
    "COLUMNS", "SCHEMA", "Record", "for_item", "from_table", "now", "record", "table",
    "OK", "FAILED", "DRIVER", "PENDING", "COMPACTED", "REPLACES", "READ_ATTEMPTS", "IMAGE_EXTENSIONS",
    "metadata_dir", "write_part", "stale_images", "read", "live_files", "footer", "replaces", "name_of", "current_ok",
    "latest_ok", "latest_of", "batches", "read_files", "parquet", "write_summary", "image_uri", "image_uris", "output_uri", "stored_ids",
    "stored_id_array", "stored_id_batches", "checkpoint_uri",
]

OK, FAILED = "ok", "failed"
DRIVER = "driver"  # the `worker` of records the driver makes itself (invalid rows, lost items)
PENDING = "_pending"
COMPACTED = "compacted-"  # the names of compacted files (compact.py)
REPLACES = b"batch_nst.replaces"  # a compacted file's footer key: JSON list of the file names it replaces
READ_ATTEMPTS = 5  # listings of the metadata a reader tries while compactions replace its files


def metadata_dir(root: str) -> str:
    return storage.join(root, "metadata")


def write_part(root: str, name: str, records: pa.Table | list[Record]) -> str:
    """Write records (a table, or rows) as one Parquet part `metadata/<name>.parquet`, atomically,
    then delete the images no record stands for; returns its URI."""
    records = records if isinstance(records, pa.Table) else table(records)
    uri = storage.join(metadata_dir(root), f"{name}.parquet")
    storage.write_bytes(uri, parquet(records))
    with contextlib.suppress(BatchNSTError):  # best effort: the part is written, it must not be again
        storage.remove(stale_images(root, records))
    return uri


def stale_images(root: str, records: pa.Table) -> list[str]:
    """The images the records make stale: a failed item's (of an earlier key: no image on disk
    looks current beside a `failed` record), and an ok item's under another extension than its
    output's (a still that was an animation). Removed a part at a time, in bulk requests (~1,000
    names each on object stores), not with a DELETE per item from the workers."""
    columns = (records[name].to_pylist() for name in ("id", "status", "output"))
    return [image_uri(root, item_id, extension) for item_id, status, output in zip(*columns)
            for extension in IMAGE_EXTENSIONS
            if status == FAILED or (output is not None and not output.endswith("." + extension))]


def read(root: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Every record in the metadata (an empty table when there are none yet), each once even
    while a compaction replaces the files under it (`live_files`)."""
    columns = list(columns) if columns is not None else SCHEMA.names
    for attempt in range(READ_ATTEMPTS):
        try:
            return read_files(live_files(root), columns)
        except BatchNSTError:  # a file listed a moment ago was compacted away: list again
            if attempt == READ_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def live_files(root: str) -> list[str]:
    """The metadata files that hold the records: every Parquet file under metadata/ except those
    a compacted file replaces. A compacted file names what it replaces in its own footer
    (REPLACES), so it and its claim appear together: between its write and the deletion of what
    it replaces, a reader skips the replaced files; before its write, it reads them."""
    files = storage.glob(storage.join(metadata_dir(root), "*.parquet"))
    replaced = {name for uri in files if name_of(uri).startswith(COMPACTED) for name in replaces(footer(uri))}
    return [uri for uri in files if name_of(uri) not in replaced]


def footer(uri: str) -> pq.FileMetaData:
    """A Parquet file's footer: its rows, and a compacted file's claim (one small read)."""
    fs, path = storage.filesystem(uri)
    with storage.errors_naming("read", uri):
        with fs.open(path, "rb") as f:
            return pq.read_metadata(f)


def replaces(meta: pq.FileMetaData) -> list[str]:
    """The names of the files a compacted file replaces, from its footer."""
    return json.loads((meta.metadata or {}).get(REPLACES, b"[]"))


def name_of(uri: str) -> str:
    return uri.replace("\\", "/").rsplit("/", 1)[-1]


def current_ok(root: str) -> dict[str, str]:
    """{id: key} of the ids whose latest record, pending ones included, is `ok` (`latest_ok`)."""
    latest = latest_ok(root)
    return dict(zip(latest["id"].to_pylist(), latest["key"].to_pylist()))


def latest_ok(root: str) -> pa.Table:
    """(id, key) of the ids whose latest record, pending ones included, is `ok`: what a run may
    skip (`latest_of`)."""
    columns = ["id", "key", "status", "finished_at"]
    table = pa.concat_tables([read(root, columns), _dataset(storage.join(metadata_dir(root), PENDING), columns)])
    return latest_of(table, np.arange(table.num_rows))


def latest_of(table: pa.Table, place: np.ndarray) -> pa.Table:
    """(id, key) of the ids whose latest record in `table` (id, key, status, finished_at) is
    `ok`. Only the latest counts: after runs with steps 5, 8, 5 the image on disk is the steps-8
    one, so the steps-5 `ok` record of the first run must not make the third skip. Latest: the
    greatest `finished_at`, then the greatest `place` (the order records were read in); found
    with one stable sort of integers (an id's group number, its time, its place), not per row in
    Python nor by a grouping of strings: a million records in about a second and a few hundred MB."""
    if table.num_rows:
        groups = pc.dictionary_encode(table["id"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
        times = pc.fill_null(table["finished_at"].cast(pa.int64()), np.iinfo(np.int64).max)  # a null sorts last
        order = np.lexsort((place, times.to_numpy(), groups))
        ends = np.append(groups[order][1:] != groups[order][:-1], True)  # the last of each id's group
        table = table.take(pa.array(order[ends]))
    table = table.filter(pc.and_(pc.equal(table["status"], OK), pc.is_valid(table["key"])))
    return table.select(["id", "key"])


def batches(root: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Every record (`read`'s, then the pending ones), a batch at a time, in the order `latest_ok`
    reads them; a file at a time, so a slow reader holds one batch (a dataset scanner reads ahead
    of it: 768 MB over 10 M records). A file compacted away midway raises a BatchNSTError: the
    caller starts over."""
    for uri in live_files(root):
        yield from _file_batches(uri, columns)
    yield from _dataset(storage.join(metadata_dir(root), PENDING), columns).to_batches()


def _file_batches(uri: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """One metadata file's records in SCHEMA's types, 65,536 at a time (an older file's missing
    columns: null)."""
    schema = pa.schema([SCHEMA.field(name) for name in columns])
    fs, path = storage.filesystem(uri)
    with storage.errors_naming("read", uri), fs.open(path, "rb") as f:
        parquet = pq.ParquetFile(f)
        present = [name for name in columns if name in parquet.schema_arrow.names]
        for batch in parquet.iter_batches(batch_size=65_536, columns=present):
            yield pa.RecordBatch.from_arrays([
                batch.column(name).cast(field.type) if name in present else pa.nulls(batch.num_rows, field.type)
                for name, field in zip(columns, schema)], schema=schema)


def read_files(files: list[str], columns: list[str]) -> pa.Table:
    """The records of the given metadata files in SCHEMA (older files lack newer columns: null)."""
    if not files:
        return SCHEMA.empty_table().select(columns)
    fs, _ = storage.filesystem(files[0])
    paths = [storage.filesystem(uri)[1] for uri in files]
    with storage.errors_naming("read", storage.parent(files[0])):
        return pads.dataset(paths, filesystem=fs, format="parquet", schema=SCHEMA).to_table(columns=columns)


def _dataset(uri: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Every Parquet file under a folder (recursively), as one table."""
    columns = list(columns) if columns is not None else SCHEMA.names
    if not storage.exists(uri):
        return SCHEMA.empty_table().select(columns)
    fs, path = storage.filesystem(uri)
    return pads.dataset(path, filesystem=fs, format="parquet", schema=SCHEMA).to_table(columns=columns)


def parquet(records: pa.Table, metadata: dict[str, str] | None = None) -> bytes:
    """Records as the bytes of one zstd Parquet file; `metadata` goes into its footer."""
    buf = io.BytesIO()
    if metadata:
        records = records.replace_schema_metadata({**(records.schema.metadata or {}), **metadata})
    pq.write_table(records, buf, compression="zstd")
    return buf.getvalue()


def write_summary(root: str, run_id: str, summary: dict[str, Any]) -> str:
    """runs/<run_id>.json, atomically."""
    uri = storage.join(root, "runs", f"{run_id}.json")
    storage.write_bytes(uri, (json.dumps(summary, indent=2, default=_jsonable) + "\n").encode())
    return uri


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


IMAGE_EXTENSIONS = ("png", "gif", "webp")  # a still's PNG; an animation's own container (APNG is .png)


def image_uri(root: str, item_id: str, extension: str = "png") -> str:
    """Where an item's image goes; ids are validated file names, so this stays under the root."""
    return storage.join(root, "images", f"{item_id}.{extension}")


def image_uris(root: str, item_id: str) -> list[str]:
    """Every name an item's image may have (to remove a stale one, whatever it was)."""
    return [image_uri(root, item_id, extension) for extension in IMAGE_EXTENSIONS]


def output_uri(root: str, output: str) -> str:
    """Where a record's image is, read from any folder. Records store an absolute URI; older ones
    stored the path as the run was given it (`out/images/x.png`, relative to where it started):
    every image lives in the root's images/, so a relative one is found there by its name."""
    if "://" in output or os.path.isabs(output):
        return output
    return storage.join(root, "images", output.replace("\\", "/").rsplit("/", 1)[-1])


def stored_ids(root: str) -> set[str]:
    """The ids that have an image under the root, from one listing of images/: a record says an
    item is done only while its image is still there (someone may have deleted it)."""
    return set(stored_id_array(root).to_pylist())


def stored_id_array(root: str) -> pa.Array:
    """`stored_ids` as an Arrow array, from names alone (no per-file stat: a million images list
    in about a second)."""
    return _image_ids(storage.names(storage.join(root, "images")))


def stored_id_batches(root: str) -> Iterator[pa.Array]:
    """`stored_id_array` a listing batch at a time (a plan of millions holds one batch)."""
    return map(_image_ids, storage.name_batches(storage.join(root, "images")))


def _image_ids(names: list[str]) -> pa.Array:
    """The ids of the images among file names (`<id>.<an image extension>`)."""
    parts = pc.split_pattern(pa.array(names, pa.string()), ".", reverse=True, max_splits=1)
    images = pc.is_in(pc.list_element(parts, 1), value_set=pa.array(IMAGE_EXTENSIONS))
    return pc.list_element(parts, 0).filter(pc.fill_null(images, False))


def checkpoint_uri(root: str, key: str) -> str:
    """Where an item's optimization state waits while it runs (keys are hex: under the root)."""
    return storage.join(root, "checkpoints", f"{key}.npz")
