"""The shipped example and the nightly entry point, run end to end (few steps, small size)."""

import importlib.util
import os
import shutil

import pyarrow.dataset as pads

from batch_nst.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--steps", "2", "--max-size", "32", "--quiet"]


def _nightly():
    spec = importlib.util.spec_from_file_location("nightly", os.path.join(ROOT, "jobs", "nightly.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_manifest_runs(ray_session, tmp_path, legacy_weights_path):
    manifest = os.path.join(ROOT, "jobs", "example", "manifest.csv")
    root = str(tmp_path / "out")
    assert main(["run", manifest, "-o", root, "--weights", legacy_weights_path, *FAST]) == 0
    assert sorted(os.listdir(os.path.join(root, "images"))) == [
        "crate--mosaic.png", "crate--waves.png", "potion--mosaic.png", "potion--waves.png"]


def test_nightly_stylizes_what_was_added_during_the_day(ray_session, tmp_path, legacy_weights_path):
    library = tmp_path / "library"
    shutil.copytree(os.path.join(ROOT, "jobs", "example", "assets"), library)
    style = os.path.join(ROOT, "jobs", "example", "styles", "waves.png")
    root = str(tmp_path / "out")
    args = ["--library", str(library / "**" / "*.png"), "--style", style, "--output-root", root,
            "--weights", legacy_weights_path, *FAST, "--workers", "1"]  # one: a worker's start is ~8 s of CPU
    nightly = _nightly()
    assert nightly.main(args) == 0
    shutil.copy(library / "crate.png", library / "props" / "crate_copy.png")  # a new asset today
    assert nightly.main(args) == 0
    table = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    assert sorted(r["id"] for r in table if r["status"] == "ok") == sorted(
        ["crate--waves", "props__potion--waves", "props__crate_copy--waves"])
    assert len(table) == 3  # the second night stylized only the new asset
