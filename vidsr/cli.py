"""The ``vidsr`` command line. Stdout carries data (media or JSON) only; logs, progress and errors go to stderr.

Every failure is one line on stderr: exit 2 when the command line asks for something impossible, 1 when the work
fails. ``vidsr --debug ...`` shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_early(signum: int, _frame: object) -> None:
    # Ctrl-C or SIGTERM while the imports below run (about 2.5 s of torch, PyAV, OpenVINO): nothing has been
    # written yet, so one line and the signal's exit code, not a traceback from inside an import.
    os.write(2, b"vidsr: interrupted; no output was written\n")
    os._exit(128 + signum)


# A background job (nohup ... &) starts with SIGINT ignored, by convention: it stays ignored.
_SIGINT_IGNORED = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
if not _SIGINT_IGNORED:
    signal.signal(signal.SIGINT, _interrupted_early)
signal.signal(signal.SIGTERM, _interrupted_early)

import json  # noqa: E402
import threading  # noqa: E402
from typing import Any  # noqa: E402

from vidsr.runtime.cpu import tune_allocator  # noqa: E402

# Before anything starts a thread: glibc fixes its arena limit when the first thread needs an arena, so
# M_ARENA_MAX set later (as TorchRuntime used to) is silently ignored and the inference thread faulted ~2 GB of
# fresh pages per frame.
tune_allocator()

import click  # noqa: E402

from vidsr.commands.batch import batch  # noqa: E402
from vidsr.commands.bench import bench  # noqa: E402
from vidsr.commands.engine import engine_group  # noqa: E402
from vidsr.commands.evaluate import eval_command  # noqa: E402
from vidsr.commands.models import models  # noqa: E402
from vidsr.commands.quantize import quantize_command  # noqa: E402,F401 - registers `vidsr engine quantize`
from vidsr.commands.serve import serve  # noqa: E402
from vidsr.commands.train import train  # noqa: E402
from vidsr.commands.upscale import upscale  # noqa: E402
from vidsr.errors import VidsrError  # noqa: E402
from vidsr.files import placed  # noqa: E402
from vidsr.logs import route_ffmpeg_log  # noqa: E402

_STATE = {"debug": False, "signal": 0}


def _one_line(msg: str, code: int) -> int:
    click.echo(f"vidsr: error: {msg}", err=True)
    if os.environ.get("VIDSR_ERROR_JSON") == "1":
        # A batch parent (or a server's queue) reads the reason as data, not by matching our stderr's wording.
        click.echo(json.dumps({"error": msg, "exit_code": code}))
    return code


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the click group and maps every failure to one line and an exit code."""
    if not _SIGINT_IGNORED:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # from here on Ctrl-C cancels the run cleanly
    signal.signal(signal.SIGTERM, _terminate)
    args = list(sys.argv[1:] if argv is None else argv)
    # --debug anywhere before a "--" (after the subcommand too), since that is where people add it.
    head = args[: args.index("--")] if "--" in args else args
    if "--debug" in head:
        args.remove("--debug")
        _STATE["debug"] = True
    try:
        rv = cli.main(args=args, prog_name="vidsr", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.NoArgsIsHelpError as e:
        # 'vidsr' or 'vidsr engine' alone asks for help: print it as help (stdout, exit 0), not as an error.
        click.echo(e.ctx.get_help() if e.ctx else cli.get_help(click.Context(cli)))
        code = 0
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        code = _one_line(e.format_message() + hint, 2)
    except click.ClickException as e:
        code = _one_line(e.format_message(), e.exit_code)
    except (KeyboardInterrupt, click.Abort):
        if placed():
            click.echo(f"vidsr: interrupted after {', '.join(map(str, placed()))} was complete; it is kept", err=True)
        else:
            click.echo("vidsr: interrupted; no output was written", err=True)
        code = 128 + (_STATE["signal"] or signal.SIGINT)
    except BrokenPipeError:
        # The reader downstream went away. Quietly: a message would only hit another closed pipe.
        _silence_stdout()
        code = 141
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if _STATE["debug"]:
            raise
        code = _one_line(str(e) or type(e).__name__, e.exit_code if isinstance(e, VidsrError) else 1)
    _exit(code)


def _exit(code: int) -> None:
    """Exit with ``code``. A pipeline stage still inside a native call after a signal (run_threads leaves it
    behind) would make interpreter shutdown abort (SIGABRT, 'terminate called without an active exception'), so
    then the process ends at once, after flushing what it wrote; outputs were already cleaned up."""
    if any(t.name.startswith("vidsr-") and t.is_alive() for t in threading.enumerate()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _terminate(signum: int, _frame: Any) -> None:
    # SIGTERM takes the same path as Ctrl-C: the pipeline cancels and removes its temporary output.
    _STATE["signal"] = signum
    raise KeyboardInterrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--debug", is_flag=True, help="Show a traceback on errors.")
@click.version_option(package_name="vidsr")
def cli(debug: bool) -> None:
    """Video super-resolution: VDSR, EDSR, SRCNN and MDSR over a streaming PyAV pipeline.

    \b
    Examples:
      vidsr upscale samples/sample.mkv -o sample-x2.mkv
      cat in.mkv | vidsr upscale - -o - --format matroska > out.mkv
      vidsr eval --model edsr --scale 2 ../shared/data/test/Set5
      vidsr models
    """
    _STATE["debug"] = _STATE["debug"] or debug
    signal.signal(signal.SIGTERM, _terminate)
    route_ffmpeg_log(bool(_STATE["debug"]))


for _command in (upscale, eval_command, train, models, engine_group, bench, batch, serve):
    cli.add_command(_command)
