"""The items to do, streamed: a sorted spill file per partition, merged into dispatch order.

A plan of millions of items to do cannot hold them as a list of WorkItems (~0.5 KB each). Each
partition's items to do are written sorted by (style, row); the dispatch reads the files a batch
at a time and merges them in that order, so items of one style still come together and each
worker computes a style's Grams once, and the driver holds a batch per partition.
"""

from __future__ import annotations

import heapq
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from batch_nst.job.columns import Columns
from batch_nst.job.manifest import WorkItem
from batch_nst.job.spill import Workspace
from batch_nst.params import StyleParams

SCHEMA = pa.schema([("row", pa.int64()), ("id", pa.string()), ("content", pa.string()), ("style", pa.string()),
                    ("key", pa.string())])
BATCH = 2_048  # items written, and read back: the merge holds a batch of every partition


class Todo:
    """The items to do in dispatch order (by style, then row): sized, and iterable as often as
    needed, each time from disk. The files live as long as this object."""

    def __init__(self, workspace: Workspace, parts: int, params: StyleParams):
        self._workspace = workspace  # keeps the files
        self._spill = workspace.spill("todo", parts, SCHEMA)
        self.params = params

    def __len__(self) -> int:
        return self._spill.rows

    def add(self, part: int, rows: Columns, keys: pa.Array) -> None:
        """A partition's rows to do, with their keys: sorted, then written."""
        order = pc.sort_indices(pa.table({"style": rows.style, "row": rows.rows}),
                                sort_keys=[("style", "ascending"), ("row", "ascending")])
        table = pa.table([rows.rows, rows.ids, rows.content, rows.style, keys], schema=SCHEMA).take(order)
        for batch in table.to_batches(max_chunksize=BATCH):
            self._spill.write(part, batch)

    def close(self) -> Todo:
        self._spill.close()
        return self

    def __iter__(self) -> Iterator[WorkItem]:
        streams = [self._items(part) for part in range(self._spill.parts)]
        return heapq.merge(*streams, key=lambda item: (item.style, item.row)) if len(streams) > 1 else streams[0]

    def _items(self, part: int) -> Iterator[WorkItem]:
        for batch in self._spill.batches(part):
            columns = (batch.column(name).to_pylist() for name in SCHEMA.names)
            for row, item_id, content, style, key in zip(*columns):
                yield WorkItem(row, item_id, content, style, self.params, key)
