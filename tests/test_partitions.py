"""The streaming plan: a plain manifest in several partitions plans exactly as in one."""

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from batch_nst.errors import ManifestError
from batch_nst.job import chunking, columns, driver, manifest, pending, planning, records, spill
from batch_nst.params import StyleParams

ROWS = 300


@pytest.fixture
def library(tmp_path):
    for name in [f"a{i}.png" for i in range(7)] + ["s0.png", "s1.png", "s2.png"]:
        (tmp_path / name).write_bytes(name.encode())
    lines = [f"x{i:04d},{'gone.png' if i % 37 == 5 else f'a{i % 7}.png'},s{i % 3}.png" for i in range(ROWS)]
    (tmp_path / "m.csv").write_text("id,content,style\n" + "\n".join(lines[::-1]) + "\n")  # rows not in id order
    return tmp_path


def _config(library, **extra):
    return driver.JobConfig(manifest=str(library / "m.csv"), output_root=str(library / "out"), weights="w",
                            params=StyleParams(steps=3), **extra)


def _plan(config, part_rows):
    rows = planning.load(config, part_rows)
    return rows, planning.plan(config, rows, "w")


def _seen(the_plan):
    """Everything a plan says, in its order."""
    return ([(i.row, i.id, i.content, i.style, i.key, i.params) for i in the_plan.todo], the_plan.done,
            [(i.row, i.id, why) for i, why in the_plan.invalid], the_plan.steps)


def test_several_partitions_plan_exactly_as_one(library):
    config = _config(library)
    one, whole = _plan(config, 10 ** 6)
    many, split = _plan(config, 40)
    assert one.parts.parts == 1 and many.parts.parts > 4  # a few hundred rows forced into several
    assert _seen(whole) == _seen(split)
    todo = list(whole.todo)
    gone = len(range(5, ROWS, 37))
    assert len(todo) == len(whole.todo) == ROWS - gone and len(whole.invalid) == gone
    assert [(i.style, i.row) for i in todo] == sorted((i.style, i.row) for i in todo)  # grouped by style
    # records over several runs: ok with the key (image kept or deleted), ok with an old key,
    # a later failure after an ok, an earlier ok after a later one of another key
    now = records.now()
    later = now.replace(year=now.year + 1)
    keys = {i.id: i.key for i in todo}
    ok = [records.record(id=i, key=k, status="ok", run_id="r1", finished_at=now) for i, k in keys.items()]
    records.write_part(config.output_root, "part-r1-00000", ok)
    records.write_part(config.output_root, "part-r2-00000", [
        records.record(id=i, key="old" if n % 3 else keys[i], status="ok" if n % 2 else "failed", run_id="r2",
                       finished_at=later if n % 4 else now) for n, i in enumerate(list(keys)[:60])])
    first = list(keys)[61]  # done but for a pending record (a dead driver's chunk) of another key, read last
    pending.write_chunk(config.output_root, "r3", [records.record(id=first, key="other", status="ok", run_id="r3",
                                                                  finished_at=later)])
    images = library / "out" / "images"
    images.mkdir()
    for n, i in enumerate(keys):
        if n % 11:
            (images / f"{i}.png").write_bytes(b"")
    whole, split = planning.plan(config, one, "w"), planning.plan(config, many, "w")
    assert _seen(whole) == _seen(split) == _seen(planning.plan(config, manifest.load(config.manifest, config.params),
                                                               "w"))
    assert 0 < whole.done < len(todo) and whole.done + len(whole.todo) == len(todo)
    assert first in {i.id for i in whole.todo}
    forced = _config(library, force=True)
    assert _seen(planning.plan(forced, one, "w")) == _seen(planning.plan(forced, many, "w"))
    assert planning.plan(forced, many, "w").done == 0


def test_the_plan_matches_row_by_row(library):
    config = _config(library)
    many, split = _plan(config, 40)
    assert _seen(split) == _seen(planning.plan(config, manifest.load(config.manifest, config.params), "w"))


def test_a_parquet_manifest_streams_as_its_csv(library):
    config = _config(library)
    parquet = driver.JobConfig(manifest=str(library / "m.parquet"), output_root=config.output_root, weights="w",
                               params=config.params)
    manifest.write(pacsv.read_csv(library / "m.csv"), parquet.manifest)
    rows, the_plan = _plan(parquet, 40)
    assert rows.parts.parts == -(-ROWS // 40) and _seen(the_plan) == _seen(_plan(config, 40)[1])


def test_the_todo_stream_yields_every_item_once_each_time_it_is_read(library):
    _, the_plan = _plan(_config(library), 25)
    first, second = list(the_plan.todo), list(the_plan.todo)
    assert first == second and len({i.id for i in first}) == len(first) == len(the_plan.todo)
    chunks = list(chunking.Chunker(len(the_plan.todo), 16, 3).chunks(the_plan.todo))
    assert [i for chunk in chunks for i in chunk] == first and len(chunks) % 3 == 0


def test_duplicate_ids_in_different_partitions_are_named_as_row_by_row(library):
    text = (library / "m.csv").read_text().splitlines()
    text += ["x0003,a1.png,s1.png", "x0100,a1.png,s1.png", "x0100,a2.png,s1.png"]  # rows ROWS + 1 to ROWS + 3
    (library / "m.csv").write_text("\n".join(text) + "\n")
    assert all(len(set(spill.partition_of(pa.array(["x0003", "x0100"]), parts))) == 2 for parts in range(3, 11))
    config = _config(library)
    with pytest.raises(ManifestError) as streamed:
        planning.load(config, part_rows=40)
    with pytest.raises(ManifestError) as by_rows:
        manifest.load(config.manifest, config.params)
    assert str(streamed.value) == str(by_rows.value)
    assert str(streamed.value).endswith(f"3 problem(s):\n  row {ROWS + 1}: duplicate id 'x0003' (first used in row "
                                        f"{ROWS - 3})\n  row {ROWS + 2}: duplicate id 'x0100' (first used in row "
                                        f"{ROWS - 100})\n  row {ROWS + 3}: duplicate id 'x0100' (first used in row "
                                        f"{ROWS - 100})")
    skipping = _config(library, skip_invalid=True)
    assert columns.read(skipping.manifest, skipping.params, True, part_rows=40) is None  # kept row by row
    assert [i.problem for i in planning.load(skipping, part_rows=40) if i.problem] == [
        f"row {ROWS + 1}: duplicate id 'x0003' (first used in row {ROWS - 3})",
        f"row {ROWS + 2}: duplicate id 'x0100' (first used in row {ROWS - 100})",
        f"row {ROWS + 3}: duplicate id 'x0100' (first used in row {ROWS - 100})"]


def test_an_id_falls_in_the_same_partition_however_it_is_batched():
    ids = pa.array([f"id{i}" for i in range(1000)] + ["", "é" * 50])
    whole = spill.partition_of(ids, 7)
    assert list(whole[10:20]) == list(spill.partition_of(ids.slice(10, 10), 7))
    assert list(whole) == list(spill.partition_of(pa.chunked_array([ids.slice(0, 3), ids.slice(3)]), 7))
    assert set(whole) == set(range(7)) and not spill.partition_of(ids, 1).any()


def test_a_killed_drivers_spill_files_are_removed_by_the_next_plan(tmp_path, monkeypatch):
    monkeypatch.setattr(spill.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f"batch-nst-plan-{dead.stdout.strip()}-abc").mkdir()
    (tmp_path / f"batch-nst-plan-{os.getpid()}-def").mkdir()  # a plan of a process still running
    workspace = spill.Workspace()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"batch-nst-plan-{os.getpid()}-def", os.path.basename(workspace.folder)])
    del workspace
    assert [p.name for p in tmp_path.iterdir()] == [f"batch-nst-plan-{os.getpid()}-def"]
