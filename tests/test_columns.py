"""The plain manifest planned in columns: the same plan as row by row, or None to go row by row."""

import pytest

from batch_nst.errors import ManifestError
from batch_nst.job import columns, driver, manifest, records
from batch_nst.params import StyleParams


@pytest.fixture
def library(tmp_path):
    for name in ("a.png", "b.png", "sub/c.png", "s1.png", "s2.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    return tmp_path


def _write(library, rows, header="id,content,style"):
    (library / "m.csv").write_text(header + "\n" + "".join(row + "\n" for row in rows))
    return str(library / "m.csv")


ROWS = ["x3,b.png,s2.png", "x1,a.png,s1.png", "x2,sub/c.png,s1.png", "x4,{abs},s2.png", "gone,nope.png,s1.png",
        "x5,file://{lib}/a.png,s2.png"]


def _config(library, **extra):
    return driver.JobConfig(manifest=str(library / "m.csv"), output_root=str(library / "out"), weights="w",
                            params=StyleParams(steps=3), **extra)


def _same(a, b):
    assert [(i.row, i.id, i.content, i.style, i.key, i.params) for i in a.todo] == \
        [(i.row, i.id, i.content, i.style, i.key, i.params) for i in b.todo]
    assert (a.done, a.steps) == (b.done, b.steps)
    assert [(i.row, i.id, why) for i, why in a.invalid] == [(i.row, i.id, why) for i, why in b.invalid]


def test_a_plain_manifest_plans_as_row_by_row_keys_included(library):
    _write(library, [r.format(abs=library / "a.png", lib=library) for r in ROWS])
    config = _config(library)
    cols = columns.read(config.manifest, config.params)
    assert cols is not None and len(cols) == 6
    rows = manifest.load(config.manifest, config.params)
    fast, slow = driver.plan(config, cols, "w"), driver.plan(config, rows, "w")
    _same(fast, slow)
    assert [i.id for i in fast.todo] == ["x1", "x2", "x3", "x4", "x5"] and "nope.png" in fast.invalid[0][1]
    # x1 and x3 done (their images there), x2 ok but its image gone, x4's record an older key
    done = {i.id: i.key for i in fast.todo}
    records.write_part(config.output_root, "part-r1-00000", [
        records.record(id=i, key=done[i] if i != "x4" else "old", status="ok", run_id="r1", finished_at=records.now())
        for i in ("x1", "x2", "x3", "x4")])
    (library / "out" / "images").mkdir()
    for i in ("x1", "x3", "x4"):
        (library / "out" / "images" / f"{i}.png").write_bytes(b"")
    fast, slow = driver.plan(config, cols, "w"), driver.plan(config, rows, "w")
    _same(fast, slow)
    assert fast.done == 2 and [i.id for i in fast.todo] == ["x2", "x4", "x5"]  # x1 and x3 done
    _same(driver.plan(_config(library, force=True), cols, "w"), driver.plan(_config(library, force=True), rows, "w"))


@pytest.mark.parametrize("header, row", [
    ("id,content,style,steps", "x,a.png,s1.png,5"),  # per-row overrides
    ("content,style", "a.png,s1.png"),  # derived ids
    ("id,content,style", "x,../a.png,s1.png"),  # a segment to normalize
    ("id,content,style", "x,a.png,s1.png;s2.png"),  # several styles
    ("id,content,style", "x,a b.png,s1.png"),  # a space (JSON writes it as is, but resolve strips cells)
    ("id,content,style", "x,é.png,s1.png"),  # not ASCII: JSON escapes it
    ("id,content,style", "-x,a.png,s1.png"),  # an id refused row by row, naming the row
    ("id,content,style", "x,,s1.png"),  # an empty cell
])
def test_anything_else_goes_row_by_row(library, header, row):
    assert columns.read(_write(library, [row], header), StyleParams()) is None


def test_duplicate_ids_are_refused_naming_their_rows_and_json_lines_go_row_by_row(library):
    with pytest.raises(ManifestError, match=r"1 problem\(s\):\n  row 2: duplicate id 'x' \(first used in row 1\)$"):
        columns.read(_write(library, ["x,a.png,s1.png", "x,b.png,s1.png"]), StyleParams())
    assert columns.read(str(library / "m.csv"), StyleParams(), skip_invalid=True) is None  # kept, row by row
    (library / "m.jsonl").write_text('{"id": "x", "content": "a.png", "style": "s1.png"}\n')
    assert columns.read(str(library / "m.jsonl"), StyleParams()) is None
