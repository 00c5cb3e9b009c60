"""``vidsr eval``: the papers' protocol on image folders, model beside bicubic."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from vidsr.commands.common import build_upscaler, emit_json, model_options


@click.command("eval")
@click.argument("folders", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@model_options
@click.option("--ensemble", is_flag=True, help="Geometric self-ensemble (8 flips/rotations): better, 8x slower.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def eval_command(folders: tuple[Path, ...], model: str, scale: str, runtime: str, device: str, precision: str,
                 tile: int, ensemble: bool, as_json: bool) -> None:
    """Y-PSNR/SSIM of a model and of bicubic on folders of HR images.

    Protocol (as the SR papers): modcrop, MATLAB bicubic downscale, model, round to 8 bits, Y of BT.601 studio
    range, shave SCALE pixels, PSNR and SSIM per image, mean over each folder.

    \b
    Example:
      vidsr eval --model edsr --scale 2 ../shared/data/test/Set5 ../shared/data/test/Set14
    """
    from vidsr.quality.evaluate import evaluate_images, load_set

    s = int(scale)
    upscaler, engine = build_upscaler(model, s, device, precision, tile, ensemble, runtime)
    results = {}
    for folder in folders:
        results[folder.name] = evaluate_images(upscaler, engine.arch.colour, load_set(folder), s)
    summary = {"model": engine.id, "scale": s, "runtime": upscaler.runtime.name,
               "precision": upscaler.runtime.precision, "ensemble": ensemble,
               "sets": results}
    if as_json:
        emit_json(summary)
        return
    table = Table(title=f"{engine.id} x{s} ({upscaler.runtime.precision}{', ensemble' if ensemble else ''})")
    table.add_column("set")
    table.add_column("images", justify="right")
    table.add_column("method")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    for name, r in results.items():
        table.add_row(name, str(r["images"]), "Bicubic", f"{r['bicubic_psnr']:.2f}", f"{r['bicubic_ssim']:.4f}")
        table.add_row("", "", engine.id, f"{r['psnr']:.2f}", f"{r['ssim']:.4f}")
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160).print(table)
