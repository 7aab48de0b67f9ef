"""What the terminal shows of a run or a stylize: a live progress bar, then how it ended.

Progress goes to stderr (tqdm), the summary to stdout; a run that was interrupted, or could not
write its metadata, says so in one line on stderr as well, so a scheduler's log shows it.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys

from batch_nst import storage
from batch_nst.job.runs import Summary


class RunProgress:
    """Live bar over the items to do: done / failed / to do and items per minute."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar = quiet, None

    def start(self, the_plan) -> None:
        from tqdm import tqdm

        self.todo, self.done = len(the_plan.todo), the_plan.done
        self.bar = tqdm(total=self.todo, unit="item", disable=self.quiet, file=sys.stderr, dynamic_ncols=True,
                        desc=f"{self.done} already done")

    def update(self, chunk, summary) -> None:
        """A finished chunk (a table of its records): the bar moves once per chunk, not per item."""
        self.bar.update(chunk.num_rows)
        elapsed = self.bar.format_dict["elapsed"] or 1e-9
        self.bar.set_postfix_str(f"ok {summary.ok}, failed {summary.failed}, to do {self.todo - self.bar.n}, "
                                 f"{60 * self.bar.n / elapsed:.1f} items/min", refresh=False)

    def pool(self, status) -> None:
        """The workers running and waiting (`2 of 8 workers running, 6 waiting for {GPU: 1}`);
        without a bar, a line whenever none runs, so a wait is never silent."""
        if self.quiet or self.bar is None:
            if not status.running:
                print(f"batch-nst: {status}", file=sys.stderr)
        else:
            self.bar.set_description_str(f"{self.done} already done; {status}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def print_run(summary: Summary, root: str, as_json: bool) -> None:
    """The run's counts (a table, or one JSON object), and its problems on stderr."""
    where = storage.redact(storage.join(root, "runs", summary.run_id + ".json"))
    for problem in _problems(summary, where):
        print(f"batch-nst: {problem}", file=sys.stderr)
    if as_json:
        shown = summary.to_json()  # flat counts, as `run --json` always printed them
        print(json.dumps({"run_id": shown["run_id"], "status": shown["status"], **shown["counts"],
                          **{k: shown[k] for k in ("seconds", "failures", "interrupted_by", "metadata_error")}}))
        return
    rows = [("ok", summary.ok), ("failed", summary.failed), ("invalid", summary.invalid),
            ("skipped (already done)", summary.skipped), ("not finished", summary.not_finished)]
    ran = summary.ok + summary.failed
    print(f"run {summary.run_id} {summary.status} after {summary.seconds:.1f}s"
          + (f" ({60 * ran / summary.seconds:.1f} items/min)" if ran and summary.seconds else ""))
    for name, count in rows:
        if count or name != "not finished":
            print(f"  {name:<24}{count:>8}")
    for failure in summary.failures:
        print(f"  failed {failure['id']}: {failure['error']}")
    print(f"metadata: {storage.redact(storage.join(root, 'metadata'))}  summary: {where}")


def _problems(summary: Summary, where: str) -> list[str]:
    """One line each for an interruption and for metadata that could not be written."""
    lines = []
    if summary.interrupted_by:
        lines.append(f"interrupted by {signal.Signals(summary.interrupted_by).name}: {summary.ok + summary.failed} "
                     f"item(s) finished and recorded, {summary.not_finished} not finished (the next run does "
                     f"them); summary {where}")
    if summary.metadata_error:
        lines.append(f"metadata not written: {summary.metadata_error}")
    return lines


class StepProgress:
    """`stylize`'s tqdm bar over optimization steps, fed by the engine's progress callback."""

    def __init__(self, steps: int, quiet: bool):
        self.steps, self.quiet = steps, quiet

    def __enter__(self):
        from tqdm import tqdm

        self.bar = tqdm(total=self.steps, unit="step", disable=self.quiet, file=sys.stderr, dynamic_ncols=True)
        return self._update

    def _update(self, progress) -> None:
        if self.bar.n >= self.steps:  # an animation in chunks: the bar starts over with each chunk
            self.bar.reset()
        self.bar.update(1)
        if progress.step % 10 == 0 or progress.step == progress.steps:
            self.bar.set_postfix(loss=f"{progress.losses['total']:.4g}", refresh=False)

    def __exit__(self, *exc) -> None:
        self.bar.close()


def print_stylize(result, about: dict, as_json: bool) -> None:
    """`stylize`'s summary of its `transfer.Result`: one JSON object, or one line for people."""
    from batch_nst.params import TERMS

    summary = {
        **about, "width": result.image.width, "height": result.image.height,
        "optimized_at": [result.width, result.height], "steps": result.steps, "precision": result.precision,
        "seconds": round(result.seconds, 3), "losses": dataclasses.asdict(result.losses),
        "style_distance": result.style_distance,
    }
    if as_json:
        print(json.dumps(summary))
        return
    terms = ", ".join(f"{name} {getattr(result.losses, name):.6g}" for name in TERMS[1:])
    print(f"wrote {summary['output']} ({result.image.width}x{result.image.height}): weighted total "
          f"{result.losses.total:.6g} (unweighted terms: {terms}; style distance {result.style_distance:.4g}) after "
          f"{result.steps} {result.precision} steps on {summary['backend']} at {result.width}x{result.height} in "
          f"{result.seconds:.1f}s")
