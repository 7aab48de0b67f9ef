"""The elastic pool of worker actors: what it asks the cluster for, and how chunks reach workers.

All workers are asked for up front, each with the resources the job needs, even where no node
has them yet: on an autoscaling cluster the pending requests are what makes the GPU nodes come.
Chunks go only to workers that have started and are idle, so a worker whose node is still
booting joins when it is up, and the job ends when the items are done, not when every requested
worker has started. Ray restarts a worker whose node disappears wherever the cluster has room
(`max_restarts=-1`) and retries its chunk there; the pool counts such replacements. If no worker
is running for `wait_timeout` seconds, the pool gives up with a `ResourcesError` naming what it
waited for: never a silent hang.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterator

from batch_nst.job import quiet
from batch_nst.errors import ResourcesError
from batch_nst.job.stopping import Stop

if TYPE_CHECKING:  # imported by the actor's own process only (it unpickles the config there)
    from batch_nst.job.pending import Chunk
    from batch_nst.job.worker import WorkerConfig

POLL_S = 1.0  # how often the pool wakes to refresh its status and check the wait timeout


@dataclass(frozen=True)
class Shape:
    """How many workers, and what each asks Ray for."""

    workers: int
    cpus: float
    gpus: float

    @property
    def resources(self) -> dict[str, float]:
        """Each worker's request; GPU workers are named by their GPUs, as users size them."""
        return {"GPU": self.gpus} if self.gpus else {"CPU": self.cpus}

    def describe(self) -> str:
        """`{GPU: 1}`: the request as the progress line and errors show it."""
        return "{" + ", ".join(f"{name}: {amount:g}" for name, amount in self.resources.items()) + "}"


def shape(workers: int | None, gpus_per_worker: float | None, n_items: int, on_cluster: bool,
          log: Callable[[str], None]) -> Shape:
    """The pool for this job. On a cluster, GPU workers (1 GPU each unless told) even where no
    GPU node exists yet: the autoscaler adds nodes for them. On this machine alone, today's
    measured default: one worker per GPU, else one single-threaded worker per CPU core; a request
    this machine can never meet fails at once, since nothing will come to meet it."""
    import ray

    total = ray.cluster_resources()
    total_gpus, total_cpus = total.get("GPU", 0.0), total.get("CPU", 0.0)
    if gpus_per_worker is not None:
        gpus = gpus_per_worker
    else:
        gpus = 1.0 if on_cluster or total_gpus else 0.0
    if workers is None:
        # One single-threaded worker per core: on 2 cores, two such workers did 10% more items per
        # minute than one with two threads (README, Benchmarks). Each holds ~1 GB (TF + weights).
        workers = max(1, int(total_gpus / gpus) if gpus else int(total_cpus))
        if on_cluster and gpus > total_gpus:
            log(f"the cluster has no free GPU now; asking {workers} worker(s): pass --workers N to grow to N")
    workers = max(1, min(workers, n_items))
    cpus = 1.0 if gpus or on_cluster else max(1.0, float(int(total_cpus // workers)))
    planned = Shape(workers, cpus, gpus)
    if not on_cluster and (gpus > total_gpus or cpus > total_cpus):
        raise ResourcesError(
            f"each worker needs {planned.describe()} but this machine has {total_gpus:g} GPU(s) and "
            f"{total_cpus:g} CPU(s), and a local run cannot grow: pass --gpus-per-worker 0, or join a "
            "cluster that has or can add them with --address / RAY_ADDRESS")
    return planned


class WorkerActor:
    """The Ray actor around `batch_nst.job.worker.Worker`. This module never imports Keras or a framework: the
    worker (and the framework) is imported here, in the actor's own process, so the driver
    stays light. It also learns where Ray placed it, for every record it writes."""

    def __init__(self, config: WorkerConfig, verbose: bool = False):
        quiet.configure(verbose)  # before the framework loads; set here, not in ray.init's runtime_env
        import ray

        from batch_nst.job.worker import Worker

        context = ray.get_runtime_context()
        where = {"node": context.get_node_id(),
                 "accelerators": [str(a) for a in context.get_accelerator_ids().get("GPU", [])]}
        if not where["accelerators"]:  # Ray 2.60 leaves CUDA_VISIBLE_DEVICES as it was for an actor given no GPU
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # so a CPU worker on a GPU node neither picks nor takes the card
        self.worker = Worker(config, where)
        self.placement = {"name": self.worker.name, **where}

    def identity(self) -> dict[str, Any]:
        """Where this worker runs; answering at all means it has started."""
        return self.placement

    def process(self, items) -> tuple[dict[str, Any], Chunk]:
        """The chunk's records, with who made them: a changed identity means Ray replaced it."""
        return self.placement, self.worker.chunk(items)


@dataclass
class Status:
    """The pool as the progress line shows it."""

    running: int
    requested: int
    resources: str

    def __str__(self) -> str:
        waiting = self.requested - self.running
        return f"{self.running} of {self.requested} workers running" + (
            f", {waiting} waiting for {self.resources}" if waiting else "")


@dataclass
class Pool:
    """Requested workers, dispatch to the started ones, and the record of where they ran."""

    shape: Shape
    worker_config: WorkerConfig  # built and checked in the driver; each actor gets a copy
    max_attempts: int
    wait_timeout: float
    log: Callable[[str], None]  # the driver's messages (stderr)
    on_status: Callable[[Status], None] | None = None
    verbose: bool = False  # the workers' framework logs
    started: int = 0  # workers that came up at least once
    replaced: int = 0  # times Ray brought a worker back as a new process (its node was lost, or it died)
    placements: list[dict[str, Any]] = field(default_factory=list)  # every worker process that ran
    _actors: list[Any] = field(default_factory=list)
    _current: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> live placement
    _starting: dict[Any, int] = field(default_factory=dict)  # identity() ref -> index
    _busy: dict[Any, tuple[int, list, int]] = field(default_factory=dict)  # process() ref -> (index, chunk, attempt)
    _redo: list[tuple[list, int]] = field(default_factory=list)  # chunks of lost workers, with their next attempt
    _idle: list[int] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)  # indexes of workers that ever started
    _shown: str = ""
    _errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        import ray

        actor = ray.remote(WorkerActor).options(
            num_cpus=self.shape.cpus, num_gpus=self.shape.gpus, max_restarts=-1,
            max_task_retries=self.max_attempts - 1)
        self._actors = [actor.remote(self.worker_config, self.verbose) for _ in range(self.shape.workers)]
        self._starting = {a.identity.remote(): i for i, a in enumerate(self._actors)}

    def drain(self, chunks: Iterator[list], stop: Stop,
              on_done: Callable[[Chunk], None] | None = None) -> Generator[Chunk, None, list]:
        """Feed chunks to idle started workers and yield their records, a Chunk each (`on_done` sees
        it first: the next chunks can be sized by it); return the items whose
        chunk was lost on every attempt (its worker died `max_attempts` times). After a stop
        signal no chunk is dispatched; once its grace is over, the items in flight are returned
        too (they get no record: the next run does them)."""
        import ray

        lost: list = []
        since = time.monotonic()  # last moment a worker was running (or the start)
        chunk = self._next(chunks, stop)
        while chunk is not None or self._busy:
            if stop.expired():
                return lost + [item for _, items, _ in self._busy.values() for item in items]
            while chunk is not None and self._idle:
                index = self._idle.pop()
                self._busy[self._actors[index].process.remote(chunk[0])] = (index, *chunk)
                chunk = self._next(chunks, stop)
            refs = [*self._starting, *self._busy]
            for ref in ray.wait(refs, num_returns=1, timeout=POLL_S)[0] if refs else ():
                if ref in self._starting:
                    self._started(ref)
                else:
                    lost += yield from self._finished(ref, on_done)
            chunk = chunk or self._next(chunks, stop)
            since = self._check_waiting(since)
        return lost

    def _next(self, chunks: Iterator[list], stop: Stop) -> tuple[list, int] | None:
        """The next chunk and its attempt: chunks to redo first; none once a stop is asked for."""
        if stop.requested:
            return None
        if self._redo:
            return self._redo.pop()
        chunk = next(chunks, None)
        return None if chunk is None else (chunk, 1)

    def close(self) -> None:
        """End every worker, started or still pending: a pending request left behind would
        keep the autoscaler adding nodes for a job that is over."""
        import ray

        for actor in self._actors:
            ray.kill(actor)

    def summary(self) -> dict[str, Any]:
        """The pool as it really was, for the run summary."""
        return {"requested": self.shape.workers, "started": self.started, "replaced": self.replaced,
                "resources": {"CPU": self.shape.cpus, "GPU": self.shape.gpus}, "workers": self.placements}

    def _started(self, ref) -> None:
        import ray

        index = self._starting.pop(ref)
        try:
            self._placed(index, ray.get(ref))
        except ray.exceptions.ActorUnavailableError:  # restarting (its node was lost): ask again
            self._starting[self._actors[index].identity.remote()] = index
            return
        except ray.exceptions.RayError as err:  # failed to start (bad weights on the node, ...): gone
            self._errors.append(f"{type(err).__name__}: {err}")
            self.log(f"a worker failed to start: {type(err).__name__}")
            return
        self._idle.append(index)

    def _finished(self, ref, on_done: Callable[[Chunk], None] | None) -> Generator[Chunk, None, list]:
        """The records of a chunk; a chunk whose worker was lost is redone (its records were not
        taken: each item still gets one) or, after `max_attempts`, returned as lost."""
        import ray

        index, chunk, attempt = self._busy.pop(ref)
        try:
            placement, done = ray.get(ref)
        except ray.exceptions.RayError as err:
            self._current.pop(index, None)
            self._starting[self._actors[index].identity.remote()] = index  # back when Ray restarts it
            if isinstance(err, ray.exceptions.ActorUnavailableError) and attempt < self.max_attempts:
                self._redo.append((chunk, attempt + 1))  # Ray gave up on it while the worker restarts
                return []
            self.log(f"a worker died on every attempt at a chunk: {type(err).__name__}")
            return list(chunk)
        self._placed(index, placement)
        self._idle.append(index)
        if on_done:
            on_done(done)
        yield done
        return []

    def _placed(self, index: int, placement: dict[str, Any]) -> None:
        """Note a worker's process: its first start, or a new process after its old one was lost."""
        if placement not in self.placements:
            if index in self._seen:
                self.replaced += 1
            else:
                self.started += 1
                self._seen.add(index)
            self.placements.append(placement)
        self._current[index] = placement

    def _check_waiting(self, since: float) -> float:
        """Show the pool's status when it changes; raise when no worker ran for `wait_timeout`."""
        status = Status(len(self._current), self.shape.workers, self.shape.describe())
        if self.on_status and str(status) != self._shown:
            self.on_status(status)
        self._shown = str(status)
        now = time.monotonic()
        if status.running:
            return now
        if not self._starting and not self._busy:
            raise ResourcesError("every worker failed to start: " + "; ".join(self._errors[:3]))
        if now - since > self.wait_timeout:
            raise ResourcesError(
                f"no worker could start within --wait-timeout {self.wait_timeout:g}s: each of the "
                f"{self.shape.workers} worker(s) waited for {self.shape.describe()}, which the cluster "
                "does not have and did not add. Check that the cluster can grow to it (its node "
                "types and max_workers), or ask for less (--gpus-per-worker, --workers)")
        return since

