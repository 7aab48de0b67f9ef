"""The metadata contract: one Parquet record per item processed per run, and run summaries.

Layout under the output root (DESIGN.md):
    metadata/part-<run_id>-<seq>.parquet   records, readable with pyarrow.dataset(root + "/metadata")
    runs/<run_id>.json                      the run summary
Records are plain dicts shaped by `SCHEMA`; the driver writes them in parts as they arrive, each
part atomically, so a reader never sees half a file and a killed driver loses only unflushed ones.
"""

from __future__ import annotations

import dataclasses
import io
import json
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from batch_nst import storage

OK, FAILED = "ok", "failed"

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("key", pa.string()),
        ("content", pa.string()),
        ("style", pa.string()),
        ("output", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("total_loss", pa.float64()),
        ("style_loss", pa.float64()),
        ("content_loss", pa.float64()),
        ("tv_loss", pa.float64()),
        ("loss_history", pa.list_(pa.float32())),
        ("steps", pa.int32()),
        ("height", pa.int32()),  # of the written image (the content's own size)
        ("width", pa.int32()),
        ("opt_height", pa.int32()),  # size the optimization ran at
        ("opt_width", pa.int32()),
        ("seconds", pa.float64()),  # the item in its worker: read, stylize, write
        ("optimize_seconds", pa.float64()),  # inside the optimization steps only
        ("params", pa.string()),  # effective StyleParams, canonical JSON
        ("weights", pa.string()),
        ("precision", pa.string()),  # the network arithmetic that ran (params holds the request)
        ("note", pa.string()),  # e.g. "content: first frame of 12"
        ("worker", pa.string()),
        ("run_id", pa.string()),
        ("finished_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def now() -> datetime:
    return datetime.now(timezone.utc)


def record(**fields: Any) -> dict[str, Any]:
    """A record with every schema column present (missing ones None); unknown names refused."""
    unknown = set(fields) - set(SCHEMA.names)
    assert not unknown, f"not metadata columns: {sorted(unknown)}"
    return {name: fields.get(name) for name in SCHEMA.names}


def for_item(item, *, run_id: str, worker: str, weights: str, seconds: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A record of a WorkItem (`batch_nst.manifest.WorkItem`): its identity plus `fields`."""
    return record(
        id=item.id, key=item.key, content=storage.redact(item.content), style=storage.redact(item.style),
        params=item.params.to_json(), weights=weights, worker=worker, run_id=run_id,
        finished_at=now(), seconds=seconds, **fields,
    )


def metadata_dir(root: str) -> str:
    return storage.join(root, "metadata")


def write_part(root: str, run_id: str, seq: int, records: list[dict[str, Any]]) -> str:
    """Write records as one Parquet part, atomically; returns its URI."""
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    uri = storage.join(metadata_dir(root), f"part-{run_id}-{seq:05d}.parquet")
    storage.write_bytes(uri, buf.getvalue())
    return uri


def read(root: str, columns: Iterable[str] | None = None) -> pa.Table:
    """Every record under the root (an empty table when there are none yet)."""
    columns = list(columns) if columns is not None else SCHEMA.names
    uri = metadata_dir(root)
    if not storage.exists(uri):
        return SCHEMA.empty_table().select(columns)
    fs, path = storage.filesystem(uri)
    dataset = pads.dataset(path, filesystem=fs, format="parquet", schema=SCHEMA)
    return dataset.to_table(columns=columns)


def ok_keys(root: str) -> set[str]:
    """Keys that already have an `ok` record: the items an incremental run skips."""
    table = read(root, ["key", "status"])
    return {k for k, s in zip(table["key"].to_pylist(), table["status"].to_pylist()) if s == OK and k}


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


def image_uri(root: str, item_id: str) -> str:
    """Where an item's image goes; ids are validated file names, so this stays under the root."""
    return storage.join(root, "images", f"{item_id}.png")


class Writer:
    """Buffers a run's records and writes them as Parquet parts every `every` records or `seconds`.

    A killed driver loses at most the unflushed records; those items carry no `ok` record, so the
    next run redoes them (same key, same output path, same bytes).
    """

    def __init__(self, root: str, run_id: str, every: int = 100, seconds: float = 10.0):
        self.root, self.run_id, self.every, self.seconds = root, run_id, every, seconds
        self._buffer: list[dict[str, Any]] = []
        self._seq = 0
        self._last = _monotonic()

    def add(self, rec: dict[str, Any]) -> None:
        self._buffer.append(rec)
        if len(self._buffer) >= self.every or _monotonic() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            write_part(self.root, self.run_id, self._seq, self._buffer)
            self._seq += 1
            self._buffer = []
        self._last = _monotonic()


def _monotonic() -> float:
    import time

    return time.monotonic()
