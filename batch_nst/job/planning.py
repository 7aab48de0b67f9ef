"""Planning: what a run does, decided from the manifest, listings and fingerprints alone.

An item is done when its id's latest record is `ok` with the item's key and its image is still
there; invalid when an input is missing or its row is bad (kept by --skip-invalid); else to do,
in dispatch order: grouped by style, so each worker computes a style's Grams once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch_nst import storage, weights
from batch_nst.errors import BatchNSTError
from batch_nst.job import manifest, records
from batch_nst.job.manifest import WorkItem

if TYPE_CHECKING:
    from batch_nst.job.driver import JobConfig


@dataclass(frozen=True)
class Plan:
    todo: list[WorkItem]  # in dispatch order: grouped by style
    done: list[WorkItem]  # an `ok` record with the same key exists, and the image it wrote
    invalid: list[tuple[WorkItem, str]]  # inputs missing at planning time (or rows --skip-invalid kept), why
    weights_identity: str

    @property
    def steps(self) -> int:
        """Estimated work: optimization steps over the items to do."""
        return sum(sum(item.params.stages()) for item in self.todo)


def plan(config: JobConfig, items: list[WorkItem] | None = None, weights_id: str | None = None) -> Plan:
    """Validate the manifest (unless its `items` are given) and decide what to do from listings
    and fingerprints alone; `weights_id` saves hashing a weights file already resolved."""
    items = manifest.load(config.manifest, config.params, config.skip_invalid) if items is None else items
    weights_id = weights_id or weights.identity(config.weights)
    invalid = [(item, item.problem) for item in items if item.problem]  # rows kept by --skip-invalid
    items = [item for item in items if not item.problem]
    prints, unreadable = _fingerprints({u for item in items for u in (item.content, *item.styles)})
    current = {} if config.force else records.current_ok(config.output_root)
    stored = records.stored_ids(config.output_root) if current else set()
    todo, done = [], []
    for item in items:
        missing = [u for u in (item.content, *item.styles) if u not in prints]
        if missing:
            invalid.append((item, "; ".join(unreadable.get(u) or f"no such file: {storage.redact(u)}" for u in missing)))
            continue
        item = item.keyed(prints[item.content], ";".join(prints[u] for u in item.styles), weights_id)
        (done if current.get(item.id) == item.key and item.id in stored else todo).append(item)
    todo.sort(key=lambda item: (item.style, item.params.max_size, item.row))
    return Plan(todo, done, invalid, weights_id)


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
