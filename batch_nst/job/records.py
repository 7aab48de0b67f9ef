"""The metadata contract: one Parquet record per item processed per run, and run summaries.

Layout under the output root (DESIGN.md):
    metadata/part-<run_id>-<seq>.parquet   records, readable with pyarrow.dataset(root + "/metadata")
    metadata/_pending/<run_id>/<id>.parquet one record each, written by a worker as its item ends
    runs/<run_id>.json                      the run summary
Records are plain dicts shaped by `SCHEMA`. A worker writes each record at once to `_pending/`
(which pyarrow's dataset discovery skips, as it skips every name starting with "_"); the driver
gathers them into parts every few seconds and deletes the pending copies. So a killed driver
loses nothing that finished: the next run counts pending records as done and gathers them
(`recover`), dropping any it had already written, so no record is ever doubled. A driver that
cannot write its parts (a full disk) keeps its records there too, for the next run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import numbers
import os
import uuid
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.errors import BatchNSTError
from batch_nst.params import TERMS

OK, FAILED = "ok", "failed"
DRIVER = "driver"  # the `worker` of records the driver makes itself (invalid rows, lost items)
PENDING = "_pending"

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


def write_part(root: str, name: str, records: list[dict[str, Any]]) -> str:
    """Write records as one Parquet part `metadata/<name>.parquet`, atomically, and delete the
    images of the failed ones; returns its URI."""
    uri = storage.join(metadata_dir(root), f"{name}.parquet")
    storage.write_bytes(uri, _parquet(records))
    # A failed item's image is of an earlier key: once its record is the latest, the image goes,
    # so no image on disk looks current beside a `failed` record.
    with contextlib.suppress(BatchNSTError):  # best effort: the part is written, it must not be again
        storage.remove(uri for r in records if r["status"] == FAILED for uri in image_uris(root, r["id"]))
    return uri


def write_pending(root: str, rec: dict[str, Any]) -> None:
    """A worker's copy of one record, written as soon as its item ends (atomically)."""
    storage.write_bytes(_pending_uri(root, rec["run_id"], rec["id"]), _parquet([rec]))


def recover(root: str) -> dict[str, int]:
    """Gather the pending records of earlier runs into parts; returns how many per run.

    Call only while holding the output root's lock: then no live run has pending records.
    Records already in a part of their run (the driver died between writing a part and deleting
    its pending copies) are dropped, so nothing is doubled.
    """
    pending = storage.join(metadata_dir(root), PENDING)
    files = storage.glob(storage.join(pending, "*", "*.parquet"))
    if not files:
        return {}
    table = _dataset(pending)
    written = {(r["run_id"], r["id"], r["key"], r["status"]) for r in read(root, ["run_id", "id", "key", "status"]).to_pylist()}
    fresh = [r for r in table.to_pylist() if (r["run_id"], r["id"], r["key"], r["status"]) not in written]
    for run_id in sorted({r["run_id"] for r in fresh}):
        write_part(root, f"part-{run_id}-recovered-{uuid.uuid4().hex[:8]}", [r for r in fresh if r["run_id"] == run_id])
    storage.remove(files)
    return dict(Counter(r["run_id"] for r in fresh))


def read(root: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Every record in the metadata parts (an empty table when there are none yet)."""
    return _dataset(metadata_dir(root), columns)


def current_ok(root: str) -> dict[str, str]:
    """{id: key} of the ids whose latest record, pending ones included, is `ok`: what a run may
    skip. Only the latest counts: after runs with steps 5, 8, 5 the image on disk is the steps-8
    one, so the steps-5 `ok` record of the first run must not make the third skip."""
    columns = ["id", "key", "status", "finished_at"]
    table = pa.concat_tables([read(root, columns), _dataset(storage.join(metadata_dir(root), PENDING), columns)])
    table = table.sort_by([("finished_at", "ascending")])
    latest = dict(zip(table["id"].to_pylist(), zip(table["key"].to_pylist(), table["status"].to_pylist())))
    return {item_id: key for item_id, (key, status) in latest.items() if status == OK and key}


def _dataset(uri: str, columns: Iterable[str] | None = None) -> pa.Table:
    columns = list(columns) if columns is not None else SCHEMA.names
    if not storage.exists(uri):
        return SCHEMA.empty_table().select(columns)
    fs, path = storage.filesystem(uri)
    return pads.dataset(path, filesystem=fs, format="parquet", schema=SCHEMA).to_table(columns=columns)


def _pending_uri(root: str, run_id: str, item_id: str) -> str:
    return storage.join(metadata_dir(root), PENDING, run_id, f"{item_id}.parquet")


def _parquet(records: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), buf, compression="zstd")
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
    names = (uri.rsplit("/", 1)[-1] for uri in storage.glob(storage.join(root, "images", "*")))
    return {name.rsplit(".", 1)[0] for name in names if name.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS}


def checkpoint_uri(root: str, key: str) -> str:
    """Where an item's optimization state waits while it runs (keys are hex: under the root)."""
    return storage.join(root, "checkpoints", f"{key}.npz")


class Writer:
    """Buffers a run's records and writes them as Parquet parts every `every` records or
    `seconds`, then deletes the workers' pending copies of what it wrote. A part that cannot be
    written (a full disk) stays buffered and is tried again: a failed write never ends the run."""

    def __init__(self, root: str, run_id: str, every: int = 100, seconds: float = 10.0):
        self.root, self.run_id, self.every, self.seconds = root, run_id, every, seconds
        self.error: str | None = None  # why the last write failed; None once one succeeds
        self._buffer: list[dict[str, Any]] = []
        self._ids: set[str] = set()  # every id added: a pending copy of one of them is no news
        self._seq = 0
        self._last = _monotonic()

    def add(self, rec: dict[str, Any]) -> None:
        self._buffer.append(rec)
        self._ids.add(rec["id"])
        if len(self._buffer) >= self.every or _monotonic() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self._last = _monotonic()
        if not self._buffer:
            return
        try:
            write_part(self.root, f"part-{self.run_id}-{self._seq:05d}", self._buffer)
        except BatchNSTError as err:
            self.error = str(err)
            return
        written, self._buffer, self.error = self._buffer, [], None
        self._seq += 1
        with contextlib.suppress(BatchNSTError):  # a copy left behind is dropped by the next `recover`
            storage.remove(_pending_uri(self.root, self.run_id, r["id"]) for r in written if r["worker"] != DRIVER)

    def gather_pending(self) -> list[dict[str, Any]]:
        """This run's pending records the driver never received (a stop signal or a crash ended the
        run while workers were writing them), added like any other: each is a finished item whose
        image is written, so the summary counts it and the part holds it."""
        table = _dataset(storage.join(metadata_dir(self.root), PENDING, self.run_id))
        news = [rec for rec in table.to_pylist() if rec["id"] not in self._ids]
        for rec in news:
            self.add(rec)
        return news

    def close(self) -> int:
        """The last flush; records that still cannot be written are kept under _pending (each
        that can be) for the next run to gather. Returns how many were not written (`error` says why)."""
        self.flush()
        for rec in self._buffer:
            with contextlib.suppress(BatchNSTError):
                write_pending(self.root, rec)
        if not self._buffer:  # its pending folder is empty now: no run leaves one behind
            storage.remove_empty_folder(storage.join(metadata_dir(self.root), PENDING, self.run_id))
        return len(self._buffer)


def _monotonic() -> float:
    import time

    return time.monotonic()
