"""The work of one actor: WorkItems in, images and metadata records out.

Holds the extractor (weights loaded once per process), the compiled steps and a cache of style
Grams, so a library that shares a few styles computes each style's targets once per worker. One
item's failure becomes that item's `failed` record and never sinks the others. No Ray here: job.py
wraps this class as an actor.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from batch_nst import images, records, storage
from batch_nst.errors import BatchNSTError
from batch_nst.manifest import WorkItem
from batch_nst.optimize import Optimizer
from batch_nst.stylize import Result, StyleCache, stylize
from batch_nst.vgg import Extractor, configure_tensorflow
from batch_nst.weights import resolve_weights


@dataclass(frozen=True)
class WorkerConfig:
    output_root: str
    weights: str  # "imagenet" or a URI
    run_id: str
    max_pixels: int = images.MAX_PIXELS
    threads: int | None = None  # TF thread pools; None = TensorFlow's default (whole machine)


class Worker:
    """Stylizes WorkItems one at a time; built once per process (its __init__ loads the weights)."""

    def __init__(self, config: WorkerConfig):
        configure_tensorflow(config.threads)
        self.config = config
        self.optimizer = Optimizer(Extractor(resolve_weights(config.weights)))
        self.styles = StyleCache()
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def pid(self) -> int:
        """This process's id (chaos tests kill it)."""
        return os.getpid()

    def process(self, item: WorkItem) -> dict[str, Any]:
        """Stylize one item and write its image; return its record, `ok` or `failed`."""
        started = time.perf_counter()
        try:
            return self._ok(item, *self._stylize(item), time.perf_counter() - started)
        except BatchNSTError as err:
            return self._failed(item, str(err), time.perf_counter() - started)
        except MemoryError:
            return self._failed(item, "out of memory (host) while stylizing", time.perf_counter() - started)
        except Exception as err:  # an item must never sink the worker: tf OOM, bugs, ...
            return self._failed(item, f"{type(err).__name__}: {err}", time.perf_counter() - started)

    def _stylize(self, item: WorkItem) -> tuple[Result, str, str]:
        content = self._decode(item.content)
        style = self._decode(item.style)
        result = stylize(content, style, params=item.params, extractor=self.optimizer,
                         style_cache=self.styles, style_key=item.style)
        output = records.image_uri(self.config.output_root, item.id)
        storage.write_bytes(output, images.encode_png(result.image))
        notes = "; ".join(f"{name}: {pic.note}" for name, pic in (("content", content), ("style", style)) if pic.note)
        return result, output, notes

    def _decode(self, uri: str) -> images.Picture:
        return images.decode(storage.read_bytes(uri), storage.redact(uri), self.config.max_pixels)

    def _ok(self, item: WorkItem, result: Result, output: str, note: str, seconds: float) -> dict[str, Any]:
        losses = dataclasses.asdict(result.losses)
        return self._record(
            item, seconds, status=records.OK, output=storage.redact(output), note=note or None,
            **{f"{name}_loss": value for name, value in losses.items()},
            loss_history=list(result.history), steps=result.steps,
            height=result.image.height, width=result.image.width,
            opt_height=result.height, opt_width=result.width, optimize_seconds=result.optimize_seconds,
            precision=result.precision,
        )

    def _failed(self, item: WorkItem, error: str, seconds: float) -> dict[str, Any]:
        return self._record(item, seconds, status=records.FAILED, error=error)

    def _record(self, item: WorkItem, seconds: float, **fields: Any) -> dict[str, Any]:
        return records.for_item(
            item, run_id=self.config.run_id, worker=self.name,
            weights=self.optimizer.extractor.weights.identity, seconds=seconds, **fields,
        )
