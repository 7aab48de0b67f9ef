"""The batch job: manifests, the Ray driver and its elastic pool of workers, records and run summaries.

It may import the engine (only the worker, inside the actor, so the driver never loads a framework),
`batch_nst.assets`, `batch_nst.storage`, `batch_nst.weights`, `batch_nst.params` and `batch_nst.errors`;
never the CLI or the report.
"""
