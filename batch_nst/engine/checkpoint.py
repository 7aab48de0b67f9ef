"""An optimization's state: enough to continue it exactly, and its one file format (npz).

Everything here is NumPy, so a checkpoint written on one backend resumes on another. The Adam
loop fills `step`, `pixels`, the moments and histories; the multiscale schedule adds `stage` and
`earlier`; the worker stores each item's `part` under its key with `to_bytes`/`from_bytes`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

Histories = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class State:
    """Where a run stands after `step` steps of its current stage."""

    step: int
    pixels: np.ndarray  # [B, H, W, 3]; for items already stopped (stop_tol), their final pixels
    momentum: np.ndarray  # Adam's first moments, [B, H, W, 3] (zeros under L-BFGS)
    velocity: np.ndarray  # Adam's second moments, [B, H, W, 3]
    histories: Histories  # each item's total loss per step of this stage so far
    stopped: tuple[bool, ...]
    stage: int = 0  # multiscale: the stage this state is in
    earlier: Histories = ()  # each item's history of the stages before
    finished: np.ndarray | None = None  # an animation run in chunks: the frames finished before this chunk
    finished_histories: Histories = ()  # and their histories

    def part(self, start: int, stop: int) -> "State":
        """Items start..stop-1's share (one item, or a sprite sheet's cells), as a batch of their own."""
        return State(self.step, self.pixels[start:stop], self.momentum[start:stop], self.velocity[start:stop],
                     self.histories[start:stop], self.stopped[start:stop], self.stage, self.earlier[start:stop],
                     self.finished, self.finished_histories)  # only a lone animation has finished frames

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, step=self.step, pixels=self.pixels, momentum=self.momentum, velocity=self.velocity,
                 stopped=np.asarray(self.stopped), stage=self.stage, **_ragged("history", self.histories),
                 **_ragged("earlier", self.earlier), **_ragged("finished_history", self.finished_histories),
                 **({} if self.finished is None else {"finished": self.finished}))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "State":
        with np.load(io.BytesIO(data)) as z:
            return cls(int(z["step"]), z["pixels"], z["momentum"], z["velocity"], _unragged(z, "history"),
                       tuple(bool(s) for s in z["stopped"]), int(z["stage"]), _unragged(z, "earlier"),
                       z["finished"] if "finished" in z else None, _unragged(z, "finished_history"))


def _ragged(name: str, rows: Histories) -> dict[str, np.ndarray]:
    """Per-cell float sequences of any lengths as npz arrays: values end to end, and their lengths."""
    return {name: np.asarray([v for row in rows for v in row], np.float64),
            f"{name}_lengths": np.asarray([len(row) for row in rows], np.int64)}


def _unragged(z, name: str) -> Histories:
    if f"{name}_lengths" not in z:
        return ()
    values, ends = z[name].tolist(), np.cumsum(z[f"{name}_lengths"]).tolist()
    return tuple(tuple(values[end - n:end]) for end, n in zip(ends, z[f"{name}_lengths"].tolist()))
