"""``vidsr batch``: folders of recordings, resumable after any crash, one child process per file."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from vidsr.commands.common import emit_json, model_options, processing_options
from vidsr.errors import UsageError

# Options passed through to each file's `vidsr upscale`, and which of them decide what the outputs are.
_PASSED = ("model", "quality", "scale", "runtime", "device", "precision", "tile", "degradation", "ensemble", "batch",
           "codec", "crf", "preset", "pix_fmt", "fmt", "start", "duration", "no_audio", "no_subtitles", "deinterlace",
           "compare", "strict", "temporal_filter")


def passthrough(ctx: click.Context) -> tuple[list[str], dict[str, Any]]:
    """The upscale arguments for each child, and the option values the journal records."""
    args: list[str] = []
    recorded: dict[str, Any] = {}
    for param in ctx.command.params:
        if param.name not in _PASSED:
            continue
        value = ctx.params[param.name]
        recorded[param.name] = value
        flag = max(param.opts, key=len)
        if isinstance(param, click.Option) and param.is_flag:
            if value:
                args.append(flag)
        elif value is not None and value != param.default:
            args += [flag, str(value)]
    return args, recorded


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; it mirrors the input tree and holds the journal.")
@click.option("-r", "--recursive", is_flag=True, help="Take files in sub-folders too.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Files at once; the cores are shared between them.")
@click.option("--resume", is_flag=True, help="Continue the batch whose journal is in OUTDIR.")
@click.option("--skip-existing", is_flag=True, help="Leave files whose output already exists (recorded skipped).")
@click.option("--retry-failed", is_flag=True, help="With --resume: try the files that failed before once more.")
@click.option("--retries", type=click.IntRange(min=0), default=0, show_default=True,
              help="Try a failing file this many more times.")
@click.option("--ray", "ray_address", default=None, metavar="auto|local|ADDRESS",
              help="Run the files as Ray tasks: auto (the running cluster, else a local one), local, or an address.")
@model_options
@processing_options
@click.option("-y", "--overwrite", is_flag=True, help="Replace outputs that exist (without a journal entry).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every file's state.")
@click.option("-q", "--quiet", is_flag=True, help="No per-file lines and no table; only failures are named.")
@click.option("--no-estimate", is_flag=True, help="Start at once, without the dry run that prices the batch.")
@click.pass_context
def batch(ctx: click.Context, inputs: tuple[str, ...], outdir: Path, recursive: bool, jobs: int, resume: bool,
          skip_existing: bool, retry_failed: bool, retries: int, ray_address: str | None, overwrite: bool,
          as_json: bool, no_estimate: bool, **_: Any) -> int:
    """Upscale every video (and image) in INPUT... (files, folders, globs) into OUTDIR.

    A journal in OUTDIR (.vidsr-batch.json) records each file: pending, running, done (with the output's sha256)
    or failed (with the reason). After a crash, even kill -9, --resume finishes the rest: nothing done is redone,
    and a file that was cut off is redone from scratch. A bad file never stops the batch; the exit code is 1 if
    any file failed.

    \b
    Examples:
      vidsr batch footage/ -r -o upscaled/ --jobs 2
      vidsr batch footage/ -r -o upscaled/ --resume
      vidsr batch 'cams/*/2026-11-*.mp4' -o out/ --model vdsr --codec libx265
      vidsr batch footage/ -r -o upscaled/ --ray auto
      vidsr batch cams/ -r -o out/ --quality fast --degradation heavy   # CCTV folders: the fast tier

    Before the first file starts it says the frames to do and about how long they take, from a dry run of the
    first video on this machine (--json has it as "estimate").
    """
    from vidsr.batch.inputs import collect
    from vidsr.batch.journal import JOURNAL, Journal
    from vidsr.batch.runner import run_local, run_ray
    from vidsr.batch.session import BatchSession
    from vidsr.runtime.cpu import default_threads

    args, options = passthrough(ctx)
    items = collect(inputs, recursive, outdir, ctx.params["codec"], ctx.params["fmt"])
    outdir.mkdir(parents=True, exist_ok=True)
    lock = _lock(outdir)  # noqa: F841 - held until the process ends, however it ends
    if not (outdir / JOURNAL).exists() and not (skip_existing or overwrite):
        clash = [outdir / i.rel for i in items if (outdir / i.rel).exists()]
        if clash:
            raise UsageError(f"{clash[0]} exists{f' (and {len(clash) - 1} more)' if len(clash) > 1 else ''} and "
                             "is not from a batch; add --skip-existing or -y")
    journal = Journal.open(outdir, options, {i.rel: str(i.src) for i in items}, resume)
    quiet = as_json or ctx.params["quiet"]
    session = BatchSession(journal, retries, log=(lambda line: None) if quiet else
                           (lambda line: click.echo(f"vidsr: {line}", err=True)))
    todo = session.plan(items, outdir, retry_failed, skip_existing, overwrite)
    threads = max(1, default_threads() // jobs)
    env_extra = {k: v for k, v in os.environ.items() if k.startswith("VIDSR_")}
    expected = None if no_estimate else _estimate(ctx, todo, args, jobs, env_extra, quiet)
    try:
        if ray_address:
            gpus = 1.0 if ctx.params["device"] == "cuda" else 0.0
            run_ray(ray_address, todo, args, threads, gpus, env_extra, session.started, session.finished,
                    lambda line: click.echo(f"vidsr: {line}", err=True))
        else:
            run_local(todo, args, jobs, threads, env_extra, session.started, session.finished,
                      on_interrupt=lambda: setattr(session, "stopping", True))
    except KeyboardInterrupt:
        session.stopping = True
        for key, entry in journal.files.items():
            if entry["state"] == "running":  # a Ray task cut off: not the file's fault either
                journal.update(key, state="pending", interrupted=True)
        raise
    return _report(journal, outdir, as_json, quiet, expected)


def _estimate(ctx: click.Context, todo: list, args: list[str], jobs: int, env_extra: dict[str, str],
              quiet: bool) -> Any:
    """The batch's frames and expected time, said before the first file starts (``vidsr.batch.estimate``)."""
    from vidsr.batch.estimate import estimate_batch
    from vidsr.commands.upscale import parse_time
    from vidsr.runtime.cpu import default_threads

    if not todo:
        return None
    p = ctx.params
    expected = estimate_batch(todo, args, int(p["scale"]), parse_time(p["start"]) or 0.0, parse_time(p["duration"]),
                              default_threads(), jobs, env_extra)
    if not quiet:  # a batch that cannot say what it will take says why, and runs all the same
        click.echo(f"vidsr: {expected.line() if not isinstance(expected, str) else 'no estimate: ' + expected}",
                   err=True)
    return None if isinstance(expected, str) else expected


def _lock(outdir: Path):
    """One batch per OUTDIR at a time; the lock goes with the process, even on kill -9."""
    import fcntl

    f = open(outdir / ".vidsr-batch.lock", "w")  # noqa: SIM115 - must stay open for the life of the process
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UsageError(f"another vidsr batch is writing to {outdir}") from None
    return f


def _report(journal: Any, outdir: Path, as_json: bool, quiet: bool, expected: Any = None) -> int:
    """--json: the whole journal on stdout. Otherwise a table for people, on stderr with the rest of the log, so
    that stdout stays empty (data or nothing); -q leaves only the line that names failures."""
    counts = journal.counts()
    failed = {k: e for k, e in journal.files.items() if e["state"] == "failed"}
    if as_json:
        emit_json({"outdir": str(outdir), "journal": str(journal.path), "counts": counts, "files": journal.files,
                   "estimate": expected.as_dict() if expected else None})
    elif not quiet:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"vidsr batch -> {outdir}")
        for col in ("file", "state", "frames", "seconds", "error"):
            table.add_column(col)
        for key, e in journal.files.items():
            table.add_row(key, e["state"], str(e.get("frames", "")), str(e.get("seconds", "")), e.get("error", ""))
        Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160).print(table)
        click.echo("; ".join(f"{n} {s}" for s, n in sorted(counts.items())), err=True)
    if failed and not as_json:
        click.echo(f"vidsr: {len(failed)} file(s) failed: {', '.join(failed)}", err=True)
    return 1 if failed else 0
