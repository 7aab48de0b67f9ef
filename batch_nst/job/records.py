"""The metadata contract: one Parquet record per item processed per run, and run summaries.

Layout under the output root (DESIGN.md):
    metadata/part-<run_id>-<seq>.parquet      records a run wrote, a part every few thousand
    metadata/compacted-<stamp>-<n>.parquet    records compaction gathered (compact.py)
    metadata/_pending/<run_id>/<chunk>.parquet a worker's records of one chunk (pending.py)
    runs/<run_id>.json                        the run summary
Records are plain dicts shaped by `SCHEMA` where they are made, and Arrow tables of it wherever
they travel in numbers (a worker's chunk, the driver's parts): no per-record Python on the way.
Readers go through `read`, which reads each record once even while a compaction replaces the
files (`live_files`). pyarrow's dataset discovery skips `_pending/` as every name starting with "_".
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import numbers
import os
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.errors import BatchNSTError
from batch_nst.params import TERMS

OK, FAILED = "ok", "failed"
DRIVER = "driver"  # the `worker` of records the driver makes itself (invalid rows, lost items)
PENDING = "_pending"
COMPACTED = "compacted-"  # the names of compacted files (compact.py)
REPLACES = b"batch_nst.replaces"  # a compacted file's footer key: JSON list of the file names it replaces
READ_ATTEMPTS = 5  # listings of the metadata a reader tries while compactions replace its files

# The one list of metadata columns: (name, Python type, Parquet type). `Record`'s typed fields and
# `SCHEMA` are both made from it, so the two cannot drift.
_TEXT, _REAL, _WHOLE = (str, pa.string()), (numbers.Real, pa.float64()), (numbers.Integral, pa.int32())
COLUMNS = [
    ("id", *_TEXT),
    ("key", *_TEXT),
    ("content", *_TEXT),
    ("style", *_TEXT),
    ("output", *_TEXT),
    ("status", *_TEXT),
    ("error", *_TEXT),
    *((f"{term}_loss", *_REAL) for term in TERMS),  # total weighted, the others unweighted
    ("style_distance", *_REAL),  # to the style at one reference size (distance.py); null before it
    ("speckle", *_REAL),  # of the image: mean |pixel - 3x3 median| over opaque pixels (assets/quality.py)
    ("content_speckle", *_REAL),  # the content's, what `speckle` is read against
    ("edges", *_REAL),  # correlation of the image's edge strength with the content's (1 kept, 0 gone)
    ("loss_history", list, pa.list_(pa.float32())),
    ("steps", *_WHOLE),
    ("frames", *_WHOLE),  # of the written image: 1 a still (a one-frame GIF too), more an animation
    ("height", *_WHOLE),  # of the written image (the content's own size)
    ("width", *_WHOLE),
    ("opt_height", *_WHOLE),  # size the optimization ran at
    ("opt_width", *_WHOLE),
    ("seconds", *_REAL),  # the item in its worker: read, stylize, write
    ("optimize_seconds", *_REAL),  # inside the optimization steps only
    ("params", *_TEXT),  # effective StyleParams, canonical JSON
    ("weights", *_TEXT),
    ("precision", *_TEXT),  # the network arithmetic that ran (params holds the request)
    ("backend", *_TEXT),  # the Keras backend that ran it (not part of the key)
    ("note", *_TEXT),  # e.g. "content: first frame of 12"
    ("worker", *_TEXT),
    ("node", *_TEXT),  # the Ray node id of the worker (None for the driver's records)
    ("accelerators", list, pa.list_(pa.string())),  # the GPU ids Ray gave the worker; empty on CPU
    ("run_id", *_TEXT),
    ("finished_at", datetime, pa.timestamp("ms", tz="UTC")),
]
SCHEMA = pa.schema([(name, arrow) for name, _, arrow in COLUMNS])


def _check(record: Any) -> None:
    """Every column None or of its type, checked by code (an `assert` is gone under python -O)."""
    for name, kind, _ in COLUMNS:
        value = getattr(record, name)
        accepted = (list, tuple) if kind is list else kind  # a history may come as a tuple
        if value is not None and (not isinstance(value, accepted) or isinstance(value, bool)):
            raise TypeError(f"metadata column {name} must be {kind.__name__}, got {value!r}")


Record = dataclasses.make_dataclass(
    "Record", [(name, kind | None, dataclasses.field(default=None)) for name, kind, _ in COLUMNS], frozen=True,
    namespace={"__post_init__": _check, "__doc__": "One metadata row: every column of COLUMNS, None where unset."})


def now() -> datetime:
    return datetime.now(timezone.utc)


def record(**fields: Any) -> dict[str, Any]:
    """A row with every column present (missing ones None), built through `Record`: an unknown
    column or a value of the wrong type fails here, naming it."""
    unknown = set(fields) - set(SCHEMA.names)
    if unknown:
        raise TypeError(f"not metadata columns: {sorted(unknown)}")
    return dataclasses.asdict(Record(**fields))


def for_item(item, *, run_id: str, worker: str, weights: str, seconds: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A record of a WorkItem (`batch_nst.job.manifest.WorkItem`): its identity plus `fields`."""
    return record(
        id=item.id, key=item.key, content=storage.redact(item.content), style=";".join(storage.redact(uri) for uri in item.styles),
        params=item.params.to_json(), weights=weights, worker=worker, run_id=run_id,
        finished_at=now(), seconds=seconds, **fields,
    )


def metadata_dir(root: str) -> str:
    return storage.join(root, "metadata")


def table(recs: Iterable[dict[str, Any]]) -> pa.Table:
    """Records as one Arrow table of SCHEMA: the form they travel and are written in."""
    return pa.Table.from_pylist(list(recs), schema=SCHEMA)


def write_part(root: str, name: str, records: pa.Table | list[dict[str, Any]]) -> str:
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
    skip. Only the latest counts: after runs with steps 5, 8, 5 the image on disk is the steps-8
    one, so the steps-5 `ok` record of the first run must not make the third skip. Latest: the
    greatest `finished_at`, then the last read; found with one stable sort of integers (an id's
    group number, its time, its place), not per row in Python nor by a grouping of strings: a
    million records in about a second and a few hundred MB."""
    columns = ["id", "key", "status", "finished_at"]
    table = pa.concat_tables([read(root, columns), _dataset(storage.join(metadata_dir(root), PENDING), columns)])
    if table.num_rows:
        groups = pc.dictionary_encode(table["id"]).combine_chunks().indices.to_numpy(zero_copy_only=False)
        times = pc.fill_null(table["finished_at"].cast(pa.int64()), np.iinfo(np.int64).max)  # a null sorts last
        order = np.lexsort((np.arange(table.num_rows), times.to_numpy(), groups))
        ends = np.append(groups[order][1:] != groups[order][:-1], True)  # the last of each id's group
        table = table.take(pa.array(order[ends]))
    table = table.filter(pc.and_(pc.equal(table["status"], OK), pc.is_valid(table["key"])))
    return table.select(["id", "key"])


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
    names = pa.array(storage.names(storage.join(root, "images")), pa.string())
    parts = pc.split_pattern(names, ".", reverse=True, max_splits=1)
    images = pc.is_in(pc.list_element(parts, 1), value_set=pa.array(IMAGE_EXTENSIONS))
    return pc.list_element(parts, 0).filter(pc.fill_null(images, False))


def checkpoint_uri(root: str, key: str) -> str:
    """Where an item's optimization state waits while it runs (keys are hex: under the root)."""
    return storage.join(root, "checkpoints", f"{key}.npz")
