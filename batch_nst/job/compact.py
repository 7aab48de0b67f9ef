"""Compaction: the metadata's many small parts rewritten as few large files, the records unchanged.

A nightly run adds parts; a plan reads them all, so without this the small files grow night after
night. `compact` gathers every small file (a run's part, or a compacted file not yet full) into
`compacted-<stamp>-<n>.parquet` files of up to ROWS records each, sorted by id and time:

- **The records are exactly the same**: every record of every run is kept (history is never
  folded); compaction changes the files, never what they hold. The latest record of an id is
  unchanged, so is every older one.
- **Atomic for readers**: a compacted file names the files it replaces in its own footer, so the
  file and its claim appear together (one atomic write). A reader (`records.read`) skips the files
  a compacted file replaces; so before the write it reads the old files, after it the new one,
  never both and never neither. The replaced files are deleted after every new file is written.
  A compaction killed at any point leaves a root that reads whole; the next one finishes it.
- **Under the root's lease**: no run writes parts meanwhile (`batch-nst compact` takes it; a run
  compacts at its own end, past THRESHOLD small live files).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from batch_nst import storage
from batch_nst.job import lease, records, runs

THRESHOLD = 32  # small live metadata files past which a run compacts at its end (a plan reads each one)
ROWS = 200_000  # records per compacted file (a file read whole stays within a few hundred MB)


@dataclass(frozen=True)
class Compacted:
    """What a compaction did: files read and written, records moved, leftovers deleted."""

    inputs: int
    outputs: int
    records: int
    deleted: int


def due(root: str) -> bool:
    """Whether the metadata has grown past THRESHOLD small live files: run parts, or compacted
    files under ROWS records (one listing, footers of the compacted files only). Full compacted
    files do not count: compaction would leave them as they are, and a 10 M-record library holds
    50 of them."""
    return _Inventory.of(root).due()


def under_lease(root: str) -> Compacted:
    """`batch-nst compact`: compaction holding the root's lease, so no run writes parts meanwhile
    (LockedError, exit 2, while one does). A dead run's stale lease is taken over and its summary
    marked `crashed`, as a run would."""
    with lease.hold(root, f"compact-{_stamp()}") as dead_run:
        if dead_run:
            runs.mark_crashed(root, dead_run, "batch-nst compact")
        return compact(root)


def compact_if_due(root: str) -> Compacted | None:
    """What a run does at its end, under its lease: compaction once past THRESHOLD small live files
    (the metadata listed and its footers read once, for the check and the compaction both)."""
    files = _Inventory.of(root)
    return compact(root, files) if files.due() else None


def compact(root: str, files: _Inventory | None = None) -> Compacted:
    """Rewrite the small metadata files into compacted ones, then delete what they replace.
    Call while holding the root's lease (`files`: its metadata as just listed, else listed here)."""
    files = files or _Inventory.of(root)
    listed, footers, claimed, small = files.listed, files.footers, files.claimed, files.small
    names = {records.name_of(uri) for uri in listed}
    stamp = _stamp()
    outputs, moved = [], 0
    if len(small) > 1:
        for group in _groups(small):
            # The claim: the group's files and, still listed, what the compacted ones among them
            # replaced: deleting those must not bring back what they had replaced.
            claim = {records.name_of(uri) for uri in group} | {
                name for uri in group if uri in footers for name in records.replaces(footers[uri]) if name in names}
            table = pa.concat_tables([_read(uri) for uri in group]).sort_by([("id", "ascending"),
                                                                              ("finished_at", "ascending")])
            outputs.append(_write(root, f"{records.COMPACTED}{stamp}-{len(outputs):05d}", table, sorted(claim)))
            moved += table.num_rows
    covered = claimed | {records.name_of(uri) for uri in small} if outputs else claimed
    gone = [uri for uri in listed if records.name_of(uri) in covered]
    storage.remove(gone)
    return Compacted(inputs=len(small) if outputs else 0, outputs=len(outputs), records=moved, deleted=len(gone))


@dataclass(frozen=True)
class _Inventory:
    """The metadata files as compaction sees them, from one listing and the compacted files' footers."""

    listed: list[str]
    footers: dict[str, pq.FileMetaData]  # of the compacted files
    claimed: set[str]  # names the compacted files replace
    small: list[str]  # live files compaction would merge: parts, and compacted files under ROWS

    @classmethod
    def of(cls, root: str) -> _Inventory:
        listed = storage.glob(storage.join(records.metadata_dir(root), "*.parquet"))
        footers = {uri: records.footer(uri) for uri in listed if records.name_of(uri).startswith(records.COMPACTED)}
        claimed = {name for meta in footers.values() for name in records.replaces(meta)}
        small = [uri for uri in listed if records.name_of(uri) not in claimed
                 and (uri not in footers or footers[uri].num_rows < ROWS)]
        return cls(listed, footers, claimed, small)

    def due(self) -> bool:
        """Past THRESHOLD small live files (see `due`)."""
        return len(self.small) > THRESHOLD


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _groups(files: list[str]):
    """Consecutive files whose records add up to about ROWS each (from their footers)."""
    group, rows = [], 0
    for uri in files:
        count = records.footer(uri).num_rows
        if group and rows + count > ROWS:
            yield group
            group, rows = [], 0
        group.append(uri)
        rows += count
    if group:
        yield group


def _read(uri: str) -> pa.Table:
    """One metadata file's records in today's SCHEMA (an older part lacks newer columns: null)."""
    return records.read_files([uri], records.SCHEMA.names)


def _write(root: str, name: str, table: pa.Table, claim: list[str]) -> str:
    uri = storage.join(records.metadata_dir(root), f"{name}.parquet")
    storage.write_bytes(uri, records.parquet(table, {records.REPLACES: json.dumps(claim)}))
    return uri
