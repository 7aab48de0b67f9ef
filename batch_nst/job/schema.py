"""The metadata's one row: `Record`, whose fields are its columns, and the Arrow `SCHEMA` made from them.

A record is made where its values are known (a worker's item, the driver's refused rows) and
checked there: an unknown column or a value of the wrong type fails naming it. Records travel and
are written as Arrow tables of SCHEMA (`table`), and come back as Records (`from_table`) only where
code goes through them one by one (the report). The files themselves: records.py.
"""

from __future__ import annotations

import dataclasses
import numbers
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import pyarrow as pa

from batch_nst import storage
from batch_nst.params import TERMS


def _column(arrow: pa.DataType, kind: type) -> Any:
    """A metadata column: None unless set, its Parquet type, and the Python type Record accepts."""
    return dataclasses.field(default=None, metadata={"arrow": arrow, "kind": kind})


def _text() -> Any:
    return _column(pa.string(), str)


def _real() -> Any:
    return _column(pa.float64(), numbers.Real)


def _whole() -> Any:
    return _column(pa.int32(), numbers.Integral)


@dataclasses.dataclass(frozen=True)
class Record:
    """One metadata row, and the one list of the metadata's columns: `COLUMNS` and the Parquet
    `SCHEMA` are made from these fields, in this order, so the files and the object cannot drift.
    Every field None where unset; a value of the wrong type fails on construction, naming its
    column (code, not an `assert`: `python -O` keeps it)."""

    id: str | None = _text()
    key: str | None = _text()
    content: str | None = _text()
    style: str | None = _text()  # the style URIs, ";"-joined
    output: str | None = _text()
    status: str | None = _text()  # OK or FAILED
    error: str | None = _text()
    total_loss: float | None = _real()  # weighted: what the optimizer descends (params.TERMS)
    style_loss: float | None = _real()  # these unweighted
    content_loss: float | None = _real()
    tv_loss: float | None = _real()
    temporal_loss: float | None = _real()
    style_distance: float | None = _real()  # to the style at one reference size (distance.py); null before it
    speckle: float | None = _real()  # of the image: mean |pixel - 3x3 median| over opaque pixels (assets/quality.py)
    content_speckle: float | None = _real()  # the content's, what `speckle` is read against
    edges: float | None = _real()  # correlation of the image's edge strength with the content's (1 kept, 0 gone)
    loss_history: list[float] | None = _column(pa.list_(pa.float32()), list)  # a tuple passes too
    steps: int | None = _whole()
    frames: int | None = _whole()  # of the written image: 1 a still (a one-frame GIF too), more an animation
    height: int | None = _whole()  # of the written image (the content's own size)
    width: int | None = _whole()
    opt_height: int | None = _whole()  # size the optimization ran at
    opt_width: int | None = _whole()
    seconds: float | None = _real()  # the item in its worker: read, stylize, write
    optimize_seconds: float | None = _real()  # inside the optimization steps only
    params: str | None = _text()  # effective StyleParams, canonical JSON
    weights: str | None = _text()
    precision: str | None = _text()  # the network arithmetic that ran (params holds the request)
    backend: str | None = _text()  # the Keras backend that ran it (not part of the key)
    note: str | None = _text()  # e.g. "content: first frame of 12"
    worker: str | None = _text()
    node: str | None = _text()  # the Ray node id of the worker (None for the driver's records)
    accelerators: list[str] | None = _column(pa.list_(pa.string()), list)  # the GPU ids Ray gave the worker; empty on CPU
    run_id: str | None = _text()
    finished_at: datetime | None = _column(pa.timestamp("ms", tz="UTC"), datetime)

    def __post_init__(self) -> None:
        for name, kind, usual in _KINDS:
            value = getattr(self, name)
            if value is None or type(value) is usual:  # the common case, quickly (the report makes many)
                continue
            accepted = (list, tuple) if kind is list else kind
            if not isinstance(value, accepted) or isinstance(value, bool):
                raise TypeError(f"metadata column {name} must be {kind.__name__}, got {value!r}")

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Record:
        """A record from an Arrow row (`Table.to_pylist()`) or any mapping of columns: a column
        it lacks (a file written before the column existed, a read of a few columns) is None."""
        unknown = row.keys() - _NAMES
        if unknown:
            raise TypeError(f"not metadata columns: {sorted(unknown)}")
        return cls(**row)

    def loss(self, term: str) -> float | None:
        """The `<term>_loss` column of one of params.TERMS."""
        return getattr(self, f"{term}_loss")


# (name, Python type, Parquet type) of every column, in order; made from Record's fields.
COLUMNS = [(f.name, f.metadata["kind"], f.metadata["arrow"]) for f in dataclasses.fields(Record)]
SCHEMA = pa.schema([(name, arrow) for name, _, arrow in COLUMNS])
_USUAL = {numbers.Real: float, numbers.Integral: int}  # what Arrow reads back; other kinds are their own
_KINDS = [(name, kind, _USUAL.get(kind, kind)) for name, kind, _ in COLUMNS]
_NAMES = frozenset(SCHEMA.names)
if [name for name in SCHEMA.names if name.endswith("_loss")] != [f"{term}_loss" for term in TERMS]:
    raise TypeError(f"Record's loss columns must be those of params.TERMS, {TERMS}")  # a term added in one place only


def now() -> datetime:
    return datetime.now(timezone.utc)


def record(**fields: Any) -> Record:
    """`Record(**fields)`, an unknown column refused naming it (the dataclass would say only
    "unexpected keyword argument")."""
    return Record.from_row(fields)


def for_item(item, *, run_id: str, worker: str, weights: str, seconds: float = 0.0, **fields: Any) -> Record:
    """A record of a WorkItem (`batch_nst.job.manifest.WorkItem`): its identity plus `fields`."""
    return record(
        id=item.id, key=item.key, content=storage.redact(item.content), style=";".join(storage.redact(uri) for uri in item.styles),
        params=item.params.to_json(), weights=weights, worker=worker, run_id=run_id,
        finished_at=now(), seconds=seconds, **fields,
    )


def table(recs: Iterable[Record]) -> pa.Table:
    """Records as one Arrow table of SCHEMA: the form they travel and are written in."""
    recs = list(recs)
    return pa.table({name: [getattr(rec, name) for rec in recs] for name in SCHEMA.names}, schema=SCHEMA)


def from_table(records: pa.Table) -> list[Record]:
    """A table's rows as Records (for code that loops per record anyway: the report)."""
    return [Record.from_row(row) for row in records.to_pylist()]
