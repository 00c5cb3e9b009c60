"""The training loop: plain, resumable in chunks, and honest about what it cost.

Every random choice of step k comes from a generator seeded by (seed, k), and the learning rate is a function of
k, so a run cut into ``--max-minutes`` chunks sees exactly the data and schedule of an uninterrupted one. A chunk
ends with a checkpoint: weights (safetensors), optimizer moments (safetensors, kept out of git) and a small JSON
state with the step, CPU time, RNG state and the validation curve.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save

from vidsr.degradation.spec import Degradation, parse_spec
from vidsr.files import atomic_write_bytes, atomic_write_json, cache_root
from vidsr.hashing import sha256_file
from vidsr.models.engine import WEIGHTS, base_manifest, engines_dir, write_manifest
from vidsr.models.registry import architecture
from vidsr.quality.evaluate import evaluate_images, load_set
from vidsr.runtime.cpu import cpu_model, default_threads, has_fast_bf16, tune_allocator
from vidsr.runtime.torch_rt import TorchRuntime
from vidsr.train.data import data_hash, image_files, load_degraded_pairs, load_pairs, sample_batch
from vidsr.train.recipe import Recipe
from vidsr.upscaler import Upscaler

STATE = "train_state.json"
OPTIMIZER = "optimizer.safetensors"  # Adam moments: large, so never committed


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    sd = opt.state_dict()
    return {f"{i}.{k}": v.cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()
            if isinstance(v, torch.Tensor)}


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    flat = load_file(str(path))
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def warm_start(model: torch.nn.Module, sources: tuple[str, ...], log: Callable[[str], None]) -> dict[str, str]:
    """Copy every tensor of the source engines whose name and shape this model shares; returns {engine: weights
    sha256}, so that the manifest says exactly which weights the run started from."""
    own = model.state_dict()
    taken: dict[str, torch.Tensor] = {}
    used = {}
    for engine_id in sources:
        folder = engines_dir() / engine_id
        src = load_file(str(folder / WEIGHTS))
        manifest = json.loads((folder / "manifest.json").read_text())
        if hasattr(model, "adopt"):
            src = model.adopt(src, manifest["scales"][0])
        # The upsampler of another scale has other shapes: it is skipped and starts fresh.
        new = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape and k not in taken}
        taken |= new
        # The hash of the file read, not the manifest's claim: a source mid-training can be ahead of its manifest.
        used[engine_id] = sha256_file(folder / WEIGHTS)
        log(f"initialised {len(new)} tensors from {engine_id}")
    model.load_state_dict(taken, strict=False)
    log(f"{len(taken)}/{len(own)} tensors warm-started")
    return used


def evaluate_model(model: torch.nn.Module, recipe: Recipe, images: list[np.ndarray], scale: int,
                   device: str = "cpu", degradation: Degradation | None = None) -> dict:
    arch = architecture(recipe.arch)
    if hasattr(model, "scales"):
        model.scale = scale
    # The run's own thread count: the runtime would otherwise reset it to every core for the rest of the run.
    up = Upscaler(arch, scale, TorchRuntime(model, device, "fp32", threads=torch.get_num_threads()))
    result = evaluate_images(up, arch.colour, images, scale, degradation)
    model.train()
    return result


def train(recipe: Recipe, data_root: Path, out: Path | None = None, resume: bool = False,
          max_minutes: float = 0.0, max_steps: int = 0, log: Callable[[str], None] = print,
          threads: int | None = None, should_stop: Callable[[], bool] = lambda: False, device: str = "cpu") -> dict:
    """Run (or continue) ``recipe`` until its last step, ``max_minutes`` of wall time, or ``max_steps`` more steps.
    Returns the state written.

    ``should_stop`` is asked between steps (a signal handler sets it): the run then checkpoints the step it
    finished and returns without the manifest's eval, which takes minutes a shutdown may not have. The state then
    holds ``"stopped": True``.

    ``device="cuda"`` trains on a GPU in bf16 autocast: for experiments beyond the CPU budget (its steps are not
    bit-reproducible, and its CPU-hours measure only the host process)."""
    tune_allocator()
    torch.set_num_threads(threads or default_threads())
    out = out or engines_dir() / recipe.id
    out.mkdir(parents=True, exist_ok=True)
    arch = architecture(recipe.arch)
    files = image_files([data_root / d for d in recipe.train_dirs])
    dhash = data_hash(files)

    torch.manual_seed(recipe.seed)
    model = arch.build(recipe.config, recipe.scales)
    state = {"step": 0, "cpu_seconds": 0.0, "wall_seconds": 0.0, "curve": [], "recipe_sha256": recipe.sha256,
             "seed": recipe.seed}
    state_path = out / STATE
    resumed = resume and state_path.is_file()
    if resumed:
        state = json.loads(state_path.read_text())
        if state.get("recipe_sha256") != recipe.sha256:
            # A changed recipe (a schedule refitted to the budget, say) is allowed, but the manifest must say at
            # which step it happened, since a rerun from scratch of the new recipe would not retrace those steps.
            state.setdefault("recipe_changes", []).append({"step": state["step"], "from": state["recipe_sha256"],
                                                           "to": recipe.sha256})
            state["recipe_sha256"] = recipe.sha256
            log(f"note: {recipe.path} changed since step {state['step']}; resuming with the new recipe")
        model.load_state_dict(load_file(str(out / WEIGHTS)))
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    else:
        if state_path.is_file():
            # --restart: the run replaced still cost CPU-hours toward this model's budget, so they stay on record.
            old = json.loads(state_path.read_text())
            state["discarded_runs"] = old.get("discarded_runs", []) + [{
                "steps": old["step"], "cpu_hours": round(old["cpu_seconds"] / 3600, 3),
                "recipe_sha256": old.get("recipe_sha256")}]
            log(f"replacing a run of {old['step']} steps ({old['cpu_seconds'] / 3600:.2f} CPU-h, kept on record)")
        if recipe.init_from:
            state["init_from"] = warm_start(model, recipe.init_from, log)
    bf16 = has_fast_bf16() if device == "cpu" else torch.cuda.is_bf16_supported()
    # A run resumed on a machine of another kind changes precision mid-run; the manifest must say from which step.
    precision = "bf16 autocast" if bf16 else "fp32"
    segments = state.setdefault("precision_segments", [])
    if not segments and state["step"] > 0:
        # A state written before segments were recorded: its steps ran in the precision its manifest states.
        segments.append({"from_step": 0, "precision": _manifest_precision(out)})
    if not segments or segments[-1]["precision"] != precision:
        segments.append({"from_step": state["step"], "precision": precision})
    # On the device before the optimizer exists, so that loaded moments land beside their parameters.
    model = model.to(device, memory_format=torch.channels_last).train()
    params = list(model.parameters())
    if recipe.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=recipe.lr, betas=recipe.betas, eps=recipe.eps,
                                                      weight_decay=recipe.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    if resumed:
        if (out / OPTIMIZER).is_file():
            _load_optimizer(opt, out / OPTIMIZER)
            log(f"resumed at step {state['step']} with optimizer moments")
        else:
            state["moments_reset_at"] = state.get("moments_reset_at", []) + [state["step"]]
            log(f"resumed at step {state['step']}; optimizer moments were not kept, restarting them")
    cache = cache_root() / "train"
    if recipe.degradation:
        pairs = [load_degraded_pairs(files, s, arch.colour, recipe.degradation, recipe.seed, cache, log)
                 for s in recipe.scales]
    else:
        pairs = [load_pairs(files, s, arch.colour, cache) for s in recipe.scales]
    val_degradation = parse_spec(recipe.degradation.val) if recipe.degradation else None
    val_images = load_set(data_root / recipe.val_dir)
    loss_fn = torch.nn.L1Loss() if recipe.loss == "l1" else torch.nn.MSELoss()

    start_wall, start_cpu = time.time(), time.process_time()
    deadline = start_wall + max_minutes * 60 if max_minutes else float("inf")
    stop_step = min(recipe.steps, state["step"] + max_steps) if max_steps else recipe.steps
    base_cpu, base_wall = state["cpu_seconds"], state["wall_seconds"]
    running = 0.0

    def checkpoint() -> None:
        state["cpu_seconds"] = base_cpu + time.process_time() - start_cpu
        state["wall_seconds"] = base_wall + time.time() - start_wall
        state["torch_rng"] = torch.get_rng_state().tolist()
        atomic_write_bytes(out / WEIGHTS, save(_weights(model)), durable=True)
        atomic_write_bytes(out / OPTIMIZER, save(_optimizer_tensors(opt)))
        atomic_write_json(state_path, state, durable=True)

    while state["step"] < stop_step and time.time() < deadline and not should_stop():
        step = state["step"]
        rng = np.random.default_rng([recipe.seed, step])
        x, y, scale = sample_batch(pairs, recipe.batch, recipe.patch, arch.input_space == "LR", recipe.augment, rng,
                                   recipe.mix_scales)
        if scale and hasattr(model, "scales"):
            model.scale = scale
        lr = recipe.lr_at(step)
        for group in opt.param_groups:
            group["lr"] = lr
        x = torch.from_numpy(x).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(y).to(device).contiguous(memory_format=torch.channels_last)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(x)
        loss = loss_fn(pred.float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the learning rate")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.clip_theta:
            torch.nn.utils.clip_grad_value_(params, recipe.clip_theta / lr)
        opt.step()
        state["step"] = step + 1
        running = loss.item() if step == 0 else 0.98 * running + 0.02 * loss.item()
        if state["step"] % 20 == 0:
            cpu_h = (base_cpu + time.process_time() - start_cpu) / 3600
            log(f"step {state['step']}/{recipe.steps} loss {running:.5f} lr {lr:.2e} cpu_h {cpu_h:.3f}")
        if state["step"] % recipe.eval_every == 0 or state["step"] == recipe.steps:
            point = {"step": state["step"], "cpu_hours": round((base_cpu + time.process_time() - start_cpu) / 3600, 4)}
            for s in recipe.scales:
                point[f"x{s}"] = round(evaluate_model(model, recipe, val_images, s, device, val_degradation)["psnr"], 3)
            state["curve"].append(point)
            log(f"val {recipe.val_dir} {point}")
        if state["step"] % recipe.checkpoint_every == 0:
            checkpoint()
    checkpoint()
    if should_stop():
        return state | {"stopped": True}
    write_engine_manifest(recipe, out, state, dhash, data_root, log, device)
    return state


def _manifest_precision(out: Path) -> str:
    try:
        return json.loads((out / "manifest.json").read_text())["training"]["precision"]
    except (OSError, ValueError, KeyError):
        return "unrecorded"


def precision_summary(segments: list[dict]) -> str:
    """One precision, or each with the steps it covered where resumes crossed machines of different kinds."""
    if len(segments) == 1:
        return segments[0]["precision"]
    return "; ".join(f"{seg['precision']} from step {seg['from_step']}" for seg in segments)


def write_engine_manifest(recipe: Recipe, out: Path, state: dict, dhash: str, data_root: Path,
                          log: Callable[[str], None], device: str = "cpu") -> dict:
    """The manifest of the weights just written, with the eval table on every validation set and scale."""
    model = architecture(recipe.arch).build(recipe.config, recipe.scales)
    model.load_state_dict(load_file(str(out / WEIGHTS)))
    table: dict[str, dict[str, dict]] = {}
    for vs in recipe.eval_dirs:
        images = load_set(data_root / vs)
        name = Path(vs).name
        for s in recipe.scales:
            r = evaluate_model(model, recipe, images, s, device)
            table.setdefault(name, {})[str(s)] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            log(f"eval {name} x{s}: {r['psnr']:.2f} dB (bicubic {r['bicubic_psnr']:.2f})")
    degraded: dict[str, dict[str, dict]] = {}
    if recipe.degradation:
        spec = parse_spec(recipe.degradation.val)
        for vs in recipe.eval_dirs:
            images = load_set(data_root / vs)
            for s in recipe.scales:
                r = evaluate_model(model, recipe, images, s, device, spec)
                degraded.setdefault(Path(vs).name, {})[str(s)] = {
                    k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                log(f"eval {Path(vs).name} x{s} under {spec.spec()}: {r['psnr']:.2f} dB "
                    f"(bicubic {r['bicubic_psnr']:.2f})")
    try:
        recipe_rel = str(recipe.path.resolve().relative_to(Path(__file__).resolve().parents[2]))
    except ValueError:
        recipe_rel = str(recipe.path)
    manifest = base_manifest(recipe.id, recipe.family, recipe.preset, recipe.arch, recipe.config, recipe.scales,
                             model, out / WEIGHTS) | {
        "recipe": recipe_rel,
        "recipe_sha256": recipe.sha256,
        "data_manifest_sha256": dhash,
        "training": {
            "steps": state["step"],
            "target_steps": recipe.steps,
            "complete": state["step"] >= recipe.steps,
            "cpu_hours": round(state["cpu_seconds"] / 3600, 3),
            "cpu_seconds": round(state["cpu_seconds"], 1),
            "wall_hours": round(state["wall_seconds"] / 3600, 3),
            "precision": precision_summary(state["precision_segments"]),
            "precision_segments": state["precision_segments"],
            "machine": f"{cpu_model()}, {default_threads()} cores; CPU-hours are process CPU time, any thread count"
                       + (f"; trained on {torch.cuda.get_device_name(device)}" if device != "cpu" else ""),
            "optimizer_moments": "kept out of git; a resume in a fresh checkout restarts them (steps listed in "
                                 "moments_reset_at)",
            "moments_reset_at": state.get("moments_reset_at", []),
            "recipe_changes": state.get("recipe_changes", []),
            "init_from": state.get("init_from", {}),
            "discarded_runs": state.get("discarded_runs", []),
            "cpu_hours_with_discarded": round((state["cpu_seconds"] + 3600 * sum(
                r["cpu_hours"] for r in state.get("discarded_runs", []))) / 3600, 3),
        },
        "curve": state["curve"],
        "eval": table,
        **({"degradation": {"kind": "real", "ranges": asdict(recipe.degradation),
                            "ranges_sha256": recipe.degradation.sha256(), "curve_under": spec.spec()},
            "eval_degraded": {spec.spec(): degraded}} if recipe.degradation else {}),
        # The manifest's numbers are fp32 inference; eval's default on a CPU with native bf16 is bf16, which measures
        # a few thousandths of a dB apart (README, "Shipped engines").
        "eval_command": f"vidsr eval --model {recipe.id} --scale S --precision fp32 ../shared/data/test/Set5 "
                        "../shared/data/test/Set14",
    }
    write_manifest(out, manifest)
    return manifest
