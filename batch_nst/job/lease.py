"""One run at a time per output root: a lease file, `runs/_lease.json`, kept alive by a heartbeat.

A second run on the same root refuses with LockedError (exit 2) instead of racing the first for
the same items. A run whose driver died leaves its lease behind; the next run takes it over once
it is stale: at once when the holder was on this host and its process is gone, otherwise after
STALE_AFTER seconds without a heartbeat.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from typing import Any, Iterator

from batch_nst import storage
from batch_nst.errors import BatchNSTError, LockedError

HEARTBEAT, STALE_AFTER = 30.0, 120.0  # seconds


@contextlib.contextmanager
def hold(root: str, run_id: str) -> Iterator[str | None]:
    """Hold the root's lease for the block; LockedError when a live run holds it. Yields the run
    id of a dead run whose stale lease was taken over (its summary says `running`), else None."""
    uri = storage.join(root, "runs", "_lease.json")
    dead = _acquire(uri, run_id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(uri, run_id, stop), daemon=True)
    beat.start()
    try:
        yield dead
    finally:
        stop.set()
        beat.join()
        if _holder(uri).get("run_id") == run_id:
            storage.remove([uri])


def _acquire(uri: str, run_id: str) -> str | None:
    if storage.create(uri, _body(run_id)):
        return None
    holder = _holder(uri)
    if holder and not _stale(holder):
        age = time.time() - holder.get("heartbeat", 0)
        raise LockedError(
            f"output root {storage.redact(storage.parent(storage.parent(uri)))} is in use by run "
            f"{holder.get('run_id')} (host {holder.get('host')}, pid {holder.get('pid')}, last heartbeat "
            f"{age:.0f}s ago). Wait for it to finish; a run whose driver died is taken over after "
            f"{STALE_AFTER:.0f}s without heartbeat (at once on the same host)."
        )
    storage.remove([uri])  # stale: its driver is gone
    if not storage.create(uri, _body(run_id)):
        raise LockedError(f"another run took over the stale lease {storage.redact(uri)} first")
    return holder.get("run_id")


def _heartbeat(uri: str, run_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT):
        with contextlib.suppress(BatchNSTError):  # a missed beat is retried at the next one
            storage.write_bytes(uri, _body(run_id))


def _body(run_id: str) -> bytes:
    return json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                       "heartbeat": time.time()}).encode()


def _holder(uri: str) -> dict[str, Any]:
    try:
        return json.loads(storage.read_bytes(uri))
    except (BatchNSTError, ValueError):
        return {}


def _stale(holder: dict[str, Any]) -> bool:
    if holder.get("host") == socket.gethostname():
        try:
            os.kill(int(holder.get("pid", 0)), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError, OSError):
            pass
    return time.time() - float(holder.get("heartbeat", 0)) > STALE_AFTER
