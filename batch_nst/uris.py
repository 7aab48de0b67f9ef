"""URIs as text: resolved, joined, split and redacted, without touching storage (no fsspec).

A URI is "scheme://rest" or a plain local path; a manifest names assets relative to its own
folder, so relative ones are resolved against a base. Credentials (user:password@, secret query
values) never leave in a message: `redact` and `scrub` replace them with ***. batch_nst.storage
re-exports resolve, parent, join and redact: callers use them as `storage.join`.
"""

from __future__ import annotations

import os
import posixpath
import re

from batch_nst.errors import StorageError

_PREFIX = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# user:password@ may hold a '/' (AWS secrets do), so a ':' before the first '/' marks credentials.
_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/@?#]*@|[^/@:?#]*:[^@]*?@)")
_SECRET_PARAM = re.compile(r"(?i)([?&][^=&#]*(?:token|sig|key|secret|password|credential)[^=&#]*=)([^&#]*)")


def is_uri(text: str) -> bool:
    """Whether `text` names a scheme ("s3://b/x"); else it is a local path (its '::' a legal name)."""
    return _PREFIX.match(text) is not None


def split(uri: str) -> tuple[str, str]:
    """("scheme://", rest) for a URI, ("", uri) for a plain local path."""
    match = _PREFIX.match(uri)
    return (match.group(0), uri[match.end():]) if match else ("", uri)


def resolve(uri: str, base: str | None = None) -> str:
    """An absolute URI; a relative one is taken against `base` (a folder; default the cwd),
    as manifests name assets relative to their own folder."""
    if is_uri(uri):
        return uri
    if os.path.isabs(uri):
        return os.path.abspath(uri)
    prefix, rest = split(base if base is not None else os.getcwd())
    if not prefix:
        return os.path.abspath(os.path.join(rest, uri))
    joined = posixpath.normpath(posixpath.join(rest, uri))
    if joined == ".." or joined.startswith("../"):
        raise StorageError(f"{uri} climbs above the root of {redact(base)}")
    return prefix + joined


def parent(uri: str) -> str:
    """The folder holding `uri`, scheme kept: "s3://b/x/m.csv" -> "s3://b/x"."""
    prefix, rest = split(uri)
    if not prefix:
        return os.path.dirname(os.path.abspath(rest))
    return prefix + posixpath.dirname(rest.rstrip("/"))


def join(base: str, *parts: str) -> str:
    """A folder URI with relative parts appended, with '/' for URIs and os.path for local paths."""
    prefix, rest = split(base)
    return prefix + posixpath.join(rest, *parts) if prefix else os.path.join(rest, *parts)


def redact(uri: str) -> str:
    """`uri` with user:password@ and secret query values replaced by ***, fit for any message."""
    return _SECRET_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", uri))


def scrub(text: str, uri: str) -> str:
    """`text` with the URI's secrets removed: backends quote paths, credentials included."""
    secrets = [value for _, value in _SECRET_PARAM.findall(uri)]
    match = _USERINFO.match(uri)
    if match:
        userinfo = match.group(2)[:-1]
        secrets += [userinfo, *userinfo.split(":")]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
