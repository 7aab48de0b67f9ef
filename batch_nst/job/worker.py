"""The work of one actor: WorkItems in, images and metadata records out.

Holds the extractor (weights loaded once per process), the compiled steps and a cache of style
Grams, so a library that shares a few styles computes each style's targets once per worker. One
item's failure becomes that item's `failed` record and never sinks the others. No Ray here: pool.py
wraps this class as an actor.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator

from batch_nst.assets import animation, images
from batch_nst.engine import backend, device
from batch_nst.job import pending, records
from batch_nst import storage
from batch_nst.engine.checkpoint import State
from batch_nst.engine.style_cache import StyleCache
from batch_nst.errors import BatchNSTError
from batch_nst.job.manifest import WorkItem
from batch_nst.job.pending import Chunk
from batch_nst.job.records import Record
from batch_nst.weights import resolve_weights

if TYPE_CHECKING:  # the engine imports Keras, which must wait for the backend's setup in __init__
    from batch_nst.engine.transfer import Result


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a run is built from. The driver builds it, so a misspelt or mistyped
    field fails there naming it (inside the actor it read as "every worker failed to start"),
    and Ray carries a copy to each actor."""

    output_root: str
    weights: str  # "imagenet" or a URI
    run_id: str
    max_pixels: int = images.MAX_PIXELS
    backend: str = backend.DEFAULT  # the Keras backend (backend.BACKENDS)
    threads: int | None = None  # CPU thread pools; None = the framework's default (whole machine)
    gpu_fraction: float | None = None  # this actor's share of a GPU (Ray's num_gpus), memory capped to it
    batch_items: int = 16  # most items optimized together in one batch
    batch_pixels: int | None = None  # memory bound of a batch, in pixels; None: sized to the device (device.py)
    checkpoint_every: int = 0  # steps between checkpoints under the output root; 0 = none

    def __post_init__(self) -> None:
        for name, expected in typing.get_type_hints(WorkerConfig).items():
            kinds = typing.get_args(expected) or (expected,)
            if not _fits(getattr(self, name), kinds):
                named = " or ".join("None" if kind is type(None) else kind.__name__ for kind in kinds)
                raise TypeError(f"WorkerConfig.{name} must be {named}, got {getattr(self, name)!r}")


def _fits(value: Any, kinds: tuple[type, ...]) -> bool:
    """isinstance, except that an int passes for a float and a bool never for a number."""
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


class Worker:
    """Stylizes chunks of WorkItems; built once per process (its __init__ loads the weights)."""

    def __init__(self, config: WorkerConfig, where: dict[str, Any] | None = None):
        found = device.probe()  # the GPU Ray gave this process, if any: `auto`'s backend and the batch's size
        self.settings = backend.use(config.backend, config.threads, config.gpu_fraction, found)  # before Keras loads
        if config.batch_pixels is None:
            config = dataclasses.replace(config, batch_pixels=device.batch_pixels(
                found, self.settings["backend"], config.gpu_fraction))
        from batch_nst.engine import transfer
        from batch_nst.engine.optimize import Optimizer
        from batch_nst.engine.vgg import Extractor

        self.config = config
        self.transfer = transfer
        self.where = where or {}  # record fields saying where it ran (node, accelerators): from the actor
        self.optimizer = Optimizer(Extractor(resolve_weights(config.weights)))
        self.styles = StyleCache()  # Gram targets per (style, size, precision)
        self.style_pictures = StyleCache()  # decoded style images per URI: a few, reused
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def chunk(self, items: list[WorkItem]) -> Chunk:
        """`process`, then the chunk's records copied to one pending file (survives a killed
        driver): a chunk costs the metadata one PUT, not one per item."""
        return pending.write_chunk(self.config.output_root, self.config.run_id, self.process(items))

    def process(self, items: list[WorkItem]) -> list[Record]:
        """Stylize a chunk of items and write their images; return one record per item.

        Items whose optimization size and parameters match run as one batch of up to
        `batch_items` (fewer for large items: at most `batch_pixels` pixels). An item that cannot
        be read fails alone; a batch that fails is retried item by item, so one bad item never
        sinks the others.
        """
        records_out, ready = [], []
        for item in items:
            started = time.perf_counter()
            try:
                ready.append(self._ready(item))
            except Exception as err:  # a reading bug fails its item with its reason; raised, it read as a death
                reason = _describe(err) if isinstance(err, BatchNSTError) else \
                    f"{storage.redact(item.content)}: {_describe(err)}"
                records_out.append(self._failed(item, reason, time.perf_counter() - started))
        for batch in _batches(ready, self._batch_limit):
            records_out += self._batch(batch)
        return records_out

    def _ready(self, item: WorkItem) -> _Ready:
        content = self._content(item.content)
        return _Ready(item, content, [self._style(uri) for uri in item.styles], self._resume(item),
                      self.transfer.batch_key(content, item.params, storage.redact(item.content)))

    def _batch_limit(self, first: _Ready) -> int:
        """Items per batch: up to `batch_items`, within `batch_pixels` (a sprite sheet counts all
        its cells, an animation all its frames); L-BFGS optimizes one item at a time, and a
        resumed item continues alone from its checkpoint."""
        size, params, cells = first.key
        if params.optimizer == "lbfgs" or first.resume is not None:
            return 1
        return max(1, min(self.config.batch_items, self.config.batch_pixels // (size[0] * size[1] * cells)))

    def _batch(self, batch: list[_Ready]) -> list[Record]:
        started, first = time.perf_counter(), batch[0]
        items = [one.item for one in batch]
        try:
            (height, width), _, _ = first.key
            results = self.transfer.stylize_many([one.content for one in batch], [one.styles for one in batch],
                                                 params=first.item.params, extractor=self.optimizer,
                                                 style_cache=self.styles, style_keys=[item.styles for item in items],
                                                 resume=first.resume, checkpoint=lambda state: self._save(items, state),
                                                 checkpoint_every=self.config.checkpoint_every,
                                                 max_cells=max(1, self.config.batch_pixels // (height * width)))
            return [self._write(one.item, one.content, one.styles, result) for one, result in zip(batch, results)]
        except Exception as err:  # an item must never sink the worker: tf OOM, storage, bugs, ...
            if len(batch) > 1:
                return [rec for one in batch for rec in self._batch([one])]
            return [self._failed(first.item, _describe(err), time.perf_counter() - started)]

    def _write(self, item: WorkItem, content, style, result: Result) -> Record:
        """The image (a still as PNG, an animation in its own container) and the record; an image
        of this id under another extension goes when the record is written (records.write_part)."""
        output = records.image_uri(self.config.output_root, item.id, animation.extension_of(result.image))
        storage.write_bytes(output, animation.encode_output(result.image))
        notes = [f"content: {_frames_note(content)}"] if _frames_note(content) else []
        notes += [f"style: {s.note}" for s in style if s.note]
        rec = self._ok(item, result, output, "; ".join(notes))
        if self.config.checkpoint_every:
            storage.remove([records.checkpoint_uri(self.config.output_root, item.key)])
        return rec

    def _save(self, items: tuple[WorkItem, ...], state: State) -> None:
        """Each item's share of the optimization state, under its key (atomically)."""
        cells = state.pixels.shape[0] // len(items)  # a sprite sheet's cells share its checkpoint
        for b, item in enumerate(items):
            data = state.part(b * cells, (b + 1) * cells).to_bytes()
            storage.write_bytes(records.checkpoint_uri(self.config.output_root, item.key), data)

    def _resume(self, item: WorkItem) -> State | None:
        """The item's checkpoint, if checkpointing is on and one was left by an earlier attempt."""
        uri = records.checkpoint_uri(self.config.output_root, item.key)
        if not self.config.checkpoint_every or not storage.exists(uri):
            return None
        return State.from_bytes(storage.read_bytes(uri))

    def _style(self, uri: str) -> images.Picture:
        """A style image (an animated one's first frame), decoded once per worker."""
        return self.style_pictures.get(uri, lambda: images.decode(*self._read(uri)))

    def _content(self, uri: str) -> images.Picture | animation.Animation:
        """A still, or an animated GIF, APNG or WebP whole."""
        return animation.decode(*self._read(uri))

    def _read(self, uri: str) -> tuple[bytes, str, int]:
        return storage.read_bytes(uri), storage.redact(uri), self.config.max_pixels

    def _ok(self, item: WorkItem, result: Result, output: str, note: str) -> Record:
        losses = dataclasses.asdict(result.losses)
        return self._record(
            # absolute: a relative root would only mean something from the folder the run started in
            item, result.seconds, status=records.OK, output=storage.redact(storage.resolve(output)), note=note or None,
            **{f"{name}_loss": value for name, value in losses.items()}, style_distance=result.style_distance,
            **dataclasses.asdict(result.quality),
            loss_history=list(result.history), steps=result.steps,
            height=result.image.height, width=result.image.width, frames=_frame_count(result.image),
            opt_height=result.height, opt_width=result.width, optimize_seconds=result.optimize_seconds,
            precision=result.precision,
        )

    def _failed(self, item: WorkItem, error: str, seconds: float) -> Record:
        return self._record(item, seconds, status=records.FAILED, error=error)

    def _record(self, item: WorkItem, seconds: float, **fields: Any) -> Record:
        return records.for_item(
            item, run_id=self.config.run_id, worker=self.name,
            weights=self.optimizer.extractor.weights.identity, seconds=seconds, backend=self.settings["backend"],
            **self.where, **fields,
        )


@dataclass(frozen=True)
class _Ready:
    """An item read and ready to stylize. Items of one `key` (transfer.batch_key: optimization
    size, parameters, cells) step together; a resumed one alone, from its checkpoint."""

    item: WorkItem
    content: Any  # images.Picture or animation.Animation
    styles: list[images.Picture]
    resume: State | None
    key: tuple


def _batches(ready: list[_Ready], limit: Callable[[_Ready], int]) -> Iterator[list[_Ready]]:
    """Items of one key in order of arrival, cut into batches of at most `limit(first)` items."""
    groups: dict[tuple, list[_Ready]] = {}
    for one in ready:
        groups.setdefault((one.item.id,) if one.resume is not None else one.key, []).append(one)
    for group in groups.values():
        size = limit(group[0])
        for start in range(0, len(group), size):
            yield group[start:start + size]


# Out-of-memory errors by backend: TensorFlow's, PyTorch's (torch.OutOfMemoryError), XLA's status.
_OOM_TYPES = ("ResourceExhaustedError", "OutOfMemoryError")


def _describe(err: Exception) -> str:
    """An item's error message: ours as they are, others with their type (and OOM said plainly)."""
    if isinstance(err, BatchNSTError):
        return str(err)
    if isinstance(err, MemoryError) or type(err).__name__ in _OOM_TYPES or "RESOURCE_EXHAUSTED" in str(err):
        return f"out of memory while stylizing: {type(err).__name__}: {err}"
    return f"{type(err).__name__}: {err}"


def _frames_note(content: images.Picture | animation.Animation) -> str:
    """What the record's note says of the content: an animation's frame count, a still's own note
    ("first frame of 3" for a multi-page TIFF); nothing for a still, a one-frame GIF included."""
    if isinstance(content, animation.Animation):
        return f"{len(content.frames)} frames" if len(content.frames) > 1 else ""
    return content.note


def _frame_count(image: images.Picture | animation.Animation) -> int:
    """The written file's frames: 1 for a still (a one-frame GIF too), the report shows more."""
    return len(image.frames) if isinstance(image, animation.Animation) else 1
