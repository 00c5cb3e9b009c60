"""A multi-frame engine beside the single-frame engine auto would otherwise run, in one run, on the engine's
held-out sequences through the video path (``vidsr eval --video``'s protocol: each sequence downscaled with the
spec's kernel, given fresh noise each frame and encoded as one clip; PSNR/SSIM on Y, tOF), and what auto needs to
choose between them: with ``--record`` the gains go into the engine's manifest (``video_vs_single``).

    python benchmarks/video_table.py --engine rvsr-x2-heavy --data ../shared/data --frames 20 \\
        --degrade kernel=area,noise=3,h264:crf=30 --degrade kernel=area,h264:crf=23 [--record]

The held-out sequences are the recipe's ``val_clips``, their frames area-downscaled to its ``max_side`` as in
training (Cityscapes' 2048-wide frames would otherwise cost four times the rest). Both engines run as upscale runs
them (--runtime auto, the temporal filter as auto sets it for each), so the figures are what a user gets here."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2

from vidsr.commands.common import build_upscaler
from vidsr.degradation.spec import parse_spec
from vidsr.frames.motion_filter import MODES, wanted
from vidsr.models.engine import MANIFEST, best_engine, find_engine, list_engines
from vidsr.quality.sequences import evaluate_sequences
from vidsr.runtime.cpu import cpu_model, default_threads
from vidsr.train.clips import read_sequence
from vidsr.train.recipe import load_recipe

REPO = Path(__file__).resolve().parents[1]


def held_out(recipe_path: Path, data: Path, frames: int, into: Path) -> list[Path]:
    """The recipe's held-out sequences as PNG folders under ``into``, sized as in training."""
    recipe = load_recipe(recipe_path)
    folders = []
    for rel in recipe.val_clips:
        out = into / Path(rel).name
        out.mkdir(parents=True)
        for i, rgb in enumerate(read_sequence(data / rel, recipe.max_side, 0, frames)):
            cv2.imwrite(str(out / f"{i:04d}.png"), rgb[..., ::-1])
        folders.append(out)
    return folders


def score(model: str, scale: int, folders: list[Path], spec: str | None, frames: int, mode: str = "auto") -> dict:
    d = parse_spec(spec) if spec else None
    upscaler, engine = build_upscaler(model, scale, degradation=engine_kind(model, scale))
    steady = wanted(mode, engine.degradation)
    rows = evaluate_sequences(upscaler, folders, scale, d, steady, frames)
    return {"engine": engine.id, "runtime": f"{upscaler.runtime.name}/{upscaler.runtime.precision}",
            "temporal_filter": steady, "rows": rows}


def engine_kind(model: str, scale: int) -> str:
    return find_engine(model, scale).degradation


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", required=True, help="the multi-frame engine's id")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--degrade", action="append", default=[], help="a spec, repeatable; none: clean (bicubic)")
    ap.add_argument("--frames", type=int, default=20, help="frames scored per sequence")
    ap.add_argument("--temporal-filter", choices=MODES, default="auto",
                    help="both engines' filter: auto as upscale sets it (the figures auto's choice weighs), or on/off "
                         "to ask whether the filter still helps")
    ap.add_argument("--record", action="store_true", help="write the gains into the engine's manifest")
    a = ap.parse_args()
    if a.record and a.temporal_filter != "auto":
        ap.error("--record weighs auto's figures: leave --temporal-filter at auto")
    multi = next(e for e in list_engines() if e.id == a.engine)
    scale = multi.scales[0]
    single = best_engine(list_engines(), scale, multi.degradation)
    results, gains = {}, []
    with tempfile.TemporaryDirectory(prefix="vidsr-held-") as tmp:
        folders = held_out(REPO / multi.manifest.raw["recipe"], a.data, a.frames, Path(tmp))
        for spec in a.degrade or [None]:
            label = spec or "clean"
            pair = {role: score(model, scale, folders, spec, a.frames, a.temporal_filter)
                    for role, model in (("single", single.id), ("multi", multi.id))}
            results[label] = pair
            every = pair["multi"]["rows"]["(all)"], pair["single"]["rows"]["(all)"]
            gains.append({"against": single.id, "spec": label, "gain_db": round(every[0]["psnr"] - every[1]["psnr"], 3),
                          "clips": len(folders), "frames": a.frames})
            print(f"{label}: bicubic {every[0]['bicubic_psnr']:.3f} (tOF {every[0]['bicubic_tof']:.3f}), "
                  f"{single.id} {every[1]['psnr']:.3f} (tOF {every[1]['tof']:.3f}), "
                  f"{multi.id} {every[0]['psnr']:.3f} (tOF {every[0]['tof']:.3f}): {gains[-1]['gain_db']:+.3f} dB")
            for name, row in pair["multi"]["rows"].items():
                s_row = pair["single"]["rows"][name]
                print(f"  {name:26s} bicubic {row['bicubic_psnr']:.2f}  single {s_row['psnr']:.2f}  "
                      f"multi {row['psnr']:.2f}  ({row['psnr'] - row['bicubic_psnr']:+.2f} over bicubic)")
    command = (f"python benchmarks/video_table.py --engine {a.engine} --frames {a.frames} "
               f"--temporal-filter {a.temporal_filter} " + " ".join(f"--degrade {s}" for s in a.degrade))
    record = {"machine": f"{cpu_model()}, {default_threads()} cores", "command": command, "results": results}
    print(json.dumps(record)[:2000])
    if a.record:
        path = multi.path / MANIFEST
        manifest = json.loads(path.read_text())
        manifest["video_vs_single"] = {str(scale): gains}
        manifest["eval_video"] = record
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"recorded in {path}")


if __name__ == "__main__":
    main()
