"""The `batch-nst` command through its entry point: outputs, summaries and exit codes."""

import io
import json
import re
import os
import subprocess
import sys

import pytest
from PIL import Image

from batch_nst.cli import main
from tests.conftest import smooth_image

FAST = ["--steps", "3", "--max-size", "32"]


def _png(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def pair(tmp_path):
    return _png(tmp_path / "content.png", smooth_image(24, 40, 1)), _png(tmp_path / "style.png", smooth_image(32, 32, 2))


def test_stylize_writes_png_and_prints_json_summary(pair, tmp_path, legacy_weights_path, capsys):
    out = tmp_path / "out" / "result.png"
    code = main(["stylize", *pair, "-o", str(out), "--weights", legacy_weights_path, "--json", "--quiet", *FAST])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert Image.open(out).size == (40, 24)
    assert summary["steps"] == 3 and summary["params"]["max_size"] == 32
    assert set(summary["losses"]) == {"total", "style", "content", "tv", "temporal"}
    assert summary["weights"].startswith("sha256=")
    import keras

    assert summary["backend"] == keras.backend.backend()  # `auto` resolved to the backend that ran


def test_stylize_writes_an_animation_in_its_own_container(pair, tmp_path, legacy_weights_path, capsys):
    frames = [Image.fromarray(smooth_image(24, 32, seed)) for seed in (3, 4, 5)]
    frames[0].save(tmp_path / "walk.gif", save_all=True, append_images=frames[1:], duration=[80, 90, 100], loop=0)
    args = ["stylize", str(tmp_path / "walk.gif"), pair[1], "--weights", legacy_weights_path, "--json", "--quiet", *FAST]
    assert main([*args, "-o", str(tmp_path / "walk.png")]) == 2  # an animated GIF comes back as a GIF
    assert "output must be a .gif file" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "out" / "walk.gif")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["losses"]["temporal"] > 0 and summary["style_distance"] > 0
    with Image.open(tmp_path / "out" / "walk.gif") as out:
        assert (out.n_frames, out.size) == (3, (32, 24))


def test_stylize_keeps_a_one_frame_gif_a_gif(pair, tmp_path, legacy_weights_path, capsys):
    """Issue 20, defect 11: `-o x.gif` was refused for a one-frame GIF (taken for a still PNG)."""
    Image.fromarray(smooth_image(24, 32, 3)).save(tmp_path / "still.gif", duration=70, loop=0)
    args = ["stylize", str(tmp_path / "still.gif"), pair[1], "--weights", legacy_weights_path, "--quiet", *FAST]
    assert main([*args, "-o", str(tmp_path / "still.png")]) == 2
    assert "output must be a .gif file" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "still.gif"), "--optimizer", "lbfgs"]) == 0  # optimized as a still
    with Image.open(tmp_path / "still.gif") as out:
        assert (out.format, out.n_frames, out.size, out.info["duration"], out.info["loop"]) == ("GIF", 1, (32, 24), 70, 0)


def test_stylize_whose_loss_overflows_fails_with_a_reason_and_writes_nothing(pair, tmp_path, legacy_weights_path,
                                                                          capsys):
    out = tmp_path / "black.png"
    code = main(["stylize", *pair, "-o", str(out), "--weights", legacy_weights_path, "--quiet", *FAST,
                 "--style-weight", "1e20", "--style-norm", "seed", "--no-relative-style",
                 "--style-target", "0"])
    assert code == 1 and not out.exists()
    assert "the loss became" in capsys.readouterr().err


def test_bool_and_new_style_flags_reach_the_params(pair, tmp_path, legacy_weights_path, capsys):
    content, style = pair
    args = ["stylize", content, f"{style};{style}", "-o", str(tmp_path / "o.png"), "--weights", legacy_weights_path,
            "--json", "--quiet", *FAST, "--preserve-color", "--style-scale", "0.5", "--style-blend", "2;1"]
    assert main(args) == 0
    params = json.loads(capsys.readouterr().out)["params"]
    assert params["preserve_color"] is True and params["style_scale"] == 0.5 and params["style_blend"] == "2;1"
    assert main([*args[:-1], "1;2;3"]) == 2
    assert "style_blend has 3 weights for 2 style(s)" in capsys.readouterr().err


def test_stylize_reads_weights_from_env_and_prints_one_line(pair, tmp_path, legacy_weights_path, monkeypatch, capsys):
    monkeypatch.setenv("BATCH_NST_WEIGHTS", legacy_weights_path)
    assert main(["stylize", *pair, "-o", str(tmp_path / "o.png"), *FAST]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("\n") == 1 and "weighted total" in captured.out
    assert re.search(r"after 3 (fp32|bf16) steps", captured.out)
    assert "3/3" in captured.err  # the progress bar


def test_game_asset_flags_reach_the_params_and_a_bad_sheet_names_its_file(pair, tmp_path, legacy_weights_path, capsys):
    content, style = pair  # 40x24: splits into 2x2 cells, not 3x2
    args = ["stylize", content, style, "-o", str(tmp_path / "o.png"), "--weights", legacy_weights_path, "--json",
            "--quiet", "--max-size", "32", "--schedule", "multiscale", "--stage-steps", "2;2", "--optimizer", "lbfgs",
            "--grid", "2x2"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4 and summary["precision"] == "fp32" and Image.open(tmp_path / "o.png").size == (40, 24)
    assert {k: summary["params"][k] for k in ("schedule", "stage_steps", "optimizer", "grid")} == {
        "schedule": "multiscale", "stage_steps": "2;2", "optimizer": "lbfgs", "grid": "2x2"}
    assert main([*args[:-1], "3x2"]) == 2
    assert "content.png: 40x24 does not split into a 3x2 grid" in capsys.readouterr().err


def _text_file(path):
    path.write_text("hello")
    return str(path)


def _truncated_png(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(smooth_image(32, 32, 3)).save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    return str(path)


@pytest.mark.parametrize(
    "make_content, message",
    [
        (lambda t: str(t / "absent.png"), r"no such file: .*absent\.png"),
        (lambda t: _text_file(t / "notes.png"), r"notes\.png: not an image"),
        (_truncated_png, r"cut\.png: broken image"),
        (lambda t: _png(t / "big.png", smooth_image(64, 64, 4)), r"big\.png: 64x64 = 4096 pixels exceeds"),
    ],
)
def test_bad_inputs_exit_2_naming_the_file(pair, tmp_path, legacy_weights_path, capsys, make_content, message):
    content = make_content(tmp_path)
    args = ["stylize", content, pair[1], "-o", str(tmp_path / "o.png"), "--weights", legacy_weights_path,
            "--max-pixels", "2000", *FAST]
    assert main(args) == 2

    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "o.png").exists()


def test_corrupt_weights_exit_2(pair, tmp_path, capsys):
    bad = tmp_path / "w.h5"
    bad.write_bytes(os.urandom(4096))
    assert main(["stylize", *pair, "-o", str(tmp_path / "o.png"), "--weights", str(bad), *FAST]) == 2
    assert "cannot load VGG19 weights" in capsys.readouterr().err


def test_bad_parameter_and_output_exit_2(pair, tmp_path, legacy_weights_path, capsys):
    assert main(["stylize", *pair, "-o", str(tmp_path / "o.png"), "--steps", "0"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
    assert main(["stylize", *pair, "-o", str(tmp_path / "o.jpg"), "--weights", legacy_weights_path]) == 2
    assert "must be a .png" in capsys.readouterr().err


def test_python_dash_m_entry_point(pair, tmp_path, legacy_weights_path):
    out = tmp_path / "m.png"
    proc = subprocess.run(
        [sys.executable, "-m", "batch_nst", "stylize", *pair, "-o", str(out), "--weights", legacy_weights_path,
         "--quiet", *FAST],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.exists() and proc.stdout.startswith("wrote ") and "(unweighted terms: " in proc.stdout
    assert proc.stderr == ""  # defect 9: TensorFlow's and CUDA's lines (cudart, absl, cuInit) only with --verbose


def test_version_and_help_texts(capsys):
    """Defect 9: no --version; "(default )" after empty defaults; --workers said "else 1"."""
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and re.fullmatch(r"batch-nst \d+\.\d+\.\d+\n", capsys.readouterr().out)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default )" not in text and "without GPUs, one per CPU core" in text and "--verbose" in text


@pytest.mark.parametrize("argv, message", [
    (["run", "m.csv", "-o", "out", "--max-pixels", "-1"], "--max-pixels: must be >= 1, got -1"),
    (["run", "m.csv", "-o", "out", "--batch-pixels", "0"], "--batch-pixels: must be >= 1, got 0"),
    (["stylize", "c.png", "s.png", "-o", "o.png", "--backend", "theano"], "--backend: invalid choice: 'theano'"),
    (["run", "m.csv", "-o", ""], "--output-root: must not be empty"),
    (["manifest", "*.png", "--style", "s.png", "-o", " "], "--output: must not be empty"),
])
def test_bad_limits_and_empty_outputs_exit_2_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    """Defect 9: --max-pixels -1 failed every item at run time; -o "" wrote into the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err and not os.listdir(tmp_path)
