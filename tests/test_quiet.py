"""Quiet mode: Ray's own notices stay out of a quiet driver's terminal."""

from ray._private import worker as ray_worker

from batch_nst.job import quiet


def test_ray_s_error_notices_are_dropped_unless_verbose(monkeypatch):
    printed = []
    monkeypatch.setattr(ray_worker, "print_to_stdstream", lambda data, **kw: printed.append(data["lines"]))
    quiet.hush_ray_errors(verbose=True)
    ray_worker.print_to_stdstream({"lines": ["verbose"], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    quiet.hush_ray_errors(verbose=False)
    quiet.hush_ray_errors(verbose=False)  # twice (a second run in one process) wraps once
    ray_worker.print_to_stdstream({"lines": ["Task WorkerActor.process failed"], "pid": "raylet", "is_err": False},
                                  ignore_prefix=False)
    ray_worker.print_to_stdstream({"lines": ["a worker's own line"], "pid": 123, "is_err": True}, ignore_prefix=False)
    assert printed == [["verbose"], ["a worker's own line"]]
