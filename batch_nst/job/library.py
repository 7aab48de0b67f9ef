"""A manifest made from a library's files (`batch-nst manifest GLOB --style ...`): every file the
glob matches once per style, with ids derived from paths, never the styles themselves nor the
files of an output root lying under the glob (earlier results, thumbnails)."""

from __future__ import annotations

import re
from typing import Iterable

import pyarrow as pa

from batch_nst import storage
from batch_nst.job import ids

OUTPUT_FOLDERS = ("images", "report", "checkpoints", "metadata", "runs")  # of an output root


def from_glob(pattern: str, styles: Iterable[str]) -> pa.Table:
    """A manifest table covering every file matching `pattern` once per style, except the styles
    themselves and the files of output roots under the pattern (earlier results, thumbnails)."""
    styles = [storage.resolve(s) for s in styles]
    root = _glob_root(storage.resolve(pattern))
    files = storage.glob(storage.resolve(pattern))
    skip = set(styles) | _outputs(files, root)
    pairs = [(content, style) for content in files if content not in skip for style in styles]
    return pa.table({"id": ids.derive_all(pairs, root), "content": [c for c, _ in pairs], "style": [s for _, s in pairs]},
                    schema=pa.schema([("id", pa.string()), ("content", pa.string()), ("style", pa.string())]))


def _outputs(files: list[str], root: str) -> set[str]:
    """The files lying in an output root's folders: an ancestor of such a folder holding `runs/`
    and `metadata/` is an output root (one check per candidate folder, not per file)."""
    roots: dict[str, bool] = {}
    found = set()
    for uri in files:
        parts = uri[len(root):].strip("/").split("/")[:-1]
        for depth, name in enumerate(parts):
            if name not in OUTPUT_FOLDERS:
                continue
            candidate = storage.join(root, *parts[:depth]) if depth else root
            if candidate not in roots:
                roots[candidate] = all(storage.exists(storage.join(candidate, d)) for d in ("runs", "metadata"))
            if roots[candidate]:
                found.add(uri)
                break
    return found


def _glob_root(pattern: str) -> str:
    """The folder above the first wildcard: ids are paths relative to it."""
    head = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    return head.rsplit("/", 1)[0] if "/" in head else head
