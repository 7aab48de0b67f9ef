"""The driver's writer: a run's records, received a chunk at a time, written as few large parts.

Chunks arrive as Arrow tables and are written as they came (concatenated, never turned into
Python rows), so the driver's work per record is a few bytes copied, not a dict built. A part is
written every `every` records or `seconds`, then the pending copies of what it holds are deleted
in one bulk request. A part that cannot be written (a full disk) stays buffered and is tried again:
a failed write never ends the run; what is still unwritten at the end stays pending for the next.
"""

from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.compute as pc

from batch_nst import storage
from batch_nst.errors import BatchNSTError
from batch_nst.job import pending, records
from batch_nst.job.pending import Chunk

EVERY, SECONDS = 20_000, 30.0  # records and seconds between parts: an 8 h night writes ~1,000 parts at most


class Writer:
    """Buffers a run's chunks and writes them as Parquet parts `part-<run>-<seq>.parquet`."""

    def __init__(self, root: str, run_id: str, every: int = EVERY, seconds: float = SECONDS):
        self.root, self.run_id, self.every, self.seconds = root, run_id, every, seconds
        self.error: str | None = None  # why the last write failed; None once one succeeds
        self._buffer: list[Chunk] = []
        self._rows = 0
        self._ids: list[pa.ChunkedArray] = []  # of every chunk added: a pending copy of one of them is no news
        self._received: set[str] = set()  # pending files of the chunks added
        self._seq = 0
        self._last = time.monotonic()

    def add(self, chunk: Chunk) -> None:
        self._buffer.append(chunk)
        self._rows += chunk.table.num_rows
        self._ids.append(chunk.table["id"])
        if chunk.pending:
            self._received.add(chunk.pending)
        if self._rows >= self.every or time.monotonic() - self._last >= self.seconds:
            self.flush()

    def flush(self) -> None:
        self._last = time.monotonic()
        if not self._buffer:
            return
        try:
            records.write_part(self.root, f"part-{self.run_id}-{self._seq:05d}",
                               pa.concat_tables([chunk.table for chunk in self._buffer]))
        except BatchNSTError as err:
            self.error = str(err)
            return
        written, self._buffer, self._rows, self.error = self._buffer, [], 0, None
        self._seq += 1
        pending.remove([chunk.pending for chunk in written if chunk.pending])

    def gather_pending(self) -> pa.Table:
        """This run's pending records the driver never received (a stop signal or a crash ended the
        run while workers were writing them), added like any other: each is a finished item whose
        image is written, so the summary counts it and the part holds it. Returns them."""
        news, added = [], self._added()
        for uri in pending.files(self.root, self.run_id):
            if uri in self._received:
                continue
            table = pending.latest_per_id(pending.read(uri))
            table = table.filter(pc.invert(pc.is_in(table["id"], value_set=added)))
            self.add(Chunk(table, uri))  # even empty: its file goes once the part is written
            news.append(table)
            added = pa.concat_arrays([added, table["id"].combine_chunks()])
        return pa.concat_tables(news) if news else records.SCHEMA.empty_table()

    def close(self) -> int:
        """The last flush; records that still cannot be written are kept pending (their copies,
        or a file of the driver's own) for the next run. Returns how many were not written
        (`error` says why)."""
        self.flush()
        unwritten = [chunk for chunk in self._buffer if not chunk.pending and chunk.table.num_rows]
        if unwritten:
            pending.write_chunk(self.root, self.run_id, pa.concat_tables([c.table for c in unwritten]))
        if not self._buffer:  # its pending folder is empty now: no run leaves one behind
            storage.remove_empty_folder(pending.folder(self.root, self.run_id))
        return self._rows

    def _added(self) -> pa.Array:
        ids = [array for chunked in self._ids for array in chunked.chunks]
        return pa.concat_arrays(ids) if ids else pa.array([], pa.string())
