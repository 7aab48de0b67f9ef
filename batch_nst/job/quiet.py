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
