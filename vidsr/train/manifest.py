"""The manifest a finished chunk writes beside its weights: how to rebuild the network, where the weights came
from (recipe, data, steps, CPU-hours, precision) and what they measure (clean, and under degradation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from vidsr.degradation.spec import Degradation, parse_spec
from vidsr.frames.upscaler import Upscaler
from vidsr.models.engine import WEIGHTS, base_manifest, write_manifest
from vidsr.models.registry import architecture
from vidsr.quality.evaluate import evaluate_images, load_set
from vidsr.runtime.cpu import cpu_model, default_threads
from vidsr.runtime.torch_rt import TorchRuntime
from vidsr.train.recipe import Recipe
from vidsr.train.state import TrainState

Table = dict[str, dict[str, dict[str, Any]]]  # set name -> scale -> {"psnr", "ssim", "bicubic_psnr", ...}


def evaluate_model(model: torch.nn.Module, recipe: Recipe, images: list[np.ndarray], scale: int,
                   device: str = "cpu", degradation: Degradation | None = None) -> dict:
    arch = architecture(recipe.arch)
    arch.set_scale(model, scale)
    # The run's own thread count: the runtime would otherwise reset it to every core for the rest of the run.
    up = Upscaler(arch, scale, TorchRuntime(model, device, "fp32", threads=torch.get_num_threads()))
    result = evaluate_images(up, arch.colour, images, scale, degradation)
    model.train()
    return result


def eval_table(model: torch.nn.Module, recipe: Recipe, data_root: Path, device: str,
               degradation: Degradation | None, log: Callable[[str], None]) -> Table:
    """Every eval set at every scale, clean or under ``degradation``."""
    table: Table = {}
    under = f" under {degradation.spec()}" if degradation else ""
    for vs in recipe.eval_dirs:
        images, name = load_set(data_root / vs), Path(vs).name
        for s in recipe.scales:
            r = evaluate_model(model, recipe, images, s, device, degradation)
            table.setdefault(name, {})[str(s)] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            log(f"eval {name} x{s}{under}: {r['psnr']:.2f} dB (bicubic {r['bicubic_psnr']:.2f})")
    return table


def clip_tables(model: torch.nn.Module, recipe: Recipe, data_root: Path, device: str,
                log: Callable[[str], None]) -> dict[str, Any]:
    """A recurrent engine's scores on each held-out clip (the curve's crops, run along the clip in torch fp32),
    under the val degradation or clean: what its training measured. The end-to-end figures through the video
    path come from ``vidsr eval --video``."""
    from vidsr.train.clips import load_val_clips, score_clips

    spec = parse_spec(recipe.degradation.val) if recipe.degradation else None
    table: dict[str, dict[str, Any]] = {}
    for s in recipe.scales:
        for folder in recipe.val_clips:
            clips = load_val_clips([data_root / folder], s, spec, recipe.val_frames, recipe.val_side, recipe.max_side)
            scores = score_clips(model, clips, s, device)
            # The same weights with the state started afresh at every frame: what the memory itself adds.
            scores["fresh_state_psnr"] = score_clips(model, clips, s, device, fresh=True)["psnr"]
            table.setdefault(Path(folder).name, {})[str(s)] = {k: round(v, 4) for k, v in scores.items()}
            log(f"eval {folder} x{s}: {scores['psnr']:.2f} dB (bicubic {scores['bicubic_psnr']:.2f}, "
                f"one frame at a time {scores['fresh_state_psnr']:.2f})")
    return {"eval_clips": {spec.spec() if spec else "clean": table},
            "eval_clips_note": f"first {recipe.val_frames} frames of each held-out clip, a centred {recipe.val_side} "
                               "px square, degraded as one clip; torch fp32; fresh_state_psnr: the same weights "
                               "with the state started afresh at every frame"}


def training_record(recipe: Recipe, state: TrainState, device: str) -> dict[str, Any]:
    return {
        "steps": state.step,
        "target_steps": recipe.steps,
        "complete": state.step >= recipe.steps,
        "cpu_hours": round(state.cpu_hours, 3),
        "cpu_seconds": round(state.cpu_seconds, 1),
        "wall_hours": round(state.wall_seconds / 3600, 3),
        "precision": state.precision_summary(),
        "precision_segments": state.precision_segments,
        "machine": f"{cpu_model()}, {default_threads()} cores; CPU-hours are process CPU time, any thread count"
                   + (f"; trained on {torch.cuda.get_device_name(device)}" if device != "cpu" else ""),
        "optimizer_moments": "kept out of git (with an EMA run's live weights); a resume in a fresh checkout "
                             "restarts them (steps listed in moments_reset_at)",
        "moments_reset_at": state.moments_reset_at,
        "recipe_changes": state.recipe_changes,
        "init_from": state.init_from,
        "teacher": state.teacher,
        "discarded_runs": state.discarded_runs,
        "cpu_hours_with_discarded": round(state.cpu_hours + state.discarded_cpu_hours(), 3),
    }


def write_engine_manifest(recipe: Recipe, out: Path, state: TrainState, dhash: str, data_root: Path,
                          log: Callable[[str], None], device: str = "cpu") -> dict[str, Any]:
    """The manifest of the weights just written, with the eval table on every validation set and scale (and,
    for a recipe with a [degradation], the same under its val degradation)."""
    model = architecture(recipe.arch).build(recipe.config, recipe.scales)
    model.load_state_dict(load_file(str(out / WEIGHTS)))
    try:
        recipe_rel = str(recipe.path.resolve().relative_to(Path(__file__).resolve().parents[2]))
    except ValueError:
        recipe_rel = str(recipe.path)
    manifest = base_manifest(recipe.id, recipe.family, recipe.preset, recipe.arch, recipe.config, recipe.scales,
                             model, out / WEIGHTS) | {
        "recipe": recipe_rel,
        "recipe_sha256": recipe.sha256,
        "data_manifest_sha256": dhash,
        "training": training_record(recipe, state, device),
        "curve": state.curve,
    }
    if recipe.degradation:
        manifest["degradation"] = {"kind": recipe.degradation.kind, "ranges": asdict(recipe.degradation),
                                   "ranges_sha256": recipe.degradation.sha256(),
                                   "curve_under": parse_spec(recipe.degradation.val).spec()}
    if recipe.clips:
        manifest |= clip_tables(model, recipe, data_root, device, log)
        write_manifest(out, manifest)
        return manifest
    manifest |= {
        "eval": eval_table(model, recipe, data_root, device, None, log),
        # The manifest's numbers are fp32 inference; eval's default on a CPU with native bf16 is bf16, which measures
        # a few thousandths of a dB apart (README, "Shipped engines").
        "eval_command": f"vidsr eval --model {recipe.id} --scale S --precision fp32 ../shared/data/test/Set5 "
                        "../shared/data/test/Set14",
    }
    if recipe.degradation:
        spec = parse_spec(recipe.degradation.val)
        manifest |= {
            "eval_degraded": {spec.spec(): eval_table(model, recipe, data_root, device, spec, log)},
            "eval_degraded_command": f"vidsr eval --model {recipe.id} --scale S --precision fp32 --degrade "
                                     f"{spec.spec()} ../shared/data/test/Set5 ../shared/data/test/Set14",
        }
    write_manifest(out, manifest)
    return manifest
