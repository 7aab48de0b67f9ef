"""Run summaries, `runs/<run_id>.json`: what a run did and how it ended.

Every run writes `running` first and ends with one of
    ok           every item ok or already done
    failed       some items failed, or the metadata could not be written (`metadata_error`)
    interrupted  SIGINT/SIGTERM: dispatch stopped, items in flight given `--grace` seconds
    crashed      the driver died; written by the driver when it can, else by the next run
    no_resources no worker could start within --wait-timeout (exit 2); what finished is kept
So a summary left `running` is a driver that is alive, or one the next run has not seen yet.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from batch_nst.engine import backend
from batch_nst.job import manifest, records
from batch_nst import storage
from batch_nst.errors import BatchNSTError

RUNNING, OK, FAILED, INTERRUPTED, CRASHED = "running", "ok", "failed", "interrupted", "crashed"
NO_RESOURCES = "no_resources"
SHOWN_FAILURES = 20


@dataclass
class Summary:
    """What a run did; written to runs/<run_id>.json and printed by the CLI."""

    run_id: str
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # already done
    invalid: int = 0
    not_finished: int = 0  # dispatched or planned, no record: interrupted (the next run does them)
    seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)  # first few: row/id/error
    interrupted_by: int | None = None  # the signal
    metadata_error: str | None = None  # why records stayed under metadata/_pending
    crash: str | None = None  # the exception that ended the driver
    no_resources: str | None = None  # why no worker could start (ResourcesError)
    pool: dict[str, Any] = field(default_factory=dict)  # workers requested, started, replaced, where each ran

    @property
    def status(self) -> str:
        if self.crash:
            return CRASHED
        if self.no_resources:
            return NO_RESOURCES
        if self.interrupted_by:
            return INTERRUPTED
        return FAILED if self.failed or self.invalid or self.metadata_error else OK

    @property
    def exit_code(self) -> int:
        """0 ok; 1 some items failed or the metadata was not written; 128 + the signal."""
        if self.interrupted_by:
            return 128 + self.interrupted_by
        return 1 if self.status != OK else 0

    def add(self, table: pa.Table, invalid: bool = False) -> None:
        """Count a chunk's records (a table of records.SCHEMA): per chunk, never per row in Python."""
        ok = pc.sum(pc.equal(table["status"], records.OK)).as_py() or 0
        self.ok += ok
        if invalid:
            self.invalid += table.num_rows - ok
        else:
            self.failed += table.num_rows - ok
        room = SHOWN_FAILURES - len(self.failures)
        if room > 0 and table.num_rows > ok:
            failed = table.filter(pc.not_equal(table["status"], records.OK)).slice(0, room)
            self.failures += failed.select(["id", "error"]).to_pylist()

    def to_json(self) -> dict[str, Any]:
        """The summary's own part of runs/<run_id>.json."""
        return {
            "run_id": self.run_id, "status": self.status,
            "counts": {"ok": self.ok, "failed": self.failed, "skipped": self.skipped, "invalid": self.invalid,
                       "not_finished": self.not_finished,
                       "total": self.ok + self.failed + self.skipped + self.invalid + self.not_finished},
            "seconds": round(self.seconds, 3), "failures": self.failures,
            "interrupted_by": signal.Signals(self.interrupted_by).name if self.interrupted_by else None,
            "metadata_error": self.metadata_error, "crash": self.crash, "no_resources": self.no_resources,
            "pool": self.pool,
        }


def start(root: str, run_id: str) -> None:
    """The `running` summary, replaced by the final one when the run ends."""
    records.write_summary(root, run_id, {"run_id": run_id, "status": RUNNING, "started_at": records.now()})


def finish(root: str, summary: Summary, details: dict[str, Any]) -> None:
    """Write the final summary; when even that fails, say so on stderr and in `metadata_error`
    (exit 1): the records stay under _pending for the next run."""
    try:
        records.write_summary(root, summary.run_id, {**summary.to_json(), **details, "versions": versions(),
                                                     "finished_at": records.now()})
    except BatchNSTError as err:
        summary.metadata_error = summary.metadata_error or f"the run summary could not be written: {err}"
        print(f"batch-nst: {summary.metadata_error}", file=sys.stderr)


def versions() -> dict[str, str]:
    from importlib.metadata import version

    from batch_nst import __version__  # ours even when run from a source tree, not installed

    return {"batch-nst": __version__, "algorithm": manifest.ALGORITHM_VERSION, "python": sys.version.split()[0],
            **backend.versions(), **{pkg: version(pkg) for pkg in ("ray", "fsspec", "pyarrow")}}


def mark_crashed(root: str, run_id: str, noticed_by: str) -> None:
    """A run whose driver died left its summary `running`: say `crashed`, and who noticed."""
    summary = read(root, run_id)
    if summary.get("status") == RUNNING:
        records.write_summary(root, run_id, {**summary, "status": CRASHED, "crash": "the driver died",
                                             "noticed_by": noticed_by, "noticed_at": records.now()})


def recovered(root: str, counts: dict[str, int], noticed_by: str) -> list[str]:
    """A line per earlier run whose pending records this run gathered, saying why they were pending."""
    lines = []
    for run_id, count in sorted(counts.items()):
        mark_crashed(root, run_id, noticed_by)  # pending records and `running`: its driver died
        summary = read(root, run_id)
        status = summary.get("status")
        why = {CRASHED: "its driver died", INTERRUPTED: "it was interrupted before gathering them"}.get(
            status, f"it could not write its metadata ({summary.get('metadata_error')})"
            if summary.get("metadata_error") else f"its summary says {status or 'nothing (missing)'}")
        lines.append(f"gathered {count} record(s) left pending by run {run_id}: {why}")
    return lines


def read(root: str, run_id: str) -> dict[str, Any]:
    """runs/<run_id>.json, or {} when missing or unreadable."""
    import json

    try:
        return json.loads(storage.read_bytes(storage.join(root, "runs", f"{run_id}.json")))
    except (BatchNSTError, ValueError):
        return {}
