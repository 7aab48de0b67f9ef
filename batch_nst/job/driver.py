"""The driver: plan (done / to do / invalid), start Ray, dispatch to workers, record, summarize.

Workers are Ray actors in an elastic pool (pool.py): each (one per GPU, or a fraction) loads the
weights once; Ray restarts dead ones (`max_restarts=-1`), on another node if theirs is gone, and
retries their task up to `max_attempts` times in all (`max_task_retries`), so a killed worker costs
one retry and a poison item fails alone. Records come back to this process and are written once,
so a retried item never gets two records. Chunks are fed lazily in style order, so items of one
style run together and each worker computes a style's Grams once. The driver never imports the
deep-learning framework: only the workers do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import pyarrow as pa

from batch_nst.engine import backend
from batch_nst.assets import images
from batch_nst.job import chunking, compact, lease, pending, planning, pool, quiet, records, runs, stopping
from batch_nst import storage, weights
from batch_nst.errors import BatchNSTError, ParamsError, ResourcesError
from batch_nst.job.pending import Chunk
from batch_nst.job.planning import Plan, plan
from batch_nst.params import StyleParams
from batch_nst.job.runs import Summary
from batch_nst.job.worker import WorkerConfig
from batch_nst.job.writer import Writer


@dataclass(frozen=True)
class JobConfig:
    """Everything a run needs; it refuses values that cannot work, saying which flag to fix."""

    manifest: str
    output_root: str
    weights: str = weights.IMAGENET
    params: StyleParams = field(default_factory=StyleParams)  # base; rows override
    workers: int | None = None  # None: one per GPU (locally: else one per CPU core)
    gpus_per_worker: float | None = None  # None: 1 on a cluster or where this machine has GPUs, else 0
    address: str | None = None  # None: $RAY_ADDRESS or an embedded local Ray
    force: bool = False
    max_pixels: int = images.MAX_PIXELS
    max_attempts: int = 3  # per item, across worker deaths
    batch_items: int = 16  # items of one size and parameters optimized together (memory-bound)
    batch_pixels: int | None = None  # memory bound of a batch; None: each worker sizes it to its device
    chunk_seconds: float = chunking.CHUNK_SECONDS  # a worker's time a chunk is sized for (job/chunking.py)
    checkpoint_every: int = 0  # steps between checkpoints of long items under the root; 0 = none
    wait_timeout: float = 900.0  # seconds without any running worker before the run gives up (exit 2)
    backend: str = field(default_factory=backend.resolve)  # the workers': $KERAS_BACKEND, else auto (in each worker)
    grace: float = 20.0  # seconds items in flight get to finish after SIGINT/SIGTERM (Kubernetes allows 30)
    verbose: bool = False  # TensorFlow's, CUDA's and Ray's own logs shown (batch_nst.job.quiet)
    skip_invalid: bool = False  # invalid manifest rows recorded failed and the rest run, not refused whole

    def __post_init__(self) -> None:
        backend.resolve(self.backend)  # ParamsError naming the choices
        for name, value, least, why in (
            ("workers", self.workers, 1, "actors to start; leave it out for the default"),
            ("gpus_per_worker", self.gpus_per_worker, 0, "0 runs on CPUs, fractions share a GPU"),
            ("max_pixels", self.max_pixels, 1, "the largest input accepted"),
            ("max_attempts", self.max_attempts, 1, "tries per item when its worker dies"),
            ("batch_items", self.batch_items, 1, "items optimized together"),
            ("batch_pixels", self.batch_pixels, 1, "pixels optimized together; leave it out to size it to the device"),
            ("checkpoint_every", self.checkpoint_every, 0, "0 turns checkpoints off"),
            ("grace", self.grace, 0, "seconds items in flight get after SIGINT/SIGTERM"),
        ):
            if value is not None and value < least:
                raise ParamsError(f"--{name.replace('_', '-')} must be >= {least} ({why}), got {value}")
        if not self.chunk_seconds > 0:
            raise ParamsError(f"--chunk-seconds must be > 0 (a worker's time each chunk is sized for), "
                              f"got {self.chunk_seconds}")
        if not self.wait_timeout > 0:
            raise ParamsError(f"--wait-timeout must be > 0 seconds (how long to wait for workers' "
                              f"resources before giving up), got {self.wait_timeout}")

    @property
    def on_cluster(self) -> bool:
        """Whether the run joins a cluster (which may grow) rather than this machine alone."""
        return bool(self.address or os.environ.get("RAY_ADDRESS"))


def run(config: JobConfig, on_chunk: Callable[[pa.Table, Summary], None] | None = None,
        on_start: Callable[[Plan], None] | None = None, on_pool: Callable[[Any], None] | None = None) -> Summary:
    """Run the job; records and summary land under the output root. Raises BatchNSTError before
    any work for a bad manifest, config or weights, and ResourcesError (summary `no_resources`)
    when no worker could start within `wait_timeout`. `on_chunk` gets each finished chunk's
    records (a table) and the summary so far; `on_pool` gets the pool's status
    (`2 of 8 workers running, 6 waiting for {GPU: 1}`) whenever it changes."""
    started = time.perf_counter()
    rows = planning.load(config)  # a bad manifest: exit 2, root untouched
    # A file or URI is fetched and hashed here, and the 8-bit copy checked: unreachable weights are
    # exit 2 now, not N failures later. `imagenet` is Keras' download, which would load the framework
    # in the driver: each node's workers fetch it, and if they cannot, every worker fails to start
    # with that reason (exit 2 as well).
    weights_id = weights.identity(config.weights)
    run_id = _new_run_id()
    stop = stopping.Stop(config.grace)
    with stop.handling(), lease.hold(config.output_root, run_id) as dead_run:
        if dead_run:
            runs.mark_crashed(config.output_root, dead_run, run_id)
        for line in runs.recovered(config.output_root, pending.recover(config.output_root), run_id):
            _log(line)
        # Planned under the lease: no other run can finish an item between plan and dispatch.
        the_plan = plan(config, rows, weights_id)
        return _run(config, the_plan, run_id, started, on_chunk, on_start, on_pool, stop)


def _run(config: JobConfig, the_plan: Plan, run_id: str, started: float, on_chunk, on_start, on_pool,
         stop: stopping.Stop) -> Summary:
    """The run under the lease: invalid rows recorded, the rest dispatched, the summary written
    whatever happens (`crashed` for an exception, `interrupted` for a signal, `no_resources`)."""
    summary = Summary(run_id=run_id, skipped=the_plan.done)
    runs.start(config.output_root, run_id)
    writer = Writer(config.output_root, summary.run_id)
    try:
        if on_start:
            on_start(the_plan)
        if the_plan.invalid:
            invalid = records.table(records.for_item(item, run_id=run_id, worker=records.DRIVER,
                                                     weights=the_plan.weights_identity, status=records.FAILED,
                                                     error=reason) for item, reason in the_plan.invalid)
            writer.add(Chunk(invalid))
            summary.add(invalid, invalid=True)
        for chunk in _dispatch(config, the_plan, summary, on_pool, stop) if the_plan.todo else ():
            writer.add(chunk)
            summary.add(chunk.table)
            if on_chunk:
                on_chunk(chunk.table, summary)
    except KeyboardInterrupt:
        summary.interrupted_by = stop.signal or signal.SIGINT
        raise
    except ResourcesError as err:
        summary.no_resources = str(err)  # what did finish is kept
        raise
    except BaseException as err:
        summary.crash = f"{type(err).__name__}: {err}"
        raise
    finally:
        _end(config, the_plan, summary, writer, started, stop)
    return summary


def _end(config: JobConfig, the_plan: Plan, summary: Summary, writer: Writer, started: float,
         stop: stopping.Stop) -> None:
    """Write what is buffered and what workers left pending (or keep it pending, saying why), then
    the final summary."""
    with contextlib.suppress(BatchNSTError, OSError, ValueError):  # unreadable: the next run recovers them
        summary.add(writer.gather_pending())
    unwritten = writer.close()
    if unwritten:
        summary.metadata_error = (f"{unwritten} record(s) could not be written to the metadata ({writer.error}); "
                                  f"kept under metadata/_pending/{summary.run_id}/ for the next run")
    summary.interrupted_by = summary.interrupted_by or stop.signal
    summary.not_finished = len(the_plan.todo) - summary.ok - summary.failed
    summary.seconds = time.perf_counter() - started
    runs.finish(config.output_root, summary, {"steps_planned": the_plan.steps, "config": _config_json(config, the_plan),
                                              "compaction": _compact(config.output_root, summary)})


def _compact(root: str, summary: Summary) -> dict[str, Any] | None:
    """Past compact.THRESHOLD small live metadata files, the run compacts them at its end, under its
    lease, so the next plan reads few files. One that fails leaves the metadata whole
    (compact.py) and the run's status as it was: the next run tries again. An interrupted or
    crashed run skips it: its grace is for the items in flight."""
    if summary.status not in (runs.OK, runs.FAILED) or summary.metadata_error:
        return None
    try:
        done = compact.compact_if_due(root)
    except BatchNSTError as err:
        _log(f"the metadata could not be compacted (it is whole; the next run tries again): {err}")
        return {"error": str(err)}
    return dataclasses.asdict(done) if done else None


def _dispatch(config: JobConfig, the_plan: Plan, summary: Summary, on_pool,
              stop: stopping.Stop) -> Iterator[Chunk]:
    """Records of the items to do, a chunk at a time as workers finish them; an item whose worker died
    `max_attempts` times gets a failed record saying so. The pool's shape and placements go
    into the summary, however the dispatch ends."""
    _init_ray(config)
    stop.arm()  # ray.init replaced our SIGTERM handler with one that exits at once
    shape = pool.shape(config.workers, config.gpus_per_worker, len(the_plan.todo), config.on_cluster, _log)
    worker_config = WorkerConfig(output_root=config.output_root, weights=config.weights, run_id=summary.run_id,
                                 max_pixels=config.max_pixels, backend=config.backend, threads=max(1, int(shape.cpus)),
                                 gpu_fraction=shape.gpus or None, batch_items=config.batch_items,
                                 batch_pixels=config.batch_pixels,
                                 checkpoint_every=config.checkpoint_every)
    workers = pool.Pool(shape, worker_config, config.max_attempts, config.wait_timeout, _log, on_pool,
                        verbose=config.verbose)
    try:
        yield from _collect(workers, config, the_plan, summary.run_id, stop)
    finally:
        summary.pool = workers.summary()
        workers.close()


def _collect(workers: pool.Pool, config: JobConfig, the_plan: Plan, run_id: str,
             stop: stopping.Stop) -> Iterator[Chunk]:
    """Every item's record, in chunks: from the pool, or, for items whose worker died on every
    attempt, a failed record after one more try alone (a poison item must not sink its batch-mates).
    After a stop signal, items without a record get none: the next run does them."""
    sizes = chunking.Chunker(len(the_plan.todo), config.batch_items, workers.shape.workers, config.chunk_seconds)
    lost = yield from workers.drain(sizes.chunks(the_plan.todo), stop, lambda done: sizes.observe(done.table))
    if lost and config.batch_items > 1 and not stop.requested:
        lost = yield from workers.drain(([item] for item in lost), stop)
    if stop.requested or not lost:
        return
    yield Chunk(records.table(records.for_item(
        item, run_id=run_id, worker=records.DRIVER, weights=the_plan.weights_identity, status=records.FAILED,
        error=f"the worker process died while stylizing it, {config.max_attempts} times (killed, or out of memory)",
    ) for item in lost))


def _init_ray(config: JobConfig) -> None:
    """Join the given cluster, $RAY_ADDRESS, or start an embedded local Ray sized to this machine.

    No runtime_env of ours: inside `ray job submit` the job's own runtime env is merged with it,
    and Ray refuses the merge when both name the same variable (workers quiet themselves)."""
    import ray

    if ray.is_initialized():
        return
    quiet.hush_ray_errors(config.verbose)
    options = quiet.ray_options(config.verbose)
    address = config.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **options)
    else:
        # "local": else ray.init joins any cluster that Ray's current-cluster file names (an earlier
        # `ray start` on this machine, even a dead one) and refuses num_cpus there.
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, **options)


def _new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _config_json(config: JobConfig, the_plan: Plan) -> dict[str, Any]:
    """The run's configuration as its summary records it (URIs without credentials)."""
    return {
        "manifest": storage.redact(config.manifest), "output_root": storage.redact(config.output_root),
        "weights": storage.redact(config.weights), "weights_identity": the_plan.weights_identity,
        "params": config.params, "backend": config.backend, "workers": config.workers,
        "gpus_per_worker": config.gpus_per_worker, "force": config.force, "max_pixels": config.max_pixels,
        "max_attempts": config.max_attempts, "batch_items": config.batch_items, "batch_pixels": config.batch_pixels,
        "chunk_seconds": config.chunk_seconds,
        "checkpoint_every": config.checkpoint_every, "grace": config.grace, "wait_timeout": config.wait_timeout,
        "skip_invalid": config.skip_invalid,
    }


def _log(message: str) -> None:
    print(f"batch-nst: {message}", file=sys.stderr)
