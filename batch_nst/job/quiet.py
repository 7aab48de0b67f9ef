"""Quiet by default: a command shows batch-nst's own progress, summary and errors only.

TensorFlow, CUDA and Ray talk on stderr (`failed call to cuInit`, absl's "log messages before
InitializeLog", cudart stubs, Ray's token warning). `--verbose` shows all of it. Some of it comes
from C++ before any log level applies, so the native stderr of TensorFlow's start is captured
(`native_stderr`) and replayed only if that start fails: errors are always shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Any, Iterator

QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # TensorFlow's C++ logging: errors of its own only via Python


def worker_env(verbose: bool) -> dict[str, str]:
    """Environment for Ray's workers (each sets it itself, pool.WorkerActor) and this process."""
    return {} if verbose else dict(QUIET_ENV)


def configure(verbose: bool) -> None:
    """Set this process's environment before TensorFlow loads; a user's own setting wins."""
    for name, value in worker_env(verbose).items():
        os.environ.setdefault(name, value)


def ray_options(verbose: bool) -> dict[str, Any]:
    """ray.init's logging options: the workers' output and Ray's warnings only when verbose
    (item errors reach the driver in records, lost workers as exceptions)."""
    return {"logging_level": "INFO" if verbose else "ERROR", "log_to_driver": verbose}


def hush_ray_errors(verbose: bool) -> None:
    """Unless verbose, drop the error notices Ray prints in every driver (`(raylet) Task
    WorkerActor.process failed ...`, the OOM killer's paragraph after a killed worker or a SIGINT).
    Ray 2.60 prints them from a thread of its own (`ray._private.worker.listen_error_messages`, via
    the module's `print_to_stdstream`) whatever `log_to_driver` says; batch-nst reports the same
    events itself: items' errors in their records, lost workers in the summary."""
    if verbose:
        return
    from ray._private import worker

    shown = getattr(worker.print_to_stdstream, "__wrapped__", worker.print_to_stdstream)

    def printing(data: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        if data.get("pid") != "raylet":
            shown(data, *args, **kwargs)

    printing.__wrapped__ = shown  # type: ignore[attr-defined]
    worker.print_to_stdstream = printing


@contextlib.contextmanager
def native_stderr(verbose: bool) -> Iterator[None]:
    """File descriptor 2 captured for the block unless verbose; replayed when the block raises."""
    if verbose:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            os.write(2, captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
