"""Item ids: the file names of outputs (`images/<id>.<ext>`), derived from paths where a manifest
gives none.

A derived id is readable where it can be: "chars/hero.png" with style "ink.jpg" -> "chars__hero--ink".
It gets a short hash of the full relative paths ("héro--ink-3fa2b1c4d5") where the readable part
would lose information: characters an id may not hold, or a length over MAX_LENGTH; those ids
never depend on other files. Where two rows' readable parts still collide (crate.png and
crate.tga, a/b.png and a__b.png, or a derived id equal to one a user wrote), the colliding
derived ids get the hash too. So ids are unique, bounded, stable from night to night for the same
library, and `manifest` and `run` derive them the same way (`derive_all`).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections import Counter
from typing import Iterable, Sequence

from batch_nst import storage

# What a user-written id may be: a file name on every filesystem we write to, under any root.
PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")
MAX_LENGTH = 120  # derived ids: images/<id>.<ext> and its temporary names stay far below NAME_MAX
HASH_LENGTH = 10  # hex digits: 40 bits, collisions in a library of millions stay improbable
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def derive_all(pairs: Sequence[tuple[str, str]], base: str, taken: Iterable[str] = ()) -> list[str]:
    """Ids for (content URI, style URIs joined by ';') pairs, relative to the folder `base`,
    unique among themselves and distinct from the `taken` (user-written) ids."""
    readable = [_readable(content, style, base) for content, style in pairs]
    counts = Counter(text for text, exact in readable if exact)
    counts.update(set(taken))
    return [text if exact and counts[text] == 1 else _hashed(text, content, style, base)
            for (text, exact), (content, style) in zip(readable, pairs)]


def _readable(content: str, style: str, base: str) -> tuple[str, bool]:
    """("<content path without extension, '/' as '__'>--<style names joined by '+'>", exact):
    not exact when characters had to be replaced or the length cut."""
    rel = _relative(content, base)
    stem = posixpath.splitext(posixpath.basename(rel) if "://" in rel or rel.startswith("/") else rel)[0]
    parts = [stem.replace("/", "__"), *(posixpath.splitext(posixpath.basename(s))[0] for s in style.split(";"))]
    safe = [_UNSAFE.sub("_", part) for part in parts]
    text = safe[0] + "--" + "+".join(safe[1:])  # '+' joins blended styles: legal in any file name
    hidden = text[:1] in (".", "-")  # a hidden file, or one a command line takes for a flag
    if hidden:
        text = "_" + text[1:]
    exact = safe == parts and not hidden and len(text) <= MAX_LENGTH
    return text[:MAX_LENGTH], exact


def _hashed(text: str, content: str, style: str, base: str) -> str:
    """The readable part, cut to fit, then '-' and a hash of the full relative paths."""
    paths = [_relative(content, base), *(_relative(s, base) for s in style.split(";"))]
    digest = hashlib.sha256(json.dumps(paths).encode()).hexdigest()[:HASH_LENGTH]
    return f"{text[:MAX_LENGTH - HASH_LENGTH - 1]}-{digest}"


def _relative(uri: str, base: str) -> str:
    """`uri` relative to `base` when under it (a library that moves keeps its ids), else the
    whole URI without credentials."""
    folder = base if base.endswith("/") else base + "/"
    return uri[len(folder):] if uri.startswith(folder) else storage.redact(uri)
