"""The actor body without Ray: a chunk of items in, one record per item out, failures kept apart."""

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from batch_nst.assets import images
from batch_nst import storage
from batch_nst.job.manifest import WorkItem
from batch_nst.params import StyleParams
from batch_nst.engine.transfer import style_distance
from batch_nst.job.worker import Worker, WorkerConfig
from tests.conftest import smooth_image

PARAMS = StyleParams(steps=3, max_size=32, precision="fp32")


@pytest.fixture(scope="module")
def worker(legacy_weights_path, tmp_path_factory):
    root = str(tmp_path_factory.mktemp("out"))
    return Worker(WorkerConfig(output_root=root, weights=legacy_weights_path, run_id="r1", batch_items=4))


def _png(path, array):
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    path.write_bytes(buf.getvalue())
    return str(path)


def _items(tmp_path, n, size=(32, 32)):
    style = _png(tmp_path / "style.png", smooth_image(32, 32, 99))
    return [WorkItem(i + 1, f"item{i}", _png(tmp_path / f"c{i}.png", smooth_image(*size, i)), style, PARAMS, f"k{i}")
            for i in range(n)]


def test_chunk_gives_one_record_per_item_in_batches(worker, tmp_path):
    items = _items(tmp_path, 5)
    (tmp_path / "bad.png").write_text("nope")
    items.append(WorkItem(6, "bad", str(tmp_path / "bad.png"), items[0].style, PARAMS, "kb"))
    traces = worker.optimizer.traces
    recs = worker.process(items)
    assert sorted(r.id for r in recs) == ["bad", "item0", "item1", "item2", "item3", "item4"]
    by_id = {r.id: r for r in recs}
    assert by_id["bad"].status == "failed" and "bad.png: not an image" in by_id["bad"].error
    assert all(by_id[f"item{i}"].status == "ok" and by_id[f"item{i}"].steps == 3 for i in range(5))
    assert worker.optimizer.traces - traces <= 2  # a batch of 4 and a batch of 1: one trace each
    assert by_id["item0"].precision == "fp32" and by_id["item0"].key == "k0"
    for rec in (by_id["item0"], by_id["item4"]):  # batched and alone: recomputed from the stored files
        stored, style = (images.decode(open(uri, "rb").read(), uri) for uri in (rec.output, rec.style))
        distance = style_distance(stored, style, params=PARAMS, extractor=worker.optimizer)
        assert rec.style_distance == pytest.approx(distance, rel=1e-5) and distance > 0


def test_one_failing_item_in_a_batch_fails_alone(worker, tmp_path, monkeypatch):
    items = _items(tmp_path, 3)
    real_write = storage.write_bytes

    def flaky(uri, data):
        if uri.endswith("item1.png"):
            raise storage.StorageError(f"permission denied: {uri}")
        return real_write(uri, data)

    monkeypatch.setattr(storage, "write_bytes", flaky)
    by_id = {r.id: r for r in worker.process(items)}
    assert by_id["item1"].status == "failed" and "permission denied" in by_id["item1"].error
    assert by_id["item0"].status == by_id["item2"].status == "ok"
    assert np.isfinite(by_id["item0"].total_loss)


class OutOfMemoryError(RuntimeError):
    """Named as PyTorch's; TensorFlow's ResourceExhaustedError and XLA's RESOURCE_EXHAUSTED also count."""


@pytest.mark.parametrize("error", [OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB"),
                                   RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")])
def test_out_of_memory_on_one_huge_item_is_that_items_error(worker, tmp_path, monkeypatch, error):
    from batch_nst.engine import transfer

    real = transfer.stylize_many

    def tight_memory(contents, *args, **kwargs):
        if any(c.height > 40 for c in contents):
            raise error
        return real(contents, *args, **kwargs)

    monkeypatch.setattr(transfer, "stylize_many", tight_memory)
    small = _items(tmp_path, 1)
    huge = WorkItem(9, "huge", _png(tmp_path / "huge.png", smooth_image(48, 48, 7)), small[0].style, PARAMS, "kh")
    by_id = {r.id: r for r in worker.process([*small, huge])}
    assert by_id["item0"].status == "ok"
    assert by_id["huge"].status == "failed" and by_id["huge"].error.startswith("out of memory while stylizing")


@pytest.mark.parametrize("params, size, stage", [
    (StyleParams(steps=12, max_size=32, precision="fp32"), (32, 32), 0),
    # a sprite sheet of two cells, in the second of two stages when preempted
    (StyleParams(max_size=32, precision="fp32", schedule="multiscale", stage_steps="4;8", grid="2x1"), (32, 64), 1),
])
def test_a_preempted_item_resumes_from_its_checkpoint(legacy_weights_path, tmp_path, monkeypatch, params, size, stage):
    """Killed right after its first checkpoint, the item's retry starts from it, ends with the bytes
    of an uninterrupted run, and the checkpoint is gone once the item is ok."""
    from batch_nst.engine import optimize
    from batch_nst.job import records

    style = _png(tmp_path / "style.png", smooth_image(32, 32, 98))
    item = WorkItem(1, "long", _png(tmp_path / "c.png", smooth_image(*size, 5)), style, params, "kl")
    plain = Worker(WorkerConfig(output_root=str(tmp_path / "plain"), weights=legacy_weights_path, run_id="r0"))
    assert plain.process([item])[0].status == "ok"
    root = str(tmp_path / "out")
    worker = Worker(WorkerConfig(output_root=root, weights=legacy_weights_path, run_id="r1", checkpoint_every=5))
    real_save = worker._save

    def save_then_die(items, state):
        real_save(items, state)
        raise SystemExit("preempted")  # not an Exception: escapes the worker like a killed process

    monkeypatch.setattr(worker, "_save", save_then_die)
    with pytest.raises(SystemExit):
        worker.process([item])
    checkpoint = tmp_path / "out" / "checkpoints" / "kl.npz"
    assert checkpoint.exists()
    monkeypatch.setattr(worker, "_save", real_save)
    starts = []
    real_run = optimize.Optimizer.run

    def spy(self, init, targets, params, on_step=None, precision="fp32", resume=None, *rest, **kwargs):
        starts.append(resume)
        return real_run(self, init, targets, params, on_step, precision, resume, *rest, **kwargs)

    monkeypatch.setattr(optimize.Optimizer, "run", spy)
    (rec,) = worker.process([item])
    assert rec.status == "ok" and rec.steps == 12 and len(rec.loss_history) == 12
    assert starts and starts[0] is not None and (starts[0].step, starts[0].stage) == (5, stage)
    assert not checkpoint.exists()
    assert (tmp_path / "out" / "images" / "long.png").read_bytes() == (tmp_path / "plain" / "images" / "long.png").read_bytes()
    assert records.checkpoint_uri(root, "kl").endswith("checkpoints/kl.npz")


@pytest.mark.parametrize("fmt, extension", [("GIF", "gif"), ("PNG", "png")])
def test_an_animation_comes_back_whole_in_its_container_with_recomputable_losses(worker, tmp_path, fmt, extension):
    """Every frame stylized, written in the input's container with its timing and loop; the record's
    losses and distance are those of the stored file (a GIF's palette included)."""
    from batch_nst.assets import animation
    from batch_nst.engine.transfer import evaluate

    frames = [Image.fromarray(np.dstack([smooth_image(32, 32, s), np.full((32, 32), 255, np.uint8)])) for s in (1, 2, 3)]
    for frame in frames:
        frame.putpixel((0, 0), (0, 0, 0, 0))  # a transparent corner
    frames[0].save(tmp_path / f"anim.{extension}", fmt, save_all=True, append_images=frames[1:],
                   duration=[100, 200, 300], loop=0)
    style = _png(tmp_path / "style.png", smooth_image(32, 32, 97))
    (rec,) = worker.process([WorkItem(1, "anim", str(tmp_path / f"anim.{extension}"), style, PARAMS, "ka")])
    assert rec.status == "ok" and rec.note == "content: 3 frames" and rec.output.endswith(f"anim.{extension}")
    stored = animation.decode(open(rec.output, "rb").read(), rec.output)
    assert (stored.durations, stored.loop, stored.format) == ((100, 200, 300), 0, fmt)
    assert all(frame.alpha[0, 0] == 0 and frame.alpha[1, 1] == 255 for frame in stored.frames)
    content = animation.decode(open(tmp_path / f"anim.{extension}", "rb").read(), "content")
    style_picture = images.decode(open(style, "rb").read(), style)
    losses = evaluate(content, style_picture, stored, params=PARAMS, extractor=worker.optimizer)
    assert rec.total_loss == pytest.approx(losses.total, rel=1e-5) and losses.temporal > 0
    assert rec.style_distance == pytest.approx(
        style_distance(stored, style_picture, params=PARAMS, extractor=worker.optimizer), rel=1e-5)


def test_a_one_frame_gif_is_written_as_a_gif_with_its_timing_and_transparency(worker, tmp_path):
    """Issue 20, defect 11: a one-frame GIF came back as images/<id>.png."""
    from batch_nst.assets import animation

    frame = Image.fromarray(np.dstack([smooth_image(32, 32, 5), np.full((32, 32), 255, np.uint8)]))
    frame.putpixel((0, 0), (0, 0, 0, 0))
    frame.save(tmp_path / "one.gif", duration=70, loop=0)
    style = _png(tmp_path / "style.png", smooth_image(32, 32, 97))
    (rec,) = worker.process([WorkItem(1, "one", str(tmp_path / "one.gif"), style, PARAMS, "k1")])
    assert rec.status == "ok" and rec.output.endswith("images/one.gif") and rec.note is None
    stored = animation.decode(open(rec.output, "rb").read(), rec.output)
    assert (stored.format, len(stored.frames), stored.durations, stored.loop) == ("GIF", 1, (70,), 0)
    assert stored.frames[0].alpha[0, 0] == 0 and stored.frames[0].alpha[1, 1] == 255


def test_a_sheet_that_does_not_split_fails_naming_its_file(worker, tmp_path):
    (item,) = _items(tmp_path, 1, size=(32, 30))
    (rec,) = worker.process([WorkItem(1, "sheet", item.content, item.style, StyleParams(grid="4x4"), "ks")])
    assert rec.status == "failed" and f"{item.content}: 30x32 does not split into a 4x4 grid" in rec.error


def test_a_relative_root_is_recorded_as_an_absolute_output(worker, tmp_path, monkeypatch):
    """`run -o out` from one folder, `report out` from another: the record's output must not be
    `out/images/...` relative to where the run started."""
    monkeypatch.chdir(tmp_path)
    relative = Worker.__new__(Worker)
    relative.__dict__.update(worker.__dict__, config=dataclasses.replace(worker.config, output_root="out"))
    rec = relative.process(_items(tmp_path, 1))[0]
    assert rec.status == "ok" and rec.output == str(tmp_path / "out" / "images" / "item0.png")


def test_an_unexpected_error_reading_an_item_is_its_recorded_reason(worker, tmp_path, monkeypatch):
    """A decoder bug (an AssertionError on a GIF past its canvas) escaped process(): the actor's task
    failed, the driver counted a dead worker 3 times and recorded 'the worker process died'."""
    from batch_nst.assets import animation

    def broken(data, name, max_pixels):
        raise AssertionError("frames differ in size")

    monkeypatch.setattr(animation, "decode", broken)
    rec = worker.process(_items(tmp_path, 1))[0]
    assert rec.status == "failed"
    assert rec.error == f"{tmp_path / 'c0.png'}: AssertionError: frames differ in size"


def test_batch_pixels_come_from_the_device_unless_given(legacy_weights_path, tmp_path, monkeypatch):
    """A GPU worker batches from its memory (its Ray share of it), a CPU worker keeps its bound,
    and an explicit value wins; the record names the backend `auto` chose."""
    from batch_nst.engine import device

    h200 = device.Device(1, 143771 * 2**20)
    monkeypatch.setattr(device, "probe", lambda: h200)
    config = WorkerConfig(output_root=str(tmp_path / "out"), weights=legacy_weights_path, run_id="r1", gpu_fraction=0.5)
    gpu = Worker(config)
    ran = gpu.settings["backend"]  # auto: this test process's Keras, whatever auto would pick on an H200
    assert gpu.config.batch_pixels == device.batch_pixels(h200, ran, 0.5) > 16 * 512 * 512
    assert Worker(dataclasses.replace(config, batch_pixels=1000)).config.batch_pixels == 1000
    monkeypatch.setattr(device, "probe", lambda: device.CPU)
    assert Worker(dataclasses.replace(config, gpu_fraction=None)).config.batch_pixels == device.CPU_BATCH_PIXELS
    (rec,) = gpu.process(_items(tmp_path, 1))
    assert rec.status == "ok" and rec.backend == ran != "auto"


def test_a_misspelt_or_mistyped_config_fails_where_it_is_built_naming_the_field():
    """The driver builds the config: a typo there is its error, not "every worker failed to start"."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'threds'"):
        WorkerConfig(output_root="out", weights="w.h5", run_id="r1", threds=2)
    with pytest.raises(TypeError, match=r"^WorkerConfig.batch_items must be int, got '4'$"):
        WorkerConfig(output_root="out", weights="w.h5", run_id="r1", batch_items="4")
    with pytest.raises(TypeError, match=r"^WorkerConfig.gpu_fraction must be float or None, got True$"):
        WorkerConfig(output_root="out", weights="w.h5", run_id="r1", gpu_fraction=True)
    assert WorkerConfig(output_root="out", weights="w.h5", run_id="r1", gpu_fraction=1).gpu_fraction == 1


def test_a_chunk_costs_the_metadata_one_write_and_no_delete(worker, tmp_path, monkeypatch):
    """Issue 21: a pending PUT and a DELETE per item neared an object store's request limits at
    sprite rates. Now a chunk writes its images and one pending file, and deletes nothing."""
    writes, deletes = [], []
    real_write = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda uri, data: (writes.append(uri), real_write(uri, data)))
    monkeypatch.setattr(storage, "remove", lambda uris: deletes.append(list(uris)))
    chunk = worker.chunk(_items(tmp_path, 4))
    assert chunk.table.num_rows == 4 and chunk.pending in writes
    assert [uri for uri in writes if "/images/" not in uri] == [chunk.pending] and deletes == []
