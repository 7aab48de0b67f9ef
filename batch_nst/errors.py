"""The errors batch-nst raises, each naming the file, row or URI it concerns.

    BatchNSTError        base class; the CLI turns it into a message and an exit code
    +-- ParamsError      a parameter out of range (CLI flag or manifest cell)
    +-- WeightsError     VGG19 weights missing, unreachable, corrupt or wrongly shaped
    +-- ImageError       an input that is not a usable image (missing, broken, too large)
    +-- StorageError     a URI that cannot be read, listed or written
    +-- ManifestError    a manifest that is not a valid table of work
    +-- LockedError      another live run holds the output root
    +-- ResourcesError   the workers' resources never came (the cluster did not have or add them)
    +-- DivergedError    an item's loss or gradient became inf or NaN (weights too large for float32)

They are raised where the problem is found and caught only at the edges: the CLI (exit code 2)
and a work item's record (status `failed`, the message as its `error`). A DivergedError concerns
one item, never the run: `stylize` exits 1 on it, as a run does for its failed rows.
"""

from __future__ import annotations


class BatchNSTError(Exception):
    """Base of every error batch-nst raises on purpose."""


class ParamsError(BatchNSTError, ValueError):
    """A parameter value is out of its range or of the wrong type."""


class WeightsError(BatchNSTError):
    """The VGG19 weights cannot be had or do not fit the network."""


class ImageError(BatchNSTError):
    """An input cannot be decoded into pixels, or is refused (too large, not an image)."""


class StorageError(BatchNSTError):
    """A URI cannot be read, listed or written."""


class ManifestError(BatchNSTError):
    """The manifest cannot be read or fails validation; no work is done."""


class LockedError(BatchNSTError):
    """Another live run holds the output root's lease; nothing was run."""


class ResourcesError(BatchNSTError):
    """No worker could start: the resources it asks for do not exist and never came."""


class DivergedError(BatchNSTError):
    """An item's optimization reached an inf or NaN loss or pixel: its image would be meaningless."""
