"""Stopping a run cleanly on SIGINT or SIGTERM (Ctrl-C, a scheduler, a spot reclaim).

The first signal stops dispatching; the items in flight get `grace` seconds to finish, their
records are gathered and the run ends `interrupted` (exit 128 + the signal: 130, 143). A second
signal stops at once (KeyboardInterrupt). The handlers only set a flag: an exception raised
inside a Ray call breaks it (SystemError), so the dispatch loop polls `expired()` instead.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
from typing import Iterable, Iterator, TypeVar

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_SECONDS = 1.0  # how often a waiting driver looks at the grace deadline
T = TypeVar("T")


class Stop:
    """The signal that asked a run to stop, if any, and the end of its grace period."""

    def __init__(self, grace: float):
        self.grace = grace
        self.signal: int | None = None
        self._deadline = math.inf

    @contextlib.contextmanager
    def handling(self) -> Iterator["Stop"]:
        """Our handlers for the block, the previous ones back after it (main thread only: Python
        delivers signals there)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        self.arm()
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def arm(self) -> None:
        """(Re)install the handlers: ray.init installs its own SIGTERM handler (exit 15)."""
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal = signum
        self._deadline = time.monotonic() + self.grace
        print(f"batch-nst: {signal.Signals(signum).name}: no new items; the items in flight get up to "
              f"{self.grace:g}s to finish (signal again to stop now)", file=sys.stderr)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def expired(self) -> bool:
        """A stop was asked for and its grace period is over: stop waiting for items in flight."""
        return time.monotonic() >= self._deadline

    def guard(self, chunks: Iterable[T]) -> Iterator[T]:
        """`chunks` until a stop is asked for: what was not dispatched yet stays for the next run."""
        for chunk in chunks:
            if self.requested:
                return
            yield chunk
