"""What each `batch-nst` command does with its parsed arguments (batch_nst.cli builds the parser).

One `cmd_<name>` per command: it turns the flags into the configs the work takes (`job_config`,
`style_params`), calls the module that does the work, prints what came of it and returns the exit
code (batch_nst.cli's docstring says which). Each imports what it needs inside itself:
the framework loads only for the commands that run it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from batch_nst.job import quiet
from batch_nst.errors import BatchNSTError
from batch_nst.params import StyleParams

EXIT_OK, EXIT_FAILED_ITEMS, EXIT_NOT_RUN = 0, 1, 2


def job_config(args: argparse.Namespace):
    """The JobConfig the flags ask for (`plan` has no pool options: JobConfig's defaults)."""
    from batch_nst.job.driver import JobConfig

    from batch_nst.engine import backend

    pool = {name: getattr(args, name) for name in ("workers", "gpus_per_worker", "address", "wait_timeout",
                                                   "max_attempts", "batch_items", "batch_pixels", "checkpoint_every",
                                                   "chunk_seconds", "grace")
            if hasattr(args, name)}
    return JobConfig(manifest=args.manifest, output_root=args.output_root, weights=args.weights,
                     params=style_params(args), force=args.force, skip_invalid=args.skip_invalid,
                     max_pixels=args.max_pixels,
                     backend=backend.resolve(args.backend), verbose=args.verbose, **pool)


def style_params(args: argparse.Namespace) -> StyleParams:
    """The StyleParams the flags ask for; unset flags keep the defaults."""
    return StyleParams.from_mapping(vars(args))


def cmd_stylize(args: argparse.Namespace) -> int:
    from batch_nst.assets import animation, images
    from batch_nst.engine import backend
    from batch_nst import console, storage, weights

    with quiet.native_stderr(args.verbose):  # the framework's start: CUDA probing, absl's notices
        engine = backend.use(args.backend)  # before the engine imports Keras; `auto` probes this machine
        from batch_nst.engine.optimize import Optimizer
        from batch_nst.engine.transfer import batch_key, stylize
        from batch_nst.engine.vgg import Extractor
    params = style_params(args)
    content = animation.decode(storage.read_bytes(args.content), storage.redact(args.content), args.max_pixels)
    extension = animation.extension_of(content)
    if not args.output.lower().endswith(f".{extension}"):
        raise BatchNSTError(f"output must be a .{extension} file (the content's format), got {args.output}")
    style = [images.decode(storage.read_bytes(uri), storage.redact(uri), args.max_pixels)
             for uri in args.style.split(";")]  # several styles: blended by --style-blend
    params.blend_weights(len(style))
    batch_key(content, params, storage.redact(args.content))  # a sheet that does not split: named, before any work
    with quiet.native_stderr(args.verbose):
        optimizer = Optimizer(Extractor(weights.resolve_weights(args.weights)))
    with console.StepProgress(sum(params.stages()), args.quiet) as on_step:
        result = stylize(content, style, params=params, extractor=optimizer, on_step=on_step)
    storage.write_bytes(args.output, animation.encode_output(result.image))
    console.print_stylize(result, {
        "output": storage.redact(args.output), "backend": engine["backend"], "params": dataclasses.asdict(params),
        "weights": optimizer.extractor.weights.identity}, args.json)
    return EXIT_OK


def cmd_weights_fetch(args: argparse.Namespace) -> int:
    from batch_nst import storage, weights

    sha256 = weights.fetch(args.uri, args.source)
    print(f"stored {args.source} VGG19 no-top weights at {storage.redact(args.uri)}\nsha256 {sha256}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from batch_nst.job import driver

    the_plan = driver.plan(job_config(args))
    counts = {"done": the_plan.done, "todo": len(the_plan.todo), "invalid": len(the_plan.invalid),
              "steps": the_plan.steps}
    reasons = [{"row": item.row, "id": item.id, "error": why} for item, why in the_plan.invalid[:10]]
    if args.json:
        print(json.dumps({**counts, "invalid_reasons": reasons}))
        return EXIT_OK
    print(f"{counts['done']} done, {counts['todo']} to do, {counts['invalid']} invalid; "
          f"estimated work: {counts['steps']} optimization steps")
    for r in reasons:
        print(f"  invalid row {r['row']} ({r['id']}): {r['error']}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from batch_nst import report

    written = report.write(args.output_root, args.run_id, sort=args.sort)
    if args.json:
        print(json.dumps(dataclasses.asdict(written)))
    else:
        print(f"{written.uri}: {written.items} items ({written.ok} ok, {written.failed} failed, "
              f"{written.outliers} outliers, {written.noisy} noisy, {written.lost} with the asset lost to review), "
              f"{written.thumbnails} new thumbnails")
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    from batch_nst.job import compact

    done = compact.under_lease(args.output_root)
    if args.json:
        print(json.dumps(dataclasses.asdict(done)))
    else:
        print(f"{done.inputs} metadata file(s) compacted into {done.outputs} ({done.records} records, unchanged); "
              f"{done.deleted} replaced file(s) deleted")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from batch_nst import console
    from batch_nst.job import driver

    bar = console.RunProgress(args.quiet)
    try:
        summary = driver.run(job_config(args), on_chunk=bar.update, on_start=bar.start, on_pool=bar.pool)
    finally:
        bar.close()
    console.print_run(summary, args.output_root, args.json)
    return summary.exit_code


def cmd_manifest(args: argparse.Namespace) -> int:
    from batch_nst import storage
    from batch_nst.job import library, manifest

    table = library.from_glob(args.glob, args.style)
    if table.num_rows == 0:
        raise BatchNSTError(f"no file matches {storage.redact(args.glob)}")
    manifest.write(table, args.output)
    print(f"wrote {storage.redact(args.output)}: {table.num_rows} rows "
          f"({table.num_rows // len(args.style)} assets x {len(args.style)} styles)")
    return EXIT_OK
