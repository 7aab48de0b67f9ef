"""The nightly job: list the asset library into a manifest, then run it incrementally.

    python jobs/nightly.py --library 's3://studio/assets/**/*.png' --style s3://studio/styles/ink.png \
        --output-root s3://studio/stylized [any `batch-nst run` option, e.g. --steps 500]

Assets added during the day get a row (ids come from their paths, so existing ids stay the same
from night to night); unchanged items are skipped by their keys. Exit code: that of `batch-nst
run` (0 ok, 1 some items failed or the metadata could not be written, 2 nothing run, 130/143
interrupted by SIGINT/SIGTERM), so a scheduler can alert or retry on it.
"""

from __future__ import annotations

import argparse
import sys

from batch_nst.cli import main as batch_nst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", required=True, help="glob over the assets (any URI, ** allowed)")
    parser.add_argument("--style", action="append", required=True, help="style image URI (repeatable)")
    parser.add_argument("--output-root", required=True, help="where images/, metadata/, runs/ live")
    parser.add_argument("--manifest", help="where to write tonight's manifest (default OUTPUT_ROOT/manifest.jsonl)")
    args, run_options = parser.parse_known_args(argv)
    manifest = args.manifest or args.output_root.rstrip("/") + "/manifest.jsonl"
    styles = [flag for style in args.style for flag in ("--style", style)]
    code = batch_nst(["manifest", args.library, *styles, "-o", manifest])
    if code != 0:
        return code
    return batch_nst(["run", manifest, "-o", args.output_root, *run_options])


if __name__ == "__main__":
    sys.exit(main())
