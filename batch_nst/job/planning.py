"""Planning: what a run does, decided from the manifest, listings and fingerprints alone.

An item is done when its id's latest record is `ok` with the item's key and its image is still
there; invalid when an input is missing or its row is bad (kept by --skip-invalid); else to do,
in dispatch order: grouped by style, so each worker computes a style's Grams once. A plain
manifest is planned partition by partition and its items to do streamed from disk (partitions.py):
memory bounded by a partition; any other is planned row by row, bounded by its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch_nst import storage, weights
from batch_nst.errors import BatchNSTError
from batch_nst.job import columns, manifest, partitions, records
from batch_nst.job.columns import Plain
from batch_nst.job.manifest import WorkItem
from batch_nst.job.todo import Todo

if TYPE_CHECKING:
    from batch_nst.job.driver import JobConfig


@dataclass(frozen=True)
class Plan:
    """What a run does: counts and the invalid rows at once, the items to do as a sized stream
    (a plain manifest's are on disk: a list of millions would not fit the driver)."""

    todo: list[WorkItem] | Todo  # in dispatch order (grouped by style); a Todo streams from disk
    done: int  # items whose id has an `ok` record of the same key, and the image it wrote
    invalid: list[tuple[WorkItem, str]]  # inputs missing at planning time (or rows --skip-invalid kept), why
    weights_identity: str
    steps: int  # estimated work: optimization steps over the items to do


def load(config: JobConfig, part_rows: int = columns.PART_ROWS) -> list[WorkItem] | Plain:
    """The manifest validated: plain, in partitions of about `part_rows` rows (columns.py), else
    row by row, as items (or one ManifestError naming every bad row)."""
    return columns.read(config.manifest, config.params, config.skip_invalid, part_rows) or manifest.load(
        config.manifest, config.params, config.skip_invalid)


def plan(config: JobConfig, rows: list[WorkItem] | Plain | None = None, weights_id: str | None = None) -> Plan:
    """Decide what to do from listings and fingerprints alone, for the manifest's `rows` (read
    here unless given); `weights_id` saves hashing a weights file already resolved."""
    rows = load(config) if rows is None else rows
    weights_id = weights_id or weights.identity(config.weights)
    if isinstance(rows, Plain):
        prints, unreadable = _fingerprints(set(rows.uris))
        planned = partitions.plan(rows, config.output_root, config.force, prints, weights_id)
        invalid = [(item, _missing(item, prints, unreadable)) for item in planned.invalid]
        return Plan(planned.todo, planned.done, invalid, weights_id, len(planned.todo) * sum(rows.params.stages()))
    invalid = [(item, item.problem) for item in rows if item.problem]  # rows kept by --skip-invalid
    items = [item for item in rows if not item.problem]
    prints, unreadable = _fingerprints({u for item in items for u in (item.content, *item.styles)})
    current = {} if config.force else records.current_ok(config.output_root)
    stored = records.stored_ids(config.output_root) if current else set()
    todo, done = [], 0
    for item in items:
        if not all(u in prints for u in (item.content, *item.styles)):
            invalid.append((item, _missing(item, prints, unreadable)))
            continue
        item = item.keyed(prints[item.content], ";".join(prints[u] for u in item.styles), weights_id)
        if current.get(item.id) == item.key and item.id in stored:
            done += 1
        else:
            todo.append(item)
    todo.sort(key=lambda item: (item.style, item.params.max_size, item.row))
    return Plan(todo, done, invalid, weights_id, sum(sum(item.params.stages()) for item in todo))


def _missing(item: WorkItem, prints: dict[str, str], unreadable: dict[str, str]) -> str:
    """Why an item's inputs cannot be read: each missing one named, or its storage's error."""
    return "; ".join(unreadable.get(u) or f"no such file: {storage.redact(u)}"
                     for u in (item.content, *item.styles) if u not in prints)


def _fingerprints(uris: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Fingerprints per URI, listed scheme by scheme, and the error for URIs whose storage could
    not be listed at all (a scheme nobody installed, a bucket that refuses): those rows fail alone."""
    by_scheme: dict[str, set[str]] = {}
    for uri in uris:
        by_scheme.setdefault(uri.split("://", 1)[0] if "://" in uri else "", set()).add(uri)
    prints, errors = {}, {}
    for group in by_scheme.values():
        try:
            prints.update(storage.fingerprints(group))
        except BatchNSTError as err:
            errors.update(dict.fromkeys(group, str(err)))
    return prints, errors
