"""Session-wide fixtures: seeded VGG19 weights in both formats, one extractor, tiny images."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
from PIL import Image

from tests import vgg_weights


@pytest.fixture
def mem():
    """The in-memory filesystem, emptied: memory:// URIs in tests start from nothing."""
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.store.clear()
    fs.pseudo_dirs.clear()
    fs.pseudo_dirs.append("")
    return fs


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def legacy_weights_path(weights_dir) -> str:
    path = os.path.join(weights_dir, "vgg19_seeded_notop.h5")
    vgg_weights.write_legacy_h5(path)
    return path


@pytest.fixture(scope="session")
def keras3_weights_path(weights_dir) -> str:
    path = os.path.join(weights_dir, "vgg19_seeded.weights.h5")
    vgg_weights.write_keras3(path)
    return path


@pytest.fixture(scope="session")
def weights(legacy_weights_path):
    from batch_nst.weights import Weights

    return Weights(path=legacy_weights_path, identity="seeded:0", source=legacy_weights_path)


@pytest.fixture(scope="session")
def extractor(weights):
    from batch_nst.engine.vgg import Extractor

    return Extractor(weights)


@pytest.fixture(scope="session")
def optimizer(extractor):
    from batch_nst.engine.optimize import Optimizer

    return Optimizer(extractor)


PROBES_NICE = 10  # the probes run beside the other tests on the cores those leave idle


def pytest_collection_modifyitems(config, items):
    """The tests that read the backends' probes run late: the probes, started with the session
    (`_probes_started`), have had the whole run to finish. Those marked `after_probes` run last:
    a framework's thread pool sharing the cores with the probes spins (a PyTorch run took 72 s
    beside them, 27 s alone)."""
    items.sort(key=lambda item: (item.get_closest_marker("after_probes") is not None,
                                 "probes" in getattr(item, "fixturenames", ())))


@pytest.fixture(scope="session", autouse=True)
def _probes_started(request, tmp_path_factory):
    """Starts tests/probe.py's processes (one a backend, ~2 minutes of two cores) in the background
    when this session has a test that reads them; stops any still running when the session ends."""
    if not any("probes" in getattr(item, "fixturenames", ()) for item in request.session.items):
        yield None
        return
    import concurrent.futures
    import threading

    from tests import probe

    weights, folder = request.getfixturevalue("legacy_weights_path"), tmp_path_factory.mktemp("probes")
    done, procs = concurrent.futures.Future(), {}

    def run() -> None:
        try:
            done.set_result(probe.run_all(weights, folder, nice=PROBES_NICE, procs=procs))
        except BaseException as err:  # noqa: BLE001  handed to the test that reads the probes
            done.set_exception(err)

    threading.Thread(target=run, name="probes", daemon=True).start()
    yield done
    for proc in list(procs.values()):
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="session")
def probes(_probes_started):
    """Each backend's results and log from tests/probe.py, for tests/test_autodiff.py and
    tests/test_backends.py alike: one process a backend serves both."""
    return _probes_started.result()


@pytest.fixture(autouse=True)
def _small_reference_side(request, monkeypatch):
    """Every item's style distance runs the network once at the reference side (256 px): on two
    CPU cores that costs more than a test's whole few-step optimization. In-process tests take it
    at 64 px, the same code on a smaller picture; tests/test_distance.py keeps 256 (it checks what
    the size means). Ray workers, other processes, keep 256."""
    engine = {"optimizer", "extractor", "weights", "legacy_weights_path"} & set(request.fixturenames)
    if request.module.__name__.endswith("test_distance") or not engine:
        return
    from batch_nst.engine import distance

    monkeypatch.setattr(distance, "REFERENCE_SIDE", 64)


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random colour field, [H, W, 3] uint8: image-like, unlike white noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(rng.uniform(2, 9) * x + rng.uniform(2, 9) * y + rng.uniform(0, 6)) for _ in range(3)]
    return np.clip((np.stack(channels, -1) + 1) * 127.5, 0, 255).astype(np.uint8)


ENV_SECRET = "env-secret-9f3Kq2LmZx"  # must never appear in any output, record or summary


@pytest.fixture(scope="session")
def s3_endpoint():
    """A moto S3 server on loopback; its credentials go in the environment before Ray starts,
    so actors inherit them."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": ENV_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    yield env["AWS_ENDPOINT_URL"]
    server.stop()


@pytest.fixture(scope="session")
def ray_session(s3_endpoint):
    """One local Ray for the whole test session (2 CPUs, as on CI)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}})
    yield ray
    ray.shutdown()


def problem(optimizer, size=32, seeds=(1, 2)):
    """An optimization's input: a content batch of one and its targets (the optimizer's tests),
    the content's through the defaults' network and content layer."""
    from batch_nst.engine.losses import Targets
    from batch_nst.params import StyleParams

    content = smooth_image(size, size, seeds[0])[None].astype(np.float32)
    style = smooth_image(size, size, seeds[1])[None].astype(np.float32)
    return content, Targets(optimizer.content_features(content, StyleParams()), optimizer.style_grams(style))


def rgba(h, w, seed):
    """A smooth picture with an opaque box in the middle, transparent around it, one pixel half-way."""
    alpha = np.zeros((h, w), np.uint8)
    alpha[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 255
    alpha[0, 0] = 77
    return np.dstack([smooth_image(h, w, seed), alpha])


def disc_sprite(n=40):
    """An opaque disc on a fully transparent background whose hidden colour is junk."""
    y, x = np.mgrid[0:n, 0:n]
    alpha = (((y - n / 2) ** 2 + (x - n / 2) ** 2) < (n / 3) ** 2).astype(np.uint8) * 255
    rgb = (64 + smooth_image(n, n, 50) // 2).astype(np.uint8)
    rgb[alpha == 0] = (255, 0, 255)
    return np.dstack([rgb, alpha])


@pytest.fixture
def library(tmp_path):
    """Six 48 px rows over one style (tests/test_job.py has a library of its own, broken rows included)."""
    lines = ["id,content,style"]
    Image.fromarray(smooth_image(48, 48, 100)).save(tmp_path / "style.png")
    for i in range(6):
        Image.fromarray(smooth_image(48, 48, i)).save(tmp_path / f"c{i}.png")
        lines.append(f"c{i},c{i}.png,style.png")
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    return tmp_path


def count_calls(monkeypatch, fs, name):
    """Wrap fs.<name> so the test can see how often storage called it."""
    calls = []
    original = getattr(fs, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(fs, name, counted)
    return calls
