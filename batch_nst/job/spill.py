"""Spill files: rows hash-partitioned by id into Arrow IPC files on local temporary disk.

A plan of 10 M rows cannot hold the manifest, the done-set and the images' names side by side
(~1 KB a row at the peak). Each input is streamed in batches into P partitions by a hash of its
ids; an id lands in the same partition of every input, so a partition is planned alone and the
driver's memory is bounded by a partition, not by the manifest. A partition's file is read back
whole, or streamed batch by batch (the to-do list the dispatch reads).
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import weakref
from typing import Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PREFIX = "batch-nst-plan-"
_MIX = np.uint64(0x9E3779B97F4A7C15)  # splitmix64's constants: position weights and the final mix
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


class Workspace:
    """A temporary folder for a plan's spill files, removed when the plan is dropped (or at exit);
    named by its process, so the next plan removes those of a driver that was killed (GBs of a
    10 M-row plan must not pile up on the head's disk)."""

    def __init__(self) -> None:
        _sweep()
        self.folder = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.folder, True)

    def spill(self, name: str, parts: int, schema: pa.Schema) -> Spill:
        return Spill(os.path.join(self.folder, name), parts, schema)


class Spill:
    """P files of rows of one schema, each row in the partition of its `id` (`partition_of`)."""

    def __init__(self, prefix: str, parts: int, schema: pa.Schema):
        self.prefix, self.parts, self.schema, self.rows = prefix, parts, schema, 0
        self._writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}

    def path(self, part: int) -> str:
        return f"{self.prefix}-{part:05d}.arrow"

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Append rows, each to its partition's file."""
        batch = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if not batch.num_rows:
            return
        part = partition_of(batch["id"], self.parts)
        order = np.argsort(part, kind="stable")
        ends = np.cumsum(np.bincount(part, minlength=self.parts))
        batch = batch.take(pa.array(order))
        for n, (start, end) in enumerate(zip(np.concatenate(([0], ends[:-1])), ends)):
            if end > start:
                self.write(n, batch.slice(start, end - start))

    def write(self, part: int, rows: pa.RecordBatch | pa.Table) -> None:
        """Append rows to one partition, as they are (rows already partitioned, and sorted)."""
        if part not in self._writers:
            self._writers[part] = pa.ipc.new_file(self.path(part), self.schema)
        self._writers[part].write(rows)
        self.rows += rows.num_rows

    def add_all(self, batches: Iterable[pa.RecordBatch | pa.Table]) -> Spill:
        """Every batch added, the files closed: ready to read."""
        for batch in batches:
            self.add(batch)
        return self.close()

    def close(self) -> Spill:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
        return self

    def discard(self) -> None:
        """Drop what was written (a read that must start over)."""
        self.close()
        for part in range(self.parts):
            if os.path.exists(self.path(part)):
                os.remove(self.path(part))
        self.rows = 0

    def read(self, part: int) -> pa.Table:
        """A partition whole (an empty table where no row fell)."""
        return pa.Table.from_batches(list(self.batches(part)), self.schema)

    def batches(self, part: int) -> Iterator[pa.RecordBatch]:
        """A partition batch by batch, read from the file (no memory map: its pages would count
        as the driver's resident memory)."""
        if not os.path.exists(self.path(part)):
            return
        with pa.OSFile(self.path(part)) as f:
            reader = pa.ipc.open_file(f)
            for n in range(reader.num_record_batches):
                yield reader.get_batch(n)


def _sweep() -> None:
    """Remove the spill folders of processes that no longer run (their pid in the name)."""
    for folder in glob.glob(os.path.join(tempfile.gettempdir(), f"{_PREFIX}*-*")):
        pid = os.path.basename(folder)[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True


def partition_of(ids: pa.Array | pa.ChunkedArray, parts: int) -> np.ndarray:
    """Each id's partition: a hash of its bytes (each byte weighted by its position's
    splitmix64 value, then mixed), the same for an id in every input and every process."""
    if parts == 1 or len(ids) == 0:
        return np.zeros(len(ids), np.int64)
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    ids = pc.cast(ids, pa.large_string())  # 64-bit offsets, whatever the input's type
    offsets = np.frombuffer(ids.buffers()[1], np.int64, len(ids) + 1, ids.offset * 8)
    data = np.frombuffer(ids.buffers()[2], np.uint8, offsets[-1] - offsets[0], offsets[0])
    offsets = offsets - offsets[0]
    lengths = np.diff(offsets)
    position = np.arange(len(data)) - np.repeat(offsets[:-1], lengths)
    weights = _splitmix(np.arange(lengths.max(initial=0), dtype=np.uint64))  # one per position, not per byte
    with np.errstate(over="ignore"):
        weighted = (data.astype(np.uint64) + np.uint64(1)) * weights[position]
        sums = np.concatenate(([np.uint64(0)], np.cumsum(weighted, dtype=np.uint64)))
        hashed = _splitmix(sums[offsets[1:]] - sums[offsets[:-1]])
    return (hashed % np.uint64(parts)).astype(np.int64)


def _splitmix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, elementwise (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = x * _MIX + _MIX
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))
