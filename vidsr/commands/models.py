"""``vidsr models``: what is shipped, and how good and how costly each engine is."""

from __future__ import annotations

import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from vidsr.commands.common import emit_json
from vidsr.errors import VidsrError
from vidsr.models.engine import (
    DEFAULT_QUALITY,
    DEGRADATIONS,
    QUALITY_CAPS,
    Engine,
    VideoGain,
    best_engine,
    engines_dir,
    in_tier,
    list_engines,
    video_choice,
)
from vidsr.models.flops import gflop_per_output_mp


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines instead of a table.")
def models(as_json: bool) -> None:
    """List the shipped engines: scales, colour mode, size, cost and measured quality. `input` says what each
    engine is for: clean sources, real (compressed) or heavy (heavily compressed, noisy) footage, where `degraded`
    is its Y-PSNR on Set5 and Set14 under the degradation it was scored with (docs/REAL-FOOTAGE.md). `frames` says
    whether an engine restores each frame alone (1) or from the frames before it too (video: multi-frame engines,
    for videos only), and `vs 1-frame` what a multi-frame engine measured over the single-frame engine auto would
    run otherwise, on held-out sequences (its worst case over the degradations measured). The `auto` column says
    where `--model auto` (the default) runs each engine, at each scale for its kind of input: for images, for
    videos, or both, and in which `--quality` tiers (best, the default; balanced; fast). `int8 here` says whether
    the engine's int8 graph runs on this CPU kind (measured at least 1.5x as fast and within 0.1 dB), or what it
    measured instead.

    \b
    Example:
      vidsr models
    """
    rows: list[dict[str, Any]] = []
    labels: list[tuple[str, str]] = []
    engines = list_engines()
    if not engines:
        raise VidsrError(f"no engines in {engines_dir()} (a folder of engine folders, each with manifest.json and "
                         "model.safetensors" + ("; VIDSR_ENGINES names it: unset it for the shipped ones)"
                                                if os.environ.get("VIDSR_ENGINES") else ")"))
    uses = auto_uses(engines)
    for e in engines:
        m, t = e.manifest, e.manifest.training
        for s in e.scales:
            rows.append({"model": e.family, "engine": e.id, "scale": s, "colour": e.arch.colour,
                         "params": m.params, "gflop_per_mp": round(gflop_per_output_mp(e, s), 1),
                         "set5_psnr": e.eval_psnr("Set5", s), "set14_psnr": e.eval_psnr("Set14", s),
                         "steps": t.steps, "target_steps": t.target_steps,
                         "cpu_hours": t.cpu_hours, "cpu_hours_with_discarded": t.cpu_hours_with_discarded,
                         "input": e.degradation, "degraded_psnr": _round(e.degraded_psnr(s)),
                         "multi_frame": e.arch.recurrent, "vs_single_db": _worst_gain(e, s),
                         "auto": "images" in uses.get((e.id, s, DEFAULT_QUALITY), ()),
                         "auto_video": "video" in uses.get((e.id, s, DEFAULT_QUALITY), ()),
                         "auto_tiers": {q: uses[e.id, s, q] for q in QUALITY_CAPS if (e.id, s, q) in uses},
                         "int8": _int8(e, s)})
            labels.append((e.steps_label(), e.cpu_hours_label()))
    if as_json:
        for r in rows:
            emit_json(r)
        return
    table = Table(title="shipped engines (PSNR: Y, dB, vidsr eval)")
    for col in ("model", "engine", "input", "scale", "frames", "colour", "params", "GFLOP/MP out", "Set5", "Set14",
                "degraded", "vs 1-frame", "steps", "CPU-h", "int8 here", "auto"):
        # An engine's id is what --model takes: cut short, two heavy engines would read the same.
        longest = max((len(r["engine"]) for r in rows), default=0) if col == "engine" else None
        table.add_column(col, min_width=longest, no_wrap=col == "engine")
    for r, (steps, cpu_hours) in zip(rows, labels):
        def f(v):
            return "-" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)

        auto = _tiers_text(r["auto_tiers"])
        gain = "-" if r["vs_single_db"] is None else f"{r['vs_single_db']:+.2f}"
        table.add_row(r["model"], r["engine"], r["input"], f"x{r['scale']}", "video" if r["multi_frame"] else "1",
                      r["colour"], f"{r['params']:,}", f(r["gflop_per_mp"]), f(r["set5_psnr"]), f(r["set14_psnr"]),
                      f(r["degraded_psnr"]), gain, steps, cpu_hours, r["int8"]["short"], auto)
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 220).print(table)


def auto_uses(engines: list[Engine]) -> dict[tuple[str, int, str], list[str]]:
    """{(engine id, scale, tier): ["images"] and/or ["video"]}: where ``--model auto --quality TIER`` runs each engine
    for input of the engine's own kind (clean, real or heavy)."""
    uses: dict[tuple[str, int, str], list[str]] = {}
    for quality in QUALITY_CAPS:
        for scale in sorted({s for e in engines for s in e.scales}):
            tier = in_tier(engines, scale, quality)
            for kind in DEGRADATIONS:
                single = best_engine(tier, scale, kind)
                moving = video_choice(tier, scale, single)[0]
                for engine, what in ((single, "images"), (moving, "video")):
                    if engine.degradation == kind:
                        uses.setdefault((engine.id, scale, quality), []).append(what)
    return uses


def _tiers_text(tiers: dict[str, list[str]]) -> str:
    """"images, video (balanced, best)": each set of uses with the tiers that share it."""
    grouped: dict[str, list[str]] = {}
    for quality, what in tiers.items():
        grouped.setdefault(", ".join(what), []).append(quality)
    return "; ".join(f"{what} ({', '.join(qs)})" for what, qs in grouped.items())


def _int8(engine: Any, scale: int) -> dict[str, Any]:
    """Whether the engine ships an int8 graph at ``scale`` and whether auto runs it on this CPU kind, and why."""
    from vidsr.runtime.int8 import Int8Record, cpu_kind

    record = Int8Record.of(engine, scale)
    if record is None:
        return {"shipped": False, "used": False, "short": "-", "reason": "no int8 graph"}
    ok, why = record.verdict(cpu_kind())
    return {"shipped": True, "used": ok, "short": record.short(cpu_kind()), "reason": why}


def _worst_gain(engine, scale: int) -> float | None:
    gains = VideoGain.of(engine, scale)
    return round(min(g.gain_db for g in gains), 3) if gains else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
