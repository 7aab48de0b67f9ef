"""One run per output root: a second run on a held root is refused naming the holder, and the
lease is released when the run ends."""

import os

import pyarrow.dataset as pads

from batch_nst.job import driver as job
from batch_nst.params import StyleParams


def test_a_second_run_on_the_same_root_refuses_clearly(ray_session, library, legacy_weights_path):
    from batch_nst.errors import LockedError

    root = str(library / "out")
    config = job.JobConfig(manifest=str(library / "m.csv"), output_root=root, weights=legacy_weights_path,
                           params=StyleParams(steps=2, max_size=48), workers=2)  # the lease under test, not the look
    refused = []

    def second_run(plan):
        """Started while the first run holds the root, just before it dispatches any work."""
        try:
            job.run(config)
        except LockedError as err:
            refused.append(str(err))

    summary = job.run(config, on_start=second_run)
    assert summary.ok == 6
    assert refused and "is in use by run" in refused[0] and summary.run_id in refused[0]
    again = job.run(config)  # the lease was released: a later run goes ahead and has nothing to do
    assert (again.ok, again.skipped) == (0, 6)
    recs = pads.dataset(os.path.join(root, "metadata")).to_table().to_pylist()
    assert sorted(r["id"] for r in recs) == [f"c{i}" for i in range(6)]  # each stylized once
