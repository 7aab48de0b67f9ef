"""How many items each chunk sent to a worker carries.

A chunk's round trip (a Ray task out, its records back) costs the driver ~8-14 ms of CPU however
many items it holds (README, "The driver at scale"). Chunks of one batch were right for 512 px
items (a batch takes seconds) but made the driver the limit for tiny sprites, whose batch of 16
is done in a fraction of a second: the round trip, not the GPU, set the pace. So chunks start at
one batch (`batch_items`), and once chunks have come back the next ones hold as many whole batches
as keep a worker busy for about `seconds` (`run --chunk-seconds`, default CHUNK_SECONDS) at the
pace seen so far, at most MAX_BATCHES batches, before the evening out below. That bounds what a
lost worker costs (its chunk is redone) and how stale the progress line gets, and leaves slow
items at one batch a chunk as before.

Chunks are cut in rounds of one chunk per worker, as equal as the items allow, so the last round
keeps every worker busy instead of leaving all but one idle (measured: README, Benchmarks). The
rounds are planned again from the items left whenever the wanted size changes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

CHUNK_SECONDS = 5.0  # a worker's time a chunk is sized for, once the pace is known
MAX_BATCHES = 16  # the most batches in one chunk


@dataclass
class Chunker:
    """Cuts the plan's stream into chunks (`chunks`), sized by what finished chunks took (`observe`)."""

    total: int  # items in the stream
    batch_items: int
    workers: int
    seconds: float = CHUNK_SECONDS  # a worker's time a chunk is sized for
    _given: int = 0
    _seconds: float = 0.0  # worker seconds of the items observed so far
    _observed: int = 0
    _wanted: int = 0  # the chunk size the current rounds were planned for
    _size: int = 0  # the size of this round's chunks

    def chunks(self, items: Iterable) -> Iterator[list]:
        """Consecutive items (one style together) in chunks, taken from the stream as the
        workers need them (a plan of millions is never a list here)."""
        stream = iter(items)
        while chunk := list(itertools.islice(stream, self.size())):
            self._given += len(chunk)
            yield chunk

    def observe(self, table: pa.Table) -> None:
        """Note a finished chunk's records: their `seconds` are a worker's time (a batch's shared)."""
        if table.num_rows and "seconds" in table.column_names:
            self._seconds += pc.sum(pc.fill_null(table["seconds"], 0.0)).as_py() or 0.0
            self._observed += table.num_rows

    def size(self) -> int:
        """The next chunk's size: the wanted one, evened out over rounds of one chunk per worker."""
        wanted = self.wanted()
        if wanted != self._wanted:
            left = max(1, self.total - self._given)
            rounds = -(-left // (self.workers * wanted))
            self._wanted, self._size = wanted, max(1, -(-left // (rounds * self.workers)))
        return self._size

    def wanted(self) -> int:
        """Whole batches for `seconds` of a worker at the pace seen (one batch before any is seen)."""
        if not self._observed or self._seconds <= 0:
            return self.batch_items
        per_batch = self._seconds / self._observed * self.batch_items
        return self.batch_items * int(min(MAX_BATCHES, max(1.0, self.seconds / per_batch)))
