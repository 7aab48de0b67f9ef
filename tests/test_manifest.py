"""Manifest reading and validation, ids and keys (the glob-built manifest: tests/test_library.py)."""

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batch_nst.job import ids, library, manifest
from batch_nst.errors import ManifestError
from batch_nst.params import StyleParams


def _put(fs, path, text):
    with fs.open(path, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def test_csv_relative_uris_overrides_and_derived_ids(mem):
    _put(mem, "/lib/jobs/m.csv", "content,style,steps,id\nart/hero.png,../styles/ink.jpg,5,\nart/tree.png,s3://b/oil.png,,tree\n")
    items = manifest.load("memory://lib/jobs/m.csv", StyleParams(steps=7, max_size=64))
    assert [i.content for i in items] == ["memory://lib/jobs/art/hero.png", "memory://lib/jobs/art/tree.png"]
    assert items[0].style == "memory://lib/styles/ink.jpg" and items[1].style == "s3://b/oil.png"
    assert [i.params.steps for i in items] == [5, 7] and items[0].params.max_size == 64
    assert [i.id for i in items] == ["art__hero--ink", "tree"]
    assert [i.row for i in items] == [1, 2]


@pytest.mark.parametrize("ext", [".parquet", ".jsonl"])
def test_parquet_and_json_lines(mem, ext):
    rows = [{"content": "a.png", "style": "s.png", "tv_weight": 0.75}]
    if ext == ".parquet":
        import io

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        _put(mem, "/m" + ext, buf.getvalue())
    else:
        _put(mem, "/m" + ext, "".join(json.dumps(r) + "\n" for r in rows))
    (item,) = manifest.load("memory://m" + ext)
    assert item.params.tv_weight == 0.75 and item.content == "memory://a.png"


@pytest.mark.parametrize(
    "text, message",
    [
        ("style\nx.png\n", "missing column.*content"),
        ("content,style,stpes\na.png,s.png,3\n", r"unknown column.*stpes"),
        ("content,style\na.png,\n,s.png\n", r"row 1: style is empty.*\n.*row 2: content is empty"),
        ("content,style,steps\na.png,s.png,0\nb.png,s.png,x\n", r"row 1: steps must be >= 1.*\n.*row 2: steps must be int"),
        ("content,style,id\na.png,s.png,x\nb.png,s.png,x\n", r"row 2: duplicate id 'x' \(first used in row 1\)"),
        ("content,style,id\na.png,s.png,../up\n", r"row 1: id '../up' is not a safe file name"),
        ("content,style,id\na.png,s.png,a/b\n", r"row 1: id 'a/b' is not a safe file name"),
        ("content,style,id\na.png,s.png,/abs\n", r"row 1: id '/abs' is not a safe file name"),
        ("content,style,id\na.png,s.png,héros\n", r"row 1: id 'héros' is not a safe file name"),
    ],
)
def test_schema_problems_name_the_rows(mem, text, message):
    _put(mem, "/bad.csv", text)
    with pytest.raises(ManifestError, match=message):
        manifest.load("memory://bad.csv")


def test_not_a_table_and_unknown_format(mem):
    _put(mem, "/m.parquet", b"definitely not parquet")
    with pytest.raises(ManifestError, match=r"memory://m.parquet: not a readable parquet table"):
        manifest.load("memory://m.parquet")
    with pytest.raises(ManifestError, match="unknown format"):
        manifest.load("memory://m.xlsx")


def test_keys_change_with_inputs_params_and_weights():
    item = manifest.WorkItem(1, "a", "memory://a.png", "memory://s.png", StyleParams())
    base = item.keyed("size=1;mtime=1", "size=2;mtime=1", "w1").key
    assert base == item.keyed("size=1;mtime=1", "size=2;mtime=1", "w1").key
    changed = [
        item.keyed("size=1;mtime=2", "size=2;mtime=1", "w1"),
        item.keyed("size=1;mtime=1", "size=3;mtime=1", "w1"),
        item.keyed("size=1;mtime=1", "size=2;mtime=1", "w2"),
        manifest.WorkItem(1, "a", "memory://a.png", "memory://s.png", StyleParams(steps=9)).keyed(
            "size=1;mtime=1", "size=2;mtime=1", "w1"),
        manifest.WorkItem(1, "b", "memory://a.png", "memory://s.png", StyleParams()).keyed(
            "size=1;mtime=1", "size=2;mtime=1", "w1"),
    ]
    assert len({base, *(c.key for c in changed)}) == 6


def test_keys_hash_only_non_default_params_so_new_options_keep_old_keys():
    assert StyleParams().key_json() == "{}"
    assert StyleParams(steps=9, grid="2x2").key_json() == '{"grid": "2x2", "steps": 9}'
    assert StyleParams(steps=9).changed() == {"steps": 9}


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "a\x00b", "content": "a.png", "style": "s.png"}, r"row 1: id 'a\\x00b' is not a safe file name"),
        ({"content": 5, "style": "s.png"}, r"row 1: content must be a URI, got 5"),
        ({"content": "a\x00.png", "style": "s.png"}, r"row 1: content contains a NUL character"),
        ({"content": "a.png", "style": "s.png", "steps": "many"}, r"row 1: steps must be int, got 'many'"),
    ],
)
def test_json_lines_rows_with_hostile_cells(mem, row, message):
    _put(mem, "/m.jsonl", json.dumps(row) + "\n")
    with pytest.raises(ManifestError, match=message):
        manifest.load("memory://m.jsonl")


def test_several_styles_per_row_and_their_weights(mem):
    _put(mem, "/jobs/m.csv", "content,style,style_blend\na.png,s1.png;../x/s2.png,0.7;0.3\nb.png,s1.png;s2.png,1\n")
    with pytest.raises(ManifestError, match=r"row 2: style_blend has 1 weights for 2 style\(s\)"):
        manifest.load("memory://jobs/m.csv")
    _put(mem, "/jobs/m.csv", "content,style,style_blend\na.png,s1.png;../x/s2.png,0.7;0.3\n")
    (item,) = manifest.load("memory://jobs/m.csv")
    assert item.styles == ("memory://jobs/s1.png", "memory://x/s2.png") and item.id == "a--s1+s2"


def test_game_asset_options_are_columns_validated_per_row(mem):
    _put(mem, "/m.csv", "content,style,schedule,stage_steps,optimizer,grid\n"
                        "sheet.png,s.png,multiscale,200;50,lbfgs,4x2\nb.png,s.png,single,,adam,\n")
    first, second = manifest.load("memory://m.csv")
    assert (first.params.stages(), first.params.optimizer, first.params.cells()) == ((200, 50), "lbfgs", (4, 2))
    assert (second.params.stages(), second.params.cells()) == ((1000,), (1, 1))
    _put(mem, "/m.csv", "content,style,schedule,stage_steps,grid\na.png,s.png,multiscale,200;x,\nb.png,s.png,single,,4by2\n")
    with pytest.raises(ManifestError, match=r"row 1: stage_steps must be integers.*\n.*row 2: grid must be COLSxROWS"):
        manifest.load("memory://m.csv")


def test_derived_ids_never_collide_and_match_between_manifest_and_run(mem):
    """Defect 1: extension-only, non-ASCII and punctuation differences gave equal ids."""
    names = ["crate.png", "crate.tga", "日本.png", "中国.png", "héro.png", "h_ro.png", "a/b.png", "a__b.png", "tree.png"]
    for name in names:
        _put(mem, "/lib/" + name, b"x")
    table = library.from_glob("memory://lib/**/*.*", ["memory://styles/ink.jpg"])
    written = dict(zip(table["content"].to_pylist(), table["id"].to_pylist()))
    assert len(set(written.values())) == len(names) and written["memory://lib/tree.png"] == "tree--ink"
    assert all(ids.PATTERN.fullmatch(i) for i in written.values())
    _put(mem, "/lib/m.csv", "content,style\n" + "".join(f"{n},../styles/ink.jpg\n" for n in names))
    derived = {i.content: i.id for i in manifest.load("memory://lib/m.csv")}  # no id column: `run` derives
    assert derived == written
    _put(mem, "/lib/other.png", b"x")  # a new asset changes no existing id
    again = library.from_glob("memory://lib/**/*.*", ["memory://styles/ink.jpg"])
    assert written.items() <= dict(zip(again["content"].to_pylist(), again["id"].to_pylist())).items()


def test_a_derived_id_equal_to_a_written_one_steps_aside_and_written_duplicates_fail(mem):
    _put(mem, "/m.csv", "content,style,id\na.png,s.png,a--s\na.png,t.png,\nb.png,s.png,\n")
    first, second, third = manifest.load("memory://m.csv")
    assert first.id == "a--s" and second.id == "a--t" and third.id == "b--s"
    _put(mem, "/m.csv", "content,style,id\nb.png,s.png,\na.png,s.png,b--s\n")
    assert [i.id for i in manifest.load("memory://m.csv")][1] == "b--s"
    _put(mem, "/m.csv", "content,style,id\na.png,s.png,x\nb.png,s.png,\nc.png,s.png,x\n")
    with pytest.raises(ManifestError, match=r"row 3: duplicate id 'x' \(first used in row 1\)"):
        manifest.load("memory://m.csv")


def test_derived_ids_are_bounded_in_length(mem):
    """Defect 3: many long style names gave a 1306-character id and "File name too long"."""
    styles = ";".join(f"styles/{'brushwork-' * 12}{n}.png" for n in range(10))
    _put(mem, "/m.csv", f"content,style\n{'deep/' * 30}hero.png,{styles}\n")
    (item,) = manifest.load("memory://m.csv")
    assert len(item.id) <= ids.MAX_LENGTH and re.fullmatch(r"deep__deep__[A-Za-z0-9._+-]*-[0-9a-f]{10}", item.id)


@pytest.mark.parametrize(
    "text, message",
    [
        ("content,style,style_weight\na.png,s.png,NaN\n", r"row 1: style_weight must be float \(a finite number\), got 'NaN'"),
        ("content,style,steps\na.png,s.png,N/A\n", r"row 1: steps must be int, got 'N/A'"),
        ('{"content": "a.png", "style": "s.png"}\n{"content": null, "style": "s.png"}\n', r"row 2: content is empty"),
    ],
)
def test_null_looking_text_and_null_inputs_are_errors_naming_row_and_column(mem, text, message):
    """Defect 6: NaN, NA and N/A in a CSV were read as null and silently became defaults; a
    row without its content has nothing to stylize."""
    _put(mem, "/m.jsonl" if text.startswith("{") else "/m.csv", text)
    with pytest.raises(ManifestError, match=message):
        manifest.load("memory://m.jsonl" if text.startswith("{") else "memory://m.csv")


def test_text_that_looks_null_is_taken_as_written_and_empty_cells_mean_the_default(mem):
    _put(mem, "/m.csv", "content,style,id,steps\na.png,s.png,NA,\nb.png,s.png,null,4\n")
    first, second = manifest.load("memory://m.csv")
    assert (first.id, first.params.steps, second.id, second.params.steps) == ("NA", 1000, "null", 4)
    _put(mem, "/m.jsonl", '{"content": "a.png", "style": "s.png"}\n\n{"content": "b.png", "style": "s.png", "steps": 4}\n')
    assert [i.params.steps for i in manifest.load("memory://m.jsonl")] == [1000, 4]


def test_skip_invalid_keeps_bad_rows_as_items_with_their_problem_and_ids_of_their_own(mem):
    """`run --skip-invalid`: bad rows are recorded failed under ids no valid row uses."""
    _put(mem, "/m.csv", "id,content,style,steps\na,a.png,s.png,\nb,b.png,s.png,-1\n,c.png,s.png,x\n"
                        "a,d.png,s.png,\n,,s.png,\n")
    with pytest.raises(ManifestError, match="4 problem"):
        manifest.load("memory://m.csv")
    items = manifest.load("memory://m.csv", skip_invalid=True)
    assert [(i.row, i.id, i.content) for i in items if not i.problem] == [(1, "a", "memory://a.png")]
    bad = [i for i in items if i.problem]
    assert [(i.row, i.id, i.content) for i in bad] == [
        (2, "b", "b.png"), (3, "c--s", "c.png"), (4, "d--s", "memory://d.png"), (5, "row-5--s", "")]
    assert [i.problem.split(":")[0] for i in bad] == ["row 2", "row 3", "row 4", "row 5"]
    assert "duplicate id 'a'" in bad[2].problem and "content is empty" in bad[3].problem


def test_null_overrides_in_parquet_mean_the_default(mem):
    """Issue 20: pandas writes a missing number as NaN (a Parquet null) and a missing string as None."""
    import io

    table = pa.table({"content": ["a.png", "b.png", "c.png"], "style": ["s.png"] * 3, "id": [None, "bee", None],
                      "tv_weight": [float("nan"), None, 0.5], "steps": pa.array([None, 4, None], pa.int64()),
                      "alpha_mode": [None, "restore", None]})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    _put(mem, "/m.parquet", buf.getvalue())
    items = manifest.load("memory://m.parquet", StyleParams(tv_weight=3.0))
    assert [i.id for i in items] == ["a--s", "bee", "c--s"]
    assert [(i.params.tv_weight, i.params.steps, i.params.alpha_mode) for i in items] == [
        (3.0, 1000, "mask"), (3.0, 4, "restore"), (0.5, 1000, "mask")]


def test_null_and_nan_overrides_in_json_lines_mean_the_default(mem):
    """pandas' to_json writes a missing value as null; Python's json writes a float NaN as NaN."""
    _put(mem, "/m.jsonl", '{"content": "a.png", "style": "s.png", "id": null, "steps": null, "tv_weight": NaN}\n'
                          '{"content": "b.png", "style": "s.png", "steps": 4, "tv_weight": 0.5}\n')
    first, second = manifest.load("memory://m.jsonl")
    assert (first.id, first.params.steps, first.params.tv_weight) == ("a--s", 1000, StyleParams().tv_weight)
    assert (second.params.steps, second.params.tv_weight) == (4, 0.5)
