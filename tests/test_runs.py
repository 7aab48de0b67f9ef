"""Run summaries (runs/<run_id>.json): a run whose metadata could not be written ends `failed`
saying why and the next run gathers its records; a driver that fails mid-run ends `crashed`."""

import json

import pyarrow.dataset as pads
import pytest

from batch_nst.job import driver as job, records
from batch_nst.errors import StorageError
from batch_nst.params import StyleParams


def _tiny(library, **overrides):
    return job.JobConfig(manifest=str(library / "m.csv"), output_root=str(library / "out"), weights=overrides.pop("weights"),
                         params=StyleParams(steps=1, max_size=16), workers=1, **overrides)


def test_metadata_that_cannot_be_written_loses_no_failure_and_the_next_run_says_why(
        ray_session, library, legacy_weights_path, monkeypatch, capsys):
    """Defect 4: on a full disk the driver died on the parquet write (exit 2), the failure
    reasons were gone and the summary stayed `running`."""
    with open(library / "m.csv", "a") as f:
        f.write("gone,missing.png,style.png\n")

    def full_disk(root, name, recs):
        raise StorageError(f"cannot write {root}/metadata/{name}.parquet: OSError: [Errno 28] No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(records, "write_part", full_disk)
        summary = job.run(_tiny(library, weights=legacy_weights_path))
    assert (summary.ok, summary.invalid, summary.status, summary.exit_code) == (6, 1, "failed", 1)
    assert "7 record(s) could not be written" in summary.metadata_error and "No space left" in summary.metadata_error
    stored = json.loads((library / "out" / "runs" / f"{summary.run_id}.json").read_text())
    assert stored["status"] == "failed" and "No space left" in stored["metadata_error"]
    capsys.readouterr()
    again = job.run(_tiny(library, weights=legacy_weights_path))
    assert f"gathered 7 record(s) left pending by run {summary.run_id}: it could not write its metadata" in (
        capsys.readouterr().err)
    assert (again.ok, again.skipped, again.invalid) == (0, 6, 1)
    recs = pads.dataset(str(library / "out" / "metadata")).to_table().to_pylist()
    first = [r for r in recs if r["run_id"] == summary.run_id]
    assert len(first) == 7 and [r["error"] for r in first if r["id"] == "gone"][0].startswith("no such file")


def test_a_driver_that_fails_mid_run_ends_its_summary_crashed(ray_session, library, legacy_weights_path):
    """Defect 5: a run's summary stayed `running` after any crash."""
    def crash(chunk, summary):
        raise RuntimeError("the progress display broke")

    with pytest.raises(RuntimeError):
        job.run(_tiny(library, weights=legacy_weights_path), on_chunk=crash)
    (summary_file,) = (library / "out" / "runs").glob("2*.json")
    stored = json.loads(summary_file.read_text())
    assert stored["status"] == "crashed" and "the progress display broke" in stored["crash"]
    # the chunk that crashed it, and whatever the workers had finished and left pending by then
    # (gathered at the end: defect 10 of issue 20), each counted once and written once
    written = records.read(str(library / "out")).to_pylist()
    assert stored["counts"]["ok"] == sum(r["status"] == "ok" for r in written) >= 1
    assert len({r["id"] for r in written}) == len(written)
    assert not (library / "out" / "runs" / "_lease.json").exists()
