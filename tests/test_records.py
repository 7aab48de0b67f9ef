"""The metadata contract: schema, atomic parts readable as one dataset, ok keys, summaries."""

import dataclasses
import json
import os
import subprocess
import sys

import fsspec
import pytest

from batch_nst.job import records
from batch_nst.params import TERMS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rec(i, status="ok", key=None):
    return records.record(id=f"item{i}", key=key or f"k{i}", status=status, loss_history=[3.0, 2.0],
                          total_loss=1.5, steps=2, run_id="r1", finished_at=records.now())


def test_record_has_every_column_and_refuses_unknown_ones():
    rec = _rec(1)
    assert isinstance(rec, records.Record) and rec.status == "ok" and rec.error is None
    with pytest.raises(TypeError, match="not metadata columns"):
        records.record(id="x", losses=1)
    with pytest.raises(TypeError, match=r"not metadata columns: \['losses'\]"):
        records.Record.from_row({"id": "x", "losses": 1})


def test_the_record_and_the_parquet_schema_are_one_list_of_columns():
    """Record's fields are the schema's columns, in order, each annotated with the Python type
    its Parquet type reads back as: a column added to one and not the other fails here."""
    import typing
    from datetime import datetime

    import pyarrow as pa

    reads_as = {pa.string(): str, pa.float64(): float, pa.int32(): int, pa.list_(pa.float32()): list[float],
                pa.list_(pa.string()): list[str], pa.timestamp("ms", tz="UTC"): datetime}
    hints = typing.get_type_hints(records.Record)
    assert [f.name for f in dataclasses.fields(records.Record)] == records.SCHEMA.names == [c[0] for c in records.COLUMNS]
    for column in records.SCHEMA:
        assert hints[column.name] == reads_as[column.type] | None, column
    assert [n for n in records.SCHEMA.names if n.endswith("_loss")] == [f"{t}_loss" for t in TERMS]
    assert records.table([]).schema.equals(records.SCHEMA)


def test_records_round_trip_through_arrow_and_older_rows_read_missing_columns_as_none():
    from datetime import datetime, timezone

    import pyarrow as pa

    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc)  # milliseconds: what the files keep
    recs = [dataclasses.replace(_rec(1), accelerators=["0"], speckle=1.25, frames=3, finished_at=at),
            dataclasses.replace(_rec(2, status="failed"), finished_at=at)]
    table = records.table(recs)
    assert table.schema.equals(records.SCHEMA) and records.from_table(table) == recs
    as_rows = pa.Table.from_pylist([dataclasses.asdict(r) for r in recs], schema=records.SCHEMA)
    assert records.parquet(table) == records.parquet(as_rows)  # the bytes of the rows of dicts made before
    old = records.Record.from_row({"id": "x", "status": "ok", "total_loss": 2.0})  # a file before most columns
    assert (old.speckle, old.frames, old.loss("total"), old.loss("tv")) == (None, None, 2.0, None)
    assert records.from_table(table.select(["id", "status"]))[1] == records.Record(id="item2", status="failed")


def test_a_value_of_the_wrong_type_is_refused_naming_its_column_also_under_python_dash_o():
    """The check is code, not an `assert`: `python -O` keeps it."""
    with pytest.raises(TypeError, match="^metadata column steps must be Integral, got '2'$"):
        records.record(id="x", steps="2")
    with pytest.raises(dataclasses.FrozenInstanceError):
        records.Record(id="x").status = "ok"
    code = ("from batch_nst.job import records\n"
            "try:\n    records.record(id='x', total_loss='1.5')\nexcept TypeError as err:\n    print(err)")
    done = subprocess.run([sys.executable, "-O", "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.stdout.strip() == "metadata column total_loss must be Real, got '1.5'", done.stderr[-2000:]


def test_current_ok_on_memory_root_and_empty_root():
    fsspec.filesystem("memory").store.clear()
    assert records.current_ok("memory://nothing-here") == {}
    records.write_part("memory://root", "part-r9-00000", [_rec(1), _rec(2, status="failed")])
    assert records.current_ok("memory://root") == {"item1": "k1"}


def test_summary_json_and_image_uri(tmp_path):
    uri = records.write_summary(str(tmp_path), "r1", {"counts": {"ok": 1}, "at": records.now()})
    assert json.loads(open(uri).read())["counts"] == {"ok": 1}
    assert records.image_uri("s3://b/out", "hero--ink") == "s3://b/out/images/hero--ink.png"


def test_each_of_several_styles_is_redacted_on_its_own():
    from batch_nst.job.manifest import WorkItem
    from batch_nst.params import StyleParams

    style = "https://h/a.png?X-Amz-Signature=abc;s3://b/s.png;https://u:pw@h/b.png"
    item = WorkItem(1, "a", "s3://b/c.png", style, StyleParams(), "k")
    rec = records.for_item(item, run_id="r", worker="w", weights="x")
    assert rec.style.count(";") == 2 and "abc" not in rec.style and "pw" not in rec.style
    assert rec.style.split(";")[1] == "s3://b/s.png"


def test_parts_written_before_a_column_existed_read_it_as_null(tmp_path):
    """An older run's part lacks `style_distance`: it still reads, the column null, beside new parts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = str(tmp_path / "out")
    old_schema = pa.schema([f for f in records.SCHEMA if f.name != "style_distance"])
    old = {k: v for k, v in dataclasses.asdict(_rec(1)).items() if k != "style_distance"}
    (tmp_path / "out" / "metadata").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([old], schema=old_schema), tmp_path / "out" / "metadata" / "part-r0-00000.parquet")
    records.write_part(root, "part-r1-00000", [dataclasses.replace(_rec(2), style_distance=0.5)])
    rows = {r["id"]: r for r in records.read(root).to_pylist()}
    assert rows["item1"]["style_distance"] is None and rows["item2"]["style_distance"] == 0.5
    assert records.current_ok(root) == {"item1": "k1", "item2": "k2"}


def test_a_part_removes_the_images_its_records_make_stale(tmp_path):
    """A still that was an animation leaves no .gif beside its .png, a failed item no image: done
    a part at a time (bulk requests), not with a DELETE per item from the workers."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("hero.gif", "hero.png", "gone.png", "gone.webp", "kept.png"):
        (images / name).write_bytes(b"")
    records.write_part(str(tmp_path), "part-r1-00000", [
        records.record(id="hero", status="ok", output=str(images / "hero.png"), run_id="r1"),
        records.record(id="gone", status="failed", error="broken", run_id="r1")])
    assert sorted(p.name for p in images.iterdir()) == ["hero.png", "kept.png"]


def test_all_names_every_public_name_the_record_s_own_module_included():
    """records' `__all__` is its whole surface, Record and what makes one (schema.py) with it."""
    import types

    from batch_nst.job import schema

    public = {name for name, value in vars(records).items() if not name.startswith("_")
              and not isinstance(value, types.ModuleType) and (name.isupper() or getattr(value, "__module__", "") in (
                  records.__name__, schema.__name__))}
    assert public == set(records.__all__) and records.Record is schema.Record
