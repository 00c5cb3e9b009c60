"""``vidsr eval``: the papers' protocol on image folders (or sequences), model beside bicubic, on clean input or
under a named degradation."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vidsr.commands.common import build_upscaler, emit_json, model_options
from vidsr.degradation.spec import SPEC_HELP, Degradation, parse_spec
from vidsr.errors import UsageError
from vidsr.frames.motion_filter import MODES, wanted
from vidsr.models.engine import DEGRADATIONS
from vidsr.runtime.select import RuntimeSpec


def _specs(texts: tuple[str, ...]) -> list[Degradation | None]:
    out: list[Degradation | None] = []
    for text in texts:
        try:
            out.append(parse_spec(text))
        except ValueError as e:
            raise UsageError(f"--degrade {text!r}: {e}") from None
    return out or [None]


@click.command("eval")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@model_options
@click.option("--degrade", "degrade_specs", multiple=True, metavar="SPEC",
              help=f"Degrade each input before upscaling, through the real codecs with fixed seeds (repeatable): "
                   f"{SPEC_HELP}.")
@click.option("--video", is_flag=True,
              help="FOLDERS are sequences (a folder of frames, a folder of such folders, or clips), scored end to "
                   "end through the video path, with temporal stability (tOF) beside PSNR/SSIM.")
@click.option("--temporal-filter", type=click.Choice(MODES), default="auto", show_default=True,
              help="With --video: motion-compensated temporal filtering of the output, as vidsr upscale does "
                   "(auto: on for engines made for degraded input).")
@click.option("--frames", "max_frames", type=click.IntRange(min=2), default=60, show_default=True,
              help="With --video: score each sequence's first N frames.")
@click.option("--ensemble", is_flag=True, help="Geometric self-ensemble (8 flips/rotations): better, 8x slower.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(folders: tuple[Path, ...], model: str, quality: str, scale: str, runtime: str, device: str,
                 precision: str, tile: int, degradation: str, degrade_specs: tuple[str, ...], video: bool,
                 temporal_filter: str, max_frames: int, ensemble: bool, as_json: bool) -> None:
    """Y-PSNR/SSIM of a model and of bicubic on folders of HR images (or sequences with --video).

    Protocol (as the SR papers): modcrop, MATLAB bicubic downscale, model, round to 8 bits, Y of BT.601 studio
    range, shave SCALE pixels, PSNR and SSIM per image, mean over each folder. With --degrade the downscale is
    the spec's kernel, followed by its noise and codec (video codecs see a 5-frame pan, so P/B artefacts appear);
    bicubic is scored on the same degraded input.

    \b
    Examples:
      vidsr eval --model edsr --scale 2 ../shared/data/test/Set5 ../shared/data/test/Set14
      vidsr eval --degradation heavy --degrade kernel=area,noise=3,h264:crf=30 ../shared/data/test/Set14
      vidsr eval --degradation real --degrade kernel=area,h264:crf=23 ../shared/data/test/Set14
      vidsr eval --video --degrade kernel=area,h264:crf=30 pans/
      vidsr eval --video --temporal-filter off --degrade kernel=area,h264:crf=30 pans/   # the network alone
    """
    s = int(scale)
    specs = _specs(degrade_specs)
    if temporal_filter == "on" and not video:
        raise UsageError("--temporal-filter applies to sequences (--video), not to images")
    if not video and (bad := [f for f in folders if not f.is_dir()]):
        raise UsageError(f"{bad[0]}: not a folder of images (clips need --video)")
    built: dict[str, tuple] = {}
    results: dict[str, dict] = {}
    engines: dict[str, str] = {}
    choices: dict[str, dict] = {}
    filters: dict[str, bool] = {}  # with --video: whether the output was temporally filtered, per spec
    for spec in specs:
        label = spec.spec() if spec else "clean"
        kind = degradation
        if degradation == "auto":
            choices[label] = _auto_choice(folders, video, s, spec)
            kind = choices[label]["choice"]
        if kind not in built:
            built[kind] = build_upscaler(model, s, spec=RuntimeSpec(runtime, device, precision), tile=tile,
                                         ensemble=ensemble, degradation=kind, video=video, quality=quality)
        upscaler, engine = built[kind]
        if engine.arch.recurrent and not video:
            raise UsageError(f"{engine.id} restores each frame from the frames before it: score it on sequences "
                             "with --video")
        engines[label] = engine.id
        if video:
            from vidsr.quality.sequences import evaluate_sequences

            steady = wanted(temporal_filter, engine.degradation, quality == "fast")
            filters[label] = steady
            results[label] = evaluate_sequences(upscaler, list(folders), s, spec, steady, max_frames)
        else:
            from vidsr.quality.evaluate import evaluate_images, load_set

            results[label] = {f.name: evaluate_images(upscaler, engine.arch.colour, load_set(f), s, spec)
                              for f in folders}
    upscaler, engine = built[next(iter(built))]
    summary = {"model": engine.id, "scale": s, "runtime": upscaler.runtime.name,
               "precision": upscaler.runtime.precision, "ensemble": ensemble, "degradation": engine.degradation,
               # "sets" keeps its meaning (the first degradation's sets) for scripts written before --degrade.
               "sets": next(iter(results.values())), "by_degradation": results,
               "engines": engines, "degradation_choice": choices, "temporal_filter": filters}
    if as_json:
        emit_json(summary)
        return
    _print_table(engines, s, upscaler.runtime.precision, ensemble, results, choices, filters)


def _auto_choice(folders: tuple[Path, ...], video: bool, scale: int, spec: Degradation | None) -> dict:
    """--degradation auto under a spec: the kind of engine ``vidsr upscale`` would pick for most of the inputs
    once degraded, with the votes and the mean measurements. The papers' protocol (no spec) is clean input."""
    if spec is None:
        return {"choice": "clean", "reason": "the papers' protocol: MATLAB bicubic, lossless"}
    from collections import Counter

    from vidsr.quality.evaluate import load_set
    from vidsr.quality.sequences import assess_under, find_sequences

    inputs = list(find_sequences(list(folders)).values()) if video else [[img] for f in folders
                                                                         for img in load_set(f)]
    found = assess_under(inputs, scale, spec)
    votes = Counter(c.choice for c in found)
    choice = max(votes, key=lambda k: (votes[k], -DEGRADATIONS.index(k)))  # a tie goes to the milder kind
    qps = [c.quantiser for c in found if c.quantiser is not None]
    bpps = [c.bits_per_pixel for c in found if c.bits_per_pixel is not None]
    return {"choice": choice, "votes": dict(votes), "reason": f"{votes[choice]} of {len(found)} inputs measured "
            f"{choice}", "quantiser": round(sum(qps) / len(qps), 2) if qps else None,
            "bits_per_pixel": round(sum(bpps) / len(bpps), 4) if bpps else None,
            "noise_sigma": round(sum(c.noise_sigma for c in found) / len(found), 3)}


def _print_table(engines: dict[str, str], scale: int, precision: str, ensemble: bool, results: dict[str, dict],
                 choices: dict[str, dict], filters: dict[str, bool]) -> None:
    ids = sorted(set(engines.values()))
    table = Table(title=f"{', '.join(ids)} x{scale} ({precision}{', ensemble' if ensemble else ''})")
    temporal = any("tof" in r for sets in results.values() for r in sets.values())
    for col in ("input", "set", "images", "method", "PSNR (dB)", "SSIM") + (("tOF",) if temporal else ()):
        table.add_column(col, justify="right" if col in ("images", "PSNR (dB)", "SSIM", "tOF") else "left")
    for label, sets in results.items():
        picked = f"auto: {choices[label]['choice']}" if label in choices else ""
        for name, r in sets.items():
            extra_b = (f"{r['bicubic_tof']:.3f}",) if temporal else ()
            extra_m = (f"{r['tof']:.3f}",) if temporal else ()
            table.add_row(label, name, str(r["images"]), "Bicubic", f"{r['bicubic_psnr']:.2f}",
                          f"{r['bicubic_ssim']:.4f}", *extra_b)
            method = engines[label] + (" + temporal filter" if filters.get(label) else "")
            table.add_row(picked, "", "", method, f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", *extra_m)
            picked = ""
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160).print(table)
