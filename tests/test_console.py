"""What a run and a stylization print: the counts, the problems on stderr, one JSON object."""

import json
import signal

from batch_nst import console
from batch_nst.job.runs import Summary


def test_a_run_prints_its_counts_failures_and_where_its_summary_is(capsys):
    summary = Summary("r1", ok=3, failed=1, skipped=2, seconds=60.0, failures=[{"id": "c4", "error": "broken"}])
    console.print_run(summary, "/out", as_json=False)
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == "run r1 failed after 60.0s (4.0 items/min)"
    assert "  failed c4: broken" in out and "not finished" not in out and err == ""
    assert out.splitlines()[-1] == "metadata: /out/metadata  summary: /out/runs/r1.json"


def test_an_interrupted_run_says_so_on_stderr_and_its_json_is_one_object(capsys):
    summary = Summary("r2", ok=1, not_finished=2, interrupted_by=int(signal.SIGTERM), metadata_error="disk full")
    console.print_run(summary, "memory://out", as_json=True)
    out, err = capsys.readouterr()
    shown = json.loads(out)
    assert (shown["status"], shown["ok"], shown["not_finished"], shown["interrupted_by"]) == (
        "interrupted", 1, 2, "SIGTERM")
    assert "interrupted by SIGTERM: 1 item(s) finished and recorded, 2 not finished" in err
    assert "metadata not written: disk full" in err
