"""``vidsr train``."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from vidsr.commands.common import emit_json
from vidsr.errors import UsageError, VidsrError


@click.command()
@click.argument("recipe", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("../shared/data"), show_default=True, help="Folder holding train/ and test/.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Engine folder [engines/<id>].")
@click.option("--resume", is_flag=True, help="Continue from the checkpoint in the engine folder.")
@click.option("--restart", is_flag=True,
              help="Start again from step 0 although the engine folder holds a run (its weights are replaced).")
@click.option("--max-minutes", type=float, default=0.0, help="Stop (with a checkpoint) after this much wall time.")
@click.option("--max-steps", type=int, default=0, help="Stop after this many more steps.")
@click.option("--threads", type=click.IntRange(1, 256), default=None,
              help="Torch threads [every core]. Use fewer to leave cores for other work; results do not change.")
@click.option("--device", type=click.Choice(("cpu", "cuda")), default="cpu", show_default=True,
              help="cuda: train on a GPU (bf16 autocast), for runs beyond the CPU budget; not bit-reproducible.")
def train(recipe: Path, data_root: Path, out: Path | None, resume: bool, restart: bool, max_minutes: float,
          max_steps: int, threads: int | None, device: str) -> None:
    """Train the model a RECIPE describes, in resumable chunks.

    Writes engines/<id>/ (weights, manifest with the eval table, training state). Log lines go to stderr; a JSON
    line with the step reached goes to stdout. Ctrl-C or SIGTERM stops after the step in progress with a
    checkpoint (no manifest eval; exit 130/143); --resume continues exactly from it.

    \b
    Example:
      vidsr train recipes/edsr-baseline-x2.toml --data ../shared/data --max-minutes 60 --resume
      vidsr train recipes/srcnn-x2.toml --out /tmp/srcnn-try --max-steps 200   # a fresh run, elsewhere
      vidsr train recipes/edsr-baseline-x2.toml --device cuda --out /tmp/edsr-gpu   # on a GPU, elsewhere
    """
    import torch

    from vidsr.models.engine import engines_dir
    from vidsr.train.loop import STATE
    from vidsr.train.loop import train as run_training
    from vidsr.train.recipe import load_recipe

    try:
        r = load_recipe(recipe)
    except (KeyError, ValueError) as e:
        said = str(e)
        raise UsageError(said if said.startswith(str(recipe)) else f"{recipe}: bad recipe: {said}") from None
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU here")
    if resume and restart:
        raise UsageError("--resume and --restart contradict each other")
    folder = out or engines_dir() / r.id
    if not resume and not restart and (folder / STATE).is_file():
        # A fresh run would overwrite shipped (or hours-old) weights at its first checkpoint.
        raise UsageError(f"{folder} already holds a run; pass --resume to continue it, --out DIR to start one "
                         "elsewhere, or --restart to replace it")
    with _stop_between_steps() as stop:
        state = run_training(r, data_root, out, resume, max_minutes, max_steps,
                             lambda line: click.echo(line, err=True), threads=threads, should_stop=lambda: bool(stop),
                             device=device)
    emit_json({"id": r.id, "step": state.step, "cpu_hours": round(state.cpu_hours, 3)})
    if state.stopped:
        raise Stopped(f"stopped at step {state.step}: checkpoint written, the manifest was not; continue with "
                      "--resume", 128 + stop[0])


class Stopped(VidsrError):
    def __init__(self, msg: str, code: int):
        super().__init__(msg)
        self.exit_code = code


@contextmanager
def _stop_between_steps() -> Iterator[list[int]]:
    """SIGINT/SIGTERM ask the loop to stop after the step it is on, so the checkpoint it writes is one an
    uninterrupted run also passes through; a second signal stops at once (the last periodic checkpoint stands).
    A SIGINT that the shell set to ignored (a background job) stays ignored."""
    stop: list[int] = []

    def request(signum: int, _frame: object) -> None:
        if stop:
            raise KeyboardInterrupt
        stop.append(signum)
        click.echo("vidsr: stopping after this step; signal again to stop at once", err=True)

    signals = [signal.SIGTERM] + ([signal.SIGINT] if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN else [])
    previous = {s: signal.signal(s, request) for s in signals}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
