"""The batch job end to end on a local Ray with two actors: `run`, `plan`, incremental reruns."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pyarrow.dataset as pads
import pytest
from PIL import Image

from batch_nst.assets import images
from batch_nst.cli import main
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import evaluate
from tests.conftest import smooth_image

# One worker: a Ray worker's start (TensorFlow, the network, the first trace) is ~8 s of CPU, the
# suite is CPU-bound on two cores, and several workers sharing a run are tested in test_faults.py,
# test_multinode.py and test_example_job.py.
FAST = ["--steps", "3", "--max-size", "32", "--workers", "1", "--quiet"]
GOOD = ["c1--s1", "c2--s1", "c3--s2", "c4--s2"]


def _save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """Four good rows over two styles, plus a missing file, a non-image and a truncated PNG."""
    lib = tmp_path_factory.mktemp("lib")
    _save(lib / "art" / "c1.png", smooth_image(24, 40, 1))
    _save(lib / "art" / "c2.png", np.dstack([smooth_image(32, 32, 2), np.full((32, 32), 128, np.uint8)]))
    _save(lib / "art" / "c3.png", smooth_image(48, 20, 3))
    _save(lib / "art" / "c4.png", smooth_image(16, 16, 4))
    _save(lib / "styles" / "s1.png", smooth_image(32, 32, 5))
    _save(lib / "styles" / "s2.png", smooth_image(32, 32, 6))
    (lib / "art" / "notes.png").write_text("not an image")
    buf = io.BytesIO()
    Image.fromarray(smooth_image(32, 32, 7)).save(buf, "PNG")
    (lib / "art" / "cut.png").write_bytes(buf.getvalue()[:200])
    rows = [("c1", "art/c1.png", "s1"), ("c2", "art/c2.png", "s1"), ("c3", "art/c3.png", "s2"),
            ("c4", "art/c4.png", "s2"), ("gone", "art/missing.png", "s1"), ("text", "art/notes.png", "s2"),
            ("cut", "art/cut.png", "s1")]
    lines = ["id,content,style"] + [f"{i}--{s},{c},styles/{s}.png" for i, c, s in rows]
    (lib / "manifest.csv").write_text("\n".join(lines) + "\n")
    return lib


def _records(root):
    return pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()


def _run(manifest, root, weights, *extra):
    return main(["run", manifest, "-o", root, "--weights", weights, *FAST, *extra])


def test_run_then_incremental_reruns(ray_session, library, tmp_path, legacy_weights_path, optimizer, capsys):
    manifest, root = str(library / "manifest.csv"), str(tmp_path / "out")

    assert main(["plan", manifest, "-o", root, "--weights", legacy_weights_path, "--json", *FAST[:4]]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert (planned["done"], planned["todo"], planned["invalid"], planned["steps"]) == (0, 6, 1, 18)
    assert "missing.png" in planned["invalid_reasons"][0]["error"]

    assert _run(manifest, root, legacy_weights_path) == 1
    out = capsys.readouterr().out
    assert "ok" in out and "failed" in out
    recs = {r["id"]: r for r in _records(root)}
    assert sorted(r for r in recs if recs[r]["status"] == "ok") == GOOD
    assert recs["gone--s1"]["error"].startswith("no such file:") and "missing.png" in recs["gone--s1"]["error"]
    assert "notes.png: not an image" in recs["text--s2"]["error"]
    assert "cut.png: broken image" in recs["cut--s1"]["error"]
    for item_id in GOOD:
        _check_output(library, root, recs[item_id], optimizer)
    (summary_file,) = os.listdir(os.path.join(root, "runs"))
    summary = json.load(open(os.path.join(root, "runs", summary_file)))
    assert summary["counts"] == {"ok": 4, "failed": 2, "skipped": 0, "invalid": 1, "not_finished": 0, "total": 7}
    assert summary["status"] == "failed"

    # Nothing changed: no optimization, no new ok record; the failed rows are tried again.
    assert _run(manifest, root, legacy_weights_path) == 1
    recs2 = _records(root)
    assert sum(r["status"] == "ok" for r in recs2) == 4
    assert len(recs2) == 7 + 3

    # One content image changed: exactly that item is redone.
    _save(library / "art" / "c3.png", smooth_image(48, 20, 99))
    assert _run(manifest, root, legacy_weights_path) == 1
    new_ok = [r["id"] for r in _records(root)[len(recs2):] if r["status"] == "ok"]
    assert new_ok == ["c3--s2"]

    # A parameter changed: every item it touches is redone.
    before = len(_records(root))
    assert _run(manifest, root, legacy_weights_path, "--tv-weight", "0.25") == 1
    new_ok = sorted(r["id"] for r in _records(root)[before:] if r["status"] == "ok")
    assert new_ok == GOOD

    # Everything written stayed under the output root; inputs untouched.
    assert sorted(os.listdir(root)) == ["images", "metadata", "runs"]
    assert sorted(os.listdir(os.path.join(root, "images"))) == [f"{i}.png" for i in GOOD]


def _check_output(library, root, rec, optimizer):
    """The image has the content's size (and alpha); its losses recompute from the stored file."""
    content = images.decode((library / "art" / (rec["id"].split("--")[0] + ".png")).read_bytes(), "content")
    style = images.decode((library / "styles" / (rec["id"].split("--")[1] + ".png")).read_bytes(), "style")
    stored = images.decode(open(rec["output"], "rb").read(), rec["output"])
    assert (stored.height, stored.width) == (content.height, content.width) == (rec["height"], rec["width"])
    assert (stored.alpha is None) == (content.alpha is None)
    params = StyleParams.from_mapping(json.loads(rec["params"]))
    losses = evaluate(content, style, stored, params=params, extractor=optimizer)
    assert (losses.total, losses.style, losses.content, losses.tv) == pytest.approx(
        (rec["total_loss"], rec["style_loss"], rec["content_loss"], rec["tv_loss"]), rel=1e-5)
    assert len(rec["loss_history"]) == rec["steps"] == 3


def test_bad_manifest_exits_2_before_any_work(ray_session, tmp_path, legacy_weights_path, capsys):
    (tmp_path / "m.csv").write_text("content,style,steps\na.png,b.png,-1\n")
    assert _run(str(tmp_path / "m.csv"), str(tmp_path / "out"), legacy_weights_path) == 2
    assert "row 1: steps must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_skip_invalid_records_bad_rows_failed_and_runs_the_rest(ray_session, tmp_path, legacy_weights_path, capsys):
    """Issue 20: with --skip-invalid a bad row fails alone, its record naming the row; exit 1."""
    _save(tmp_path / "c.png", smooth_image(16, 16, 1))
    _save(tmp_path / "s.png", smooth_image(16, 16, 2))
    (tmp_path / "m.csv").write_text("id,content,style,steps\nhero,c.png,s.png,\nbad,c.png,s.png,-1\n"
                                    "hero,c.png,s.png,2\n")
    root = str(tmp_path / "out")
    assert main(["run", str(tmp_path / "m.csv"), "-o", root, "--weights", legacy_weights_path, "--steps", "1",
                 "--max-size", "16", "--workers", "1", "--quiet", "--skip-invalid", "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert (summary["status"], summary["ok"], summary["invalid"]) == ("failed", 1, 2)
    found = {r["id"]: (r["status"], r["error"]) for r in _records(root)}
    assert found["hero"] == ("ok", None) and found["bad"][0] == "failed"
    assert found["bad"][1].startswith("row 2: steps must be >= 1")
    (duplicate,) = [v for k, v in found.items() if k not in ("hero", "bad")]
    assert duplicate == ("failed", "row 3: duplicate id 'hero' (first used in row 1)")
    assert os.listdir(os.path.join(root, "images")) == ["hero.png"]


def test_missing_weights_exit_2_before_any_work(ray_session, library, tmp_path, capsys):
    code = _run(str(library / "manifest.csv"), str(tmp_path / "out"), str(tmp_path / "none.h5"))
    assert code == 2
    assert "--weights PATH" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_job_with_everything_in_an_s3_bucket(ray_session, s3_endpoint, legacy_weights_path, capsys):
    """Manifest, images, outputs and metadata all in a bucket on a loopback S3 server (moto)."""
    import s3fs

    from batch_nst.job import records

    s3 = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    s3.mkdir("studio")
    for name, seed in [("assets/a.png", 11), ("assets/sub/b.png", 12), ("styles/ink.png", 13)]:
        buf = io.BytesIO()
        Image.fromarray(smooth_image(24, 32, seed)).save(buf, "PNG")
        s3.pipe(f"studio/{name}", buf.getvalue())
    assert main(["manifest", "s3://studio/assets/**/*.png", "--style", "s3://studio/styles/ink.png",
                 "-o", "s3://studio/jobs/nightly.jsonl"]) == 0
    root = "s3://studio/out"
    assert _run("s3://studio/jobs/nightly.jsonl", root, legacy_weights_path) == 0
    assert sorted(s3.ls("studio/out/images")) == ["studio/out/images/a--ink.png", "studio/out/images/sub__b--ink.png"]
    table = records.read(root)
    assert sorted(table["status"].to_pylist()) == ["ok", "ok"]
    assert all(uri.startswith("s3://studio/out/images/") for uri in table["output"].to_pylist())
    assert len(s3.ls("studio/out/runs")) == 1
    capsys.readouterr()
    assert _run("s3://studio/jobs/nightly.jsonl", root, legacy_weights_path, "--json") == 0
    printed = capsys.readouterr()
    assert json.loads(printed.out)["skipped"] == 2
    assert records.read(root).num_rows == 2
    from tests.conftest import ENV_SECRET

    s3.invalidate_cache()  # the driver deleted the pending copies since this client last listed
    stored = b"".join(s3.cat(p) for p in s3.find("studio/out") if not p.endswith(".png"))
    assert ENV_SECRET not in printed.out + printed.err and ENV_SECRET.encode() not in stored


def test_output_bucket_that_denies_writes_exits_2_naming_it(ray_session, s3_endpoint, legacy_weights_path, capsys):
    """A permanent storage error on the output root fails the run before any work, naming the URI."""
    import boto3
    import s3fs

    s3 = s3fs.S3FileSystem(client_kwargs={"endpoint_url": s3_endpoint})
    s3.mkdir("readonly")
    buf = io.BytesIO()
    Image.fromarray(smooth_image(24, 24, 1)).save(buf, "PNG")
    s3.pipe("readonly/in/a.png", buf.getvalue())
    s3.pipe("readonly/in/m.csv", b"id,content,style\na,a.png,a.png\n")
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
                                                      "Resource": "arn:aws:s3:::readonly/*"}]}
    boto3.client("s3", endpoint_url=s3_endpoint).put_bucket_policy(Bucket="readonly", Policy=json.dumps(policy))
    assert _run("s3://readonly/in/m.csv", "s3://readonly/out", legacy_weights_path) == 2
    err = capsys.readouterr().err
    assert "s3://readonly/out/runs/" in err and ("permission denied" in err or "AccessDenied" in err)
    assert _run("s3://readonly/in/m.csv", "s3://no-such-bucket/out", legacy_weights_path) == 2
    assert "s3://no-such-bucket/out/runs/" in capsys.readouterr().err


def test_unknown_schemes_and_credentials_fail_their_rows_without_leaking(ray_session, library, tmp_path,
                                                                         legacy_weights_path, capsys):
    """A style at a scheme nobody installed fails its row alone; secrets in URIs appear nowhere."""
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,content,style\n"
        f"good,{library}/art/c1.png,{library}/styles/s1.png\n"
        f"weird,{library}/art/c2.png,nosuchscheme://bucket/ink.png\n"
        f"creds,s3://AKIAEXAMPLE:{secret}@no-such-bucket/a.png,{library}/styles/s1.png\n"
    )
    root = tmp_path / "out"
    assert _run(str(manifest), str(root), legacy_weights_path) == 1
    printed = capsys.readouterr()
    recs = {r["id"]: r for r in _records(str(root))}
    assert recs["good"]["status"] == "ok"
    assert "no filesystem installed for scheme 'nosuchscheme'" in recs["weird"]["error"]
    assert recs["creds"]["status"] == "failed" and recs["creds"]["content"].startswith("s3://***@")
    everything = printed.out + printed.err + json.dumps([list(r.values()) for r in recs.values()], default=str)
    everything += "".join(p.read_text() for p in (root / "runs").iterdir())
    assert secret not in everything and "AKIAEXAMPLE" not in everything


NO_TENSORFLOW = ("import sys; from batch_nst.cli import main; code = main(sys.argv[1:]); "
                 "sys.exit(10 if 'tensorflow' in sys.modules else code)")
NO_FRAMEWORK = ("import sys; from batch_nst.cli import main; code = main(sys.argv[1:]); "
                "sys.exit(10 if {'tensorflow', 'jax', 'torch', 'keras'} & set(sys.modules) else code)")


def _one_item_run(folder, weights):
    """`run`'s arguments for a manifest of one 16 px item written in `folder`."""
    _save(folder / "c.png", smooth_image(16, 16, 1))
    _save(folder / "s.png", smooth_image(16, 16, 2))
    (folder / "m.csv").write_text("id,content,style\nc,c.png,s.png\n")
    return ["run", str(folder / "m.csv"), "-o", str(folder / "out"), "--weights", weights,
            "--steps", "1", "--max-size", "16", "--workers", "1", "--quiet"]


@pytest.fixture(scope="module")
def own_processes(tmp_path_factory, legacy_weights_path):
    """The drivers the tests below run in processes of their own, each starting a local Ray of its
    own, all started at once: one after another they were the longest waits of this module."""
    local, imagenet = tmp_path_factory.mktemp("local"), tmp_path_factory.mktemp("imagenet")
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    os.makedirs(os.path.join(temp, "ray"))
    with open(os.path.join(temp, "ray", "ray_current_cluster"), "w") as f:
        f.write("127.0.0.1:9")  # nothing listens there
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    script = ("import ray; from batch_nst.job import driver; driver._init_ray(driver.JobConfig('m.csv', 'out')); "
              "print('CPUS', ray.cluster_resources()['CPU']); ray.shutdown()")
    started = {
        "local weights": ([sys.executable, "-c", NO_FRAMEWORK, *_one_item_run(local, legacy_weights_path)],
                          {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}),  # the default: auto
        "imagenet": ([sys.executable, "-c", NO_TENSORFLOW, *_one_item_run(imagenet, "imagenet")],
                     {**os.environ, "KERAS_HOME": str(imagenet / "keras"), "RAY_AUTH_MODE": "disabled"}),
        "stale cluster": ([sys.executable, "-c", script], {**env, "RAY_TMPDIR": temp}),
    }
    procs = {name: subprocess.Popen(cmd, env=proc_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, (cmd, proc_env) in started.items()}
    yield {name: lambda proc=proc: _finished(proc) for name, proc in procs.items()}
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    shutil.rmtree(temp, ignore_errors=True)


def _finished(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    stdout, stderr = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_the_driver_never_imports_tensorflow(own_processes):
    """Planning and dispatch run in the driver; TensorFlow (~500 MB) belongs in the workers only:
    a whole `run` (its own local Ray, one item) leaves the driver without it, and without any
    framework or Keras: `--backend auto` is chosen in the workers."""
    done = own_processes["local weights"]()
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_driver_never_loads_the_framework_with_imagenet_weights(own_processes):
    """`--weights imagenet` is Keras' download: the workers' business. Offline here, every worker
    fails to start with the download's reason, and the driver never imported TensorFlow."""
    done = own_processes["imagenet"]()
    assert done.returncode == 2, done.stderr[-2000:]
    assert "cannot download the ImageNet VGG19 weights" in done.stderr


def test_plan_with_several_styles_keys_every_style_and_names_a_missing_one(tmp_path, library, legacy_weights_path):
    from batch_nst.job import driver

    m = tmp_path / "m.csv"
    m.write_text("id,content,style\n"
                 f"two,{library}/art/c1.png,{library}/styles/s1.png;{library}/styles/s2.png\n"
                 f"gone,{library}/art/c1.png,{library}/styles/s1.png;{library}/styles/nope.png\n")
    config = driver.JobConfig(manifest=str(m), output_root=str(tmp_path / "out"), weights=legacy_weights_path)
    planned = driver.plan(config)
    assert [i.id for i in planned.todo] == ["two"]
    assert "nope.png" in planned.invalid[0][1] and "s1.png" not in planned.invalid[0][1]
    one = driver.plan(driver.JobConfig(manifest=str(m), output_root=str(tmp_path / "out"), weights=legacy_weights_path,
                                 params=StyleParams(style_blend="3;1")))
    assert one.todo[0].key != planned.todo[0].key  # the weights are in the key


def test_an_item_whose_image_was_deleted_is_planned_again(tmp_path, library, legacy_weights_path):
    from batch_nst.job import driver, records

    m = tmp_path / "m.csv"
    m.write_text(f"id,content,style\nhero,{library}/art/c1.png,{library}/styles/s1.png\n")
    config = driver.JobConfig(manifest=str(m), output_root=str(tmp_path / "out"), weights=legacy_weights_path)
    [item] = driver.plan(config).todo
    records.write_part(config.output_root, "part-r1-00000", [records.record(
        id="hero", key=item.key, status="ok", run_id="r1", finished_at=records.now())])
    image = tmp_path / "out" / "images" / "hero.png"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"png")
    assert (driver.plan(config).done, len(driver.plan(config).todo)) == (1, 0)
    image.unlink()
    assert [i.id for i in driver.plan(config).todo] == ["hero"]


def test_a_parameter_changed_and_changed_back_leaves_the_image_of_the_latest_record(ray_session, tmp_path,
                                                                                     legacy_weights_path):
    """Defect 2 (steps 5 -> 8 -> 5) and defect 9's stale image: the image on disk is always the
    one the id's latest record names; a failed item leaves no image looking current."""
    _save(tmp_path / "c.png", smooth_image(16, 16, 1))
    _save(tmp_path / "s.png", smooth_image(16, 16, 2))
    (tmp_path / "m.csv").write_text("content,style\nc.png,s.png\n")
    root, image = str(tmp_path / "out"), tmp_path / "out" / "images" / "c--s.png"
    written = []
    for steps in (1, 2, 1):
        assert main(["run", str(tmp_path / "m.csv"), "-o", root, "--weights", legacy_weights_path, "--steps",
                     str(steps), "--max-size", "16", "--workers", "1", "--quiet", "--json"]) == 0
        latest = max(_records(root), key=lambda r: r["finished_at"])
        assert (latest["status"], latest["steps"]) == ("ok", steps)  # redone, not "already done"
        written.append(image.read_bytes())
    assert written[1] != written[2]
    (tmp_path / "c.png").unlink()  # the content becomes unreadable: its record fails, its image goes
    assert main(["run", str(tmp_path / "m.csv"), "-o", root, "--weights", legacy_weights_path, "--steps", "1",
                 "--max-size", "16", "--workers", "1", "--quiet"]) == 1
    assert max(_records(root), key=lambda r: r["finished_at"])["status"] == "failed" and not image.exists()


def test_a_local_run_starts_its_own_ray_whatever_cluster_ray_last_recorded(own_processes):
    """Defect 8: a stale current-cluster file (a dead `ray start --head`) must not capture a
    local run. Ray's temp dir is a fresh one here: other Ray instances on the machine are left alone."""
    done = own_processes["stale cluster"]()
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"CPUS {float(os.cpu_count())}" in done.stdout
