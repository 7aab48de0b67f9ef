"""`batch-nst report`: the static contact sheet, checked as HTML and as rendered by headless Chromium."""

import os
import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from batch_nst.job import records
from batch_nst import report, thumbnails
from batch_nst.cli import main
from batch_nst.job.manifest import WorkItem
from batch_nst.params import StyleParams
from batch_nst.job.worker import Worker, WorkerConfig
from tests.conftest import smooth_image
from tests.test_worker import _png


@pytest.fixture(scope="module")
def root(legacy_weights_path, tmp_path_factory):
    """An output root holding a real run: two stylized items (one a sprite with alpha) and one
    whose content is not an image."""
    inputs, out = tmp_path_factory.mktemp("inputs"), tmp_path_factory.mktemp("out")
    style = _png(inputs / "style.png", smooth_image(40, 40, 1))
    sprite = np.dstack([smooth_image(32, 32, 2), np.where(smooth_image(32, 32, 3)[..., 0] > 100, 255, 0).astype(np.uint8)])
    (inputs / "broken.png").write_text("not a png")
    params = StyleParams(steps=4, max_size=32, precision="fp32")
    items = [
        WorkItem(1, "crate", _png(inputs / "crate.png", smooth_image(32, 48, 4)), style, params, "k1"),
        WorkItem(2, "sprite", _png(inputs / "sprite.png", sprite), style, params.with_overrides({"alpha_mode": "restore"}), "k2"),
        WorkItem(3, "broken", str(inputs / "broken.png"), style, params, "k3"),
    ]
    worker = Worker(WorkerConfig(output_root=str(out), weights=legacy_weights_path, run_id="run-a"))
    records.write_part(str(out), "part-run-a-00000", worker.process(items))
    return out


def test_the_page_shows_each_item_with_thumbnails_losses_params_and_errors(root):
    written = report.write(str(root))
    assert (written.items, written.ok, written.failed) == (3, 2, 1)
    assert written.thumbnails == 5  # 2 readable contents, the one style, 2 results
    page = (root / "report" / "index.html").read_text()
    assert page.count('class="thumb result"') == 2 and page.count('class="thumb style"') == 3
    assert "broken.png: not an image" in page and "broken</th>" not in page  # escaped, in its own row
    assert "alpha_mode=restore" in page and "<polyline" in page
    assert page.count("<br>style distance ") == 2 and "0 outliers to review" in page  # one style, too few to judge
    assert written.uri.endswith("report/index.html")
    assert report.write(str(root)).thumbnails == 0  # a later report reuses what it made


def test_one_runs_page_and_clear_errors(root, tmp_path, capsys):
    assert main(["report", str(root), "--run", "run-a"]) == 0
    assert (root / "report" / "run-a.html").exists()
    assert main(["report", str(root), "--run", "nope"]) == 2
    assert "run 'nope' has no records" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "no records under" in capsys.readouterr().err


def _chromium():
    path = os.environ.get("BATCH_NST_CHROMIUM") or shutil.which("chromium")
    if not path:
        if os.environ.get("BATCH_NST_REQUIRE_BROWSER"):
            pytest.fail("BATCH_NST_REQUIRE_BROWSER is set but no chromium was found")
        pytest.skip("no chromium here (.ci/run installs it)")
    return path


def test_the_page_renders_in_headless_chromium_with_visible_thumbnails(root, tmp_path):
    """Open the page from storage (file://, no server) and screenshot it: every thumbnail loaded,
    and each one's area of the screenshot shows a picture, not a blank."""
    from PIL import Image
    from playwright.sync_api import TimeoutError as PageTimeout, sync_playwright

    report.write(str(root))
    shot = tmp_path / "report.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        page.goto((root / "report" / "index.html").as_uri())
        page.wait_for_load_state("load")
        thumbs = page.locator("img.thumb")
        assert thumbs.count() == 7  # 2 contents, 3 styles, 2 results (the broken content has none)
        for i in range(thumbs.count()):  # thumbnails load lazily: bring each into view first
            thumbs.nth(i).scroll_into_view_if_needed()
        loaded = "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
        try:  # every image decoded; a missing or broken thumbnail never gets there
            page.wait_for_function(f"{loaded}.every(Boolean)", timeout=15000)
        except PageTimeout:
            pytest.fail(f"thumbnails not loaded: {page.evaluate(loaded)}")
        boxes = [thumbs.nth(i).bounding_box() for i in range(thumbs.count())]
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(float)
    for box in boxes:
        x, y, w, h = (round(box[k]) for k in ("x", "y", "width", "height"))
        assert w >= 24 and h >= 24
        area = pixels[y + 2:y + h - 2, x + 2:x + w - 2]
        assert area.std() > 10, box  # a picture, not a blank or a single colour


def test_an_older_runs_page_never_shows_a_newer_result_and_refused_rows_keep_their_own_content(root, tmp_path):
    import shutil

    copy = tmp_path / "root"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    rows = records.from_table(records.read(str(copy)))
    crate = next(r for r in rows if r.id == "crate")
    refused = [replace(crate, id=f"refused{i}", key="", status="failed", output=None, run_id="run-b",
                       content=content, error="style missing") for i, content in enumerate([
                           crate.content, next(r for r in rows if r.id == "sprite").content])]
    newer = replace(crate, key="k1-new", run_id="run-b", finished_at=records.now())
    records.write_part(str(copy), "part-run-b-00000", [newer, *refused])
    report.write(str(copy), "run-a")
    old_page = (copy / "report" / "run-a.html").read_text()
    assert "result: replaced by a later run" in old_page and not (copy / "report" / "thumbs" / "k1-result.png").exists()
    report.write(str(copy))
    names = [thumbnails.content_name(row) for row in refused]
    assert names[0] != names[1] and all((copy / "report" / "thumbs" / n).exists() for n in names)
    assert (copy / "report" / "thumbs" / "k1-new-result.png").exists()


def test_outliers_of_their_style_are_flagged_and_listed_first(root, tmp_path, capsys):
    """Style a: five items, one over twice their median. Style b: two items, one far off, but too
    few to judge. An older record has no distance: shown as "—", never flagged."""
    copy = tmp_path / "root"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    crate = next(r for r in records.from_table(records.read(str(copy))) if r.id == "crate")
    made = [("a1", "a", 1.0), ("a2", "a", 1.1), ("a3", "a", 0.9), ("a4", "a", 1.0), ("a5", "a", 2.5),
            ("b1", "b", 1.0), ("b2", "b", 50.0), ("old", "a", None)]
    rows = [replace(crate, id=item_id, key=f"k-{item_id}", style=str(tmp_path / f"style-{style}.png"),
                    style_distance=distance, run_id="run-b", finished_at=records.now())
            for item_id, style, distance in made]
    records.write_part(str(copy), "part-run-b-00000", rows)
    written = report.write(str(copy))
    assert written.outliers == 1
    page = (copy / "report" / "index.html").read_text()
    order = [row.split("<br>", 1)[0] for row in page.split("<tr class=")[1:]]
    # the real items (crate, sprite) fall wherever their own distance and quality flags put them
    made_rows = [row for row in order if row.rsplit("<th>", 1)[1] not in ("crate", "sprite")]
    assert made_rows[0] == '"ok outlier"><th>a5'  # then by distance
    assert made_rows[1:] == [f'"ok"><th>{i}' for i in ("b2", "a2", "a1", "a4", "b1", "a3", "old")] + ['"failed"><th>broken']
    assert page.count("⚑ outlier") == 1 and "1 outliers to review" in page
    assert "2.50× its style's median" in page and "style distance —" in page
    assert main(["report", str(copy), "--sort", "id"]) == 0
    assert "1 outliers, " in capsys.readouterr().out
    by_id = [row.split("<br>", 1)[0].split("<th>")[1] for row in (copy / "report" / "index.html").read_text().split("<tr class=")[1:]]
    assert by_id == sorted(by_id)


def test_noisy_items_and_lost_assets_are_flagged_and_listed_first(root, tmp_path, capsys):
    """Speckle over 1.5x the content's (or over 1.5x 2 levels for a clean content) is noisy; edges
    kept under 0.3 is an asset lost; an older record without the numbers is neither."""
    copy = tmp_path / "root"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("report"))
    crate = next(r for r in records.from_table(records.read(str(copy))) if r.id == "crate")
    made = [("clean", 2.9, 0.0, 0.8), ("noisy", 3.1, 0.0, 0.8), ("grainy-content", 5.9, 4.0, 0.8),
            ("grainier", 6.1, 4.0, 0.8), ("lost", 1.0, 1.0, 0.29), ("old", None, None, None)]
    rows = [replace(crate, id=item_id, key=f"k-{item_id}", speckle=speckle, content_speckle=content,
                    edges=edges, run_id="run-c", finished_at=records.now())
            for item_id, speckle, content, edges in made]
    records.write_part(str(copy), "part-run-c-00000", rows)
    written = report.write(str(copy), run_id="run-c")
    assert (written.noisy, written.lost, written.outliers) == (2, 1, 0)
    page = (copy / "report" / "run-c.html").read_text()
    order = [(row.split("<br>", 1)[0].split("<th>")[1], "⚑" in row) for row in page.split("<tr class=")[1:]]
    assert {item_id for item_id, flag in order if flag} == {"grainier", "lost", "noisy"}
    assert all(flag for _, flag in order[:3]) and not any(flag for _, flag in order[3:])  # flagged first
    assert "speckle 3.10 (content 0.00) · edges kept 0.80" in page and "speckle —" in page
    assert "2 noisy" in page and "1 with the asset lost" in page
    assert main(["report", str(copy), "--run", "run-c"]) == 0
    assert "0 outliers, 2 noisy, 1 with the asset lost to review" in capsys.readouterr().out


def test_older_records_with_outputs_relative_to_the_run_s_folder_report_from_anywhere(root, tmp_path, monkeypatch):
    """Before absolute outputs, `run -o out` recorded `out/images/x.png`: found under the root."""
    copy = tmp_path / "copy"
    shutil.copytree(root / "images", copy / "images")
    rows = [replace(row, output=row.output and f"out/images/{os.path.basename(row.output)}")
            for row in records.from_table(records.read(str(root)))]
    records.write_part(str(copy), "part-run-a-00000", rows)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert report.write(str(copy)).thumbnails == 5
    assert (copy / "report" / "index.html").read_text().count('class="thumb result"') == 2


def test_an_animation_shows_as_an_animation_with_its_frame_count_and_results_link_to_the_full_image(
        legacy_weights_path, tmp_path):
    """Issue 20: the report showed an animated GIF as its first frame, and no thumbnail led to the output."""
    from PIL import Image

    frames = [Image.fromarray(smooth_image(24, 32, seed)) for seed in (3, 4, 5)]
    frames[0].save(tmp_path / "walk.gif", save_all=True, append_images=frames[1:], duration=[80, 90, 100], loop=0)
    style = _png(tmp_path / "style.png", smooth_image(40, 40, 1))
    params = StyleParams(steps=2, max_size=32, precision="fp32")
    items = [WorkItem(1, "walk", str(tmp_path / "walk.gif"), style, params, "kw"),
             WorkItem(2, "crate", _png(tmp_path / "crate.png", smooth_image(32, 48, 4)), style, params, "kc")]
    out = tmp_path / "out"
    worker = Worker(WorkerConfig(output_root=str(out), weights=legacy_weights_path, run_id="run-a"))
    recs = worker.process(items)
    assert [r.frames for r in recs] == [3, 1]
    records.write_part(str(out), "part-run-a-00000", recs)
    report.write(str(out))
    page = (out / "report" / "index.html").read_text()
    assert page.count("▶ 3 frames") == 1 and "▶ 1 frames" not in page
    for name in ("kw-result.png", thumbnails.content_name(recs[0])):
        with Image.open(out / "report" / "thumbs" / name) as thumb:  # an APNG: it plays in the page
            assert (thumb.n_frames, thumb.get_format_mimetype()) == (3, "image/apng")
    with Image.open(out / "report" / "thumbs" / "kc-result.png") as thumb:
        assert thumb.n_frames == 1
    links = re.findall(r'<a href="([^"]+)"><img class="thumb result"', page)
    assert sorted(links) == ["../images/crate.png", "../images/walk.gif"]
    assert all((out / "report" / link).resolve().is_file() for link in links)
