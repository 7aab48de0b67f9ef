"""job/library.py: the manifest built from a glob over a library's files."""

import pytest

from batch_nst.job import library, manifest
from tests.test_manifest import _put


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".jsonl"])
def test_glob_manifest_round_trips_with_stable_ids(mem, ext):
    for path in ["/lib/chars/hero.png", "/lib/chars/npc/guard.png", "/lib/tree.png", "/lib/readme.txt"]:
        _put(mem, path, b"x")
    table = library.from_glob("memory://lib/**/*.png", ["memory://styles/ink.jpg", "memory://styles/oil.png"])
    manifest.write(table, "memory://out/m" + ext)
    items = manifest.load("memory://out/m" + ext)
    assert sorted(i.id for i in items) == sorted(
        f"{a}--{s}" for a in ["chars__hero", "chars__npc__guard", "tree"] for s in ["ink", "oil"]
    )
    _put(mem, "/lib/chars/aaa.png", b"x")  # a new asset leaves the others' ids alone
    grown = {r["id"] for r in library.from_glob("memory://lib/**/*.png", ["memory://styles/ink.jpg"]).to_pylist()}
    assert {"chars__hero--ink", "chars__aaa--ink", "tree--ink"} <= grown



def test_a_glob_never_picks_up_the_styles_or_an_output_root(mem):
    """Defect 9: a glob over a folder holding the output root fed results, thumbnails and the
    style back in as content. A folder merely named `images` stays in."""
    for path in ["/lib/hero.png", "/lib/ink.png", "/lib/images/tree.png", "/lib/out/images/hero--ink.png",
                 "/lib/out/report/thumbs/a.png", "/lib/out/runs/r1.json", "/lib/out/metadata/part-r1-00000.parquet"]:
        _put(mem, path, b"x")
    table = library.from_glob("memory://lib/**/*.png", ["memory://lib/ink.png"])
    assert sorted(table["content"].to_pylist()) == ["memory://lib/hero.png", "memory://lib/images/tree.png"]
