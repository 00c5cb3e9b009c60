"""The training loop: plain, resumable in chunks, and honest about what it cost.

Every random choice of step k comes from a generator seeded by (seed, k), and the learning rate is a function of
k, so a run cut into ``--max-minutes`` chunks sees exactly the data and schedule of an uninterrupted one. A chunk
ends with a checkpoint: weights (safetensors), optimizer moments (safetensors, kept out of git) and a small JSON
state with the step, CPU time, RNG state and the validation curve.

With ``ema`` in the recipe the weights shipped, validated and written to model.safetensors are an exponential
moving average of the trained ones (torch's AveragedModel), which average out the step-to-step noise of a
fine-tune; the trained ("live") weights travel in the optimizer file, beside the moments they belong with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from vidsr.degradation.spec import parse_spec
from vidsr.files import atomic_write_bytes, cache_root
from vidsr.models.edsr import residual_blocks
from vidsr.models.engine import WEIGHTS, engine_by_id, engines_dir
from vidsr.models.registry import ARCHITECTURES, Architecture, architecture
from vidsr.quality.evaluate import load_set
from vidsr.quality.images import image_files
from vidsr.runtime.cpu import default_threads, has_fast_bf16, tune_allocator
from vidsr.train.clips import (
    ClipSet,
    ValClip,
    clips_hash,
    load_clips,
    load_val_clips,
    sample_clip_batch,
    score_clips,
    train_sequences,
)
from vidsr.train.data import Pairs, data_hash, load_degraded_pairs, load_pairs, sample_batch
from vidsr.train.distill import attach_teacher_outputs, distillation_term, load_teacher
from vidsr.train.losses import make_loss
from vidsr.train.manifest import evaluate_model, write_engine_manifest
from vidsr.train.recipe import Recipe
from vidsr.train.state import TrainState
from vidsr.train.temporal import FramePairs, load_frame_pairs, motion_term, sample_pair_batch

STATE = "train_state.json"
OPTIMIZER = "optimizer.safetensors"  # Adam moments (and an EMA run's live weights): large, so never committed
LIVE = "live."  # key prefix of the live weights in the optimizer file


def _optimizer_tensors(opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    sd = opt.state_dict()
    return {f"{i}.{k}": v.cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()
            if isinstance(v, torch.Tensor)}


def _load_optimizer(opt: torch.optim.Optimizer, path: Path) -> None:
    flat = {k: v for k, v in load_file(str(path)).items() if not k.startswith(LIVE)}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def warm_start(model: torch.nn.Module, sources: tuple[str, ...], log: Callable[[str], None],
               arch: Architecture | None = None) -> dict[str, str]:
    """Copy every tensor of the source engines whose name and shape this model shares; returns {engine: weights
    sha256}, so that the manifest says exactly which weights the run started from. ``arch`` is the model's
    architecture (MDSR adopts EDSR's keys); by default the one whose builder made ``model``."""
    arch = arch or next(a for a in ARCHITECTURES.values() if isinstance(model, a.builder))  # type: ignore[arg-type]
    own = model.state_dict()
    taken: dict[str, torch.Tensor] = {}
    used = {}
    for engine_id in sources:
        engine = engine_by_id(engine_id, "init_from")
        src = engine.weights()  # verified against its manifest: a source mid-training must be finished first
        if arch.adopt is not None and engine.arch.name != arch.name:
            src = arch.adopt(src, engine.scales[0])
        if arch.deepen is not None:
            src = arch.deepen(src, residual_blocks(own))
        # The upsampler of another scale has other shapes: it is skipped and starts fresh.
        new = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape and k not in taken}
        taken |= new
        used[engine_id] = engine.manifest.weights_sha256
        log(f"initialised {len(new)} tensors from {engine_id}")
    model.load_state_dict(taken, strict=False)
    log(f"{len(taken)}/{len(own)} tensors warm-started")
    return used


@dataclass
class Run:
    """One chunk's working set: where it writes, what it trains, and its state."""

    recipe: Recipe
    out: Path
    model: torch.nn.Module
    state: TrainState
    device: str
    resumed: bool
    averaged: AveragedModel | None = None  # the recipe's EMA of ``model``, where it has one
    teacher: torch.nn.Module | None = None  # the recipe's distillation teacher, where it has one

    @property
    def shipped(self) -> torch.nn.Module:
        """The weights validated and written as the engine: the average where the recipe keeps one."""
        return self.averaged.module if self.averaged is not None else self.model


def open_run(recipe: Recipe, out: Path, resume: bool, device: str, log: Callable[[str], None]) -> Run:
    """The model and state of a new run, or of the run in ``out`` continued (``resume``)."""
    torch.manual_seed(recipe.seed)
    model = architecture(recipe.arch).build(recipe.config, recipe.scales)
    state_path = out / STATE
    resumed = resume and state_path.is_file()
    if resumed:
        state = TrainState.load(state_path)
        if state.recipe_sha256 != recipe.sha256:
            # A changed recipe (a schedule refitted to the budget, say) is allowed, but the manifest must say at
            # which step it happened, since a rerun from scratch of the new recipe would not retrace those steps.
            state.recipe_changes.append({"step": state.step, "from": state.recipe_sha256, "to": recipe.sha256})
            state.recipe_sha256 = recipe.sha256
            log(f"note: {recipe.path} changed since step {state.step}; resuming with the new recipe")
        model.load_state_dict(load_file(str(out / WEIGHTS)))
        torch.set_rng_state(torch.tensor(state.torch_rng, dtype=torch.uint8))
    else:
        state = TrainState(recipe_sha256=recipe.sha256, seed=recipe.seed)
        if state_path.is_file():
            # --restart: the run replaced still cost CPU-hours toward this model's budget, so they stay on record.
            old = TrainState.load(state_path)
            state.discarded_runs = old.discarded_runs + [{"steps": old.step, "cpu_hours": round(old.cpu_hours, 3),
                                                          "recipe_sha256": old.recipe_sha256}]
            log(f"replacing a run of {old.step} steps ({old.cpu_hours:.2f} CPU-h, kept on record)")
        if recipe.init_from:
            state.init_from = warm_start(model, recipe.init_from, log, architecture(recipe.arch))
    bf16 = has_fast_bf16() if device == "cpu" else torch.cuda.is_bf16_supported()
    # A run resumed on a machine of another kind changes precision mid-run; the manifest must say from which step.
    state.note_precision("bf16 autocast" if bf16 else "fp32", legacy=_manifest_precision(out))
    # On the device before the optimizer exists, so that loaded moments land beside their parameters.
    model = model.to(device, memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    teacher, state.teacher = load_teacher(recipe, device, log)
    run = Run(recipe, out, model, state, device, resumed, teacher=teacher)
    if recipe.ema:
        run.averaged = _start_average(run, log)
    return run


def _start_average(run: Run, log: Callable[[str], None]) -> AveragedModel:
    """The EMA of ``run.model``. On a resume it starts from model.safetensors (the average so far, or a run's
    plain weights where the EMA begins mid-run), and the live weights come back from the optimizer file; a
    fresh checkout lacks that file, and then training goes on from the average (moments_reset_at says where)."""
    averaged = AveragedModel(run.model, multi_avg_fn=get_ema_multi_avg_fn(run.recipe.ema), use_buffers=True)
    if run.resumed:
        averaged.n_averaged.fill_(1)  # the copy is the average so far: the next update blends, not replaces
        live_path = run.out / OPTIMIZER
        live = {k[len(LIVE):]: v for k, v in load_file(str(live_path)).items() if k.startswith(LIVE)} \
            if live_path.is_file() else {}
        if live:
            run.model.load_state_dict(live)
        else:
            log("no live weights kept beside the average: training goes on from the average")
    return averaged


def parameter_groups(model: torch.nn.Module, scales: dict[str, float]) -> list[dict[str, Any]]:
    """The model's parameters in their own order, cut into runs that share an lr multiplier (``lr_scale``): the
    optimizer numbers its moments in that order, so a run saved with one group resumes with several."""
    groups: list[dict[str, Any]] = []
    for name, p in model.named_parameters():
        scale = next((v for k, v in scales.items() if name.startswith(k)), 1.0)
        if not groups or groups[-1]["lr_scale"] != scale:
            groups.append({"params": [], "lr_scale": scale})
        groups[-1]["params"].append(p)
    return groups


def make_optimizer(run: Run, log: Callable[[str], None]) -> torch.optim.Optimizer:
    """The recipe's optimizer, with its moments where the run kept them."""
    r = run.recipe
    params = parameter_groups(run.model, r.lr_scales)
    opt: torch.optim.Optimizer
    if r.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=r.lr, betas=r.betas, eps=r.eps, weight_decay=r.weight_decay)
    else:
        opt = torch.optim.SGD(params, lr=r.lr, momentum=r.momentum, weight_decay=r.weight_decay)
    if run.resumed:
        if (run.out / OPTIMIZER).is_file():
            _load_optimizer(opt, run.out / OPTIMIZER)
            log(f"resumed at step {run.state.step} with optimizer moments")
        else:
            run.state.moments_reset_at.append(run.state.step)
            log(f"resumed at step {run.state.step}; optimizer moments were not kept, restarting them")
    return opt


TrainingData = list[Pairs] | list[FramePairs] | list[ClipSet]


def train_step(run: Run, opt: torch.optim.Optimizer, pairs: TrainingData, loss_fn: torch.nn.Module) -> float:
    """One optimizer step of the run's next batch; its data and lr depend only on (seed, step)."""
    r, step = run.recipe, run.state.step
    rng = np.random.default_rng([r.seed, step])
    arch = architecture(r.arch)
    frames, taught = None, None
    if r.clips:
        return _clip_step(run, opt, pairs, loss_fn, rng)  # type: ignore[arg-type]
    if r.temporal:
        frames = sample_pair_batch(pairs, r.batch, r.patch, r.augment, rng)  # type: ignore[arg-type]
        xs, ys, scale = frames.x, frames.y, frames.scale
    else:
        xs, ys, scale, taught = sample_batch(pairs, r.batch, r.patch, arch.input_space == "LR",  # type: ignore[arg-type]
                                             r.augment, rng, r.mix_scales)
    if scale:
        arch.set_scale(run.model, scale)
    lr = r.lr_at(step)
    x = torch.from_numpy(xs).to(run.device).contiguous(memory_format=torch.channels_last)
    y = torch.from_numpy(ys).to(run.device).contiguous(memory_format=torch.channels_last)
    bf16 = run.state.precision_segments[-1]["precision"] == "bf16 autocast"
    with torch.autocast(torch.device(run.device).type, dtype=torch.bfloat16, enabled=bf16):
        pred = run.model(x)
    loss = loss_fn(pred.float(), y)
    if taught is not None:
        loss = loss + r.teacher_weight * loss_fn(pred.float(), torch.from_numpy(taught).to(run.device))
    elif run.teacher is not None:
        loss = loss + r.teacher_weight * distillation_term(run.teacher, x, pred, loss_fn, bf16)
    if frames is not None:
        loss = loss + r.temporal * motion_term(pred.float(), y, frames, loss_fn)
    return _apply(run, opt, loss, lr)


def _clip_step(run: Run, opt: torch.optim.Optimizer, clips: list[ClipSet], loss_fn: torch.nn.Module,
               rng: np.random.Generator) -> float:
    """A recurrent model's step: ``batch`` clips of ``frames`` frames run in order, the loss over every frame."""
    r = run.recipe
    batch, _ = sample_clip_batch(clips, r.batch, r.frames, r.patch, r.augment, rng)
    lr = r.lr_at(run.state.step)
    x, flow, y = (torch.from_numpy(a).to(run.device) for a in (batch.x, batch.flow, batch.y))
    bf16 = run.state.precision_segments[-1]["precision"] == "bf16 autocast"
    with torch.autocast(torch.device(run.device).type, dtype=torch.bfloat16, enabled=bf16):
        pred = run.model.sequence(x, flow)  # type: ignore[operator]
    loss = loss_fn(pred.float().flatten(0, 1), y.flatten(0, 1))
    return _apply(run, opt, loss, lr)


def _apply(run: Run, opt: torch.optim.Optimizer, loss: torch.Tensor, lr: float) -> float:
    """Backpropagate ``loss`` and step the optimizer (and the EMA) at ``lr``; the run's step count moves on."""
    r, step = run.recipe, run.state.step
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at step {step}; lower the learning rate")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if r.clip_theta:
        torch.nn.utils.clip_grad_value_(run.model.parameters(), r.clip_theta / lr)
    opt.step()
    if run.averaged is not None:
        run.averaged.update_parameters(run.model)
    run.state.step = step + 1
    return float(loss.item())


def checkpoint(run: Run, opt: torch.optim.Optimizer) -> None:
    """Weights and state durably (they are what a resume trusts), the moments best-effort."""
    run.state.torch_rng = torch.get_rng_state().tolist()
    atomic_write_bytes(run.out / WEIGHTS, save(_weights(run.shipped)), durable=True)
    live = {LIVE + k: v for k, v in _weights(run.model).items()} if run.averaged is not None else {}
    atomic_write_bytes(run.out / OPTIMIZER, save(_optimizer_tensors(opt) | live))
    run.state.save(run.out / STATE)


Validation = list[np.ndarray] | dict[int, list[ValClip]]  # val images, or held-out clips by scale


def validate(run: Run, val: Validation, cpu_hours: float, log: Callable[[str], None]) -> None:
    """A point of the curve: the val set at every scale, under the recipe's val degradation if it has one."""
    r = run.recipe
    spec = parse_spec(r.degradation.val) if r.degradation else None
    point: dict[str, Any] = {"step": run.state.step, "cpu_hours": round(cpu_hours, 4)}
    for s in r.scales:
        if isinstance(val, dict):
            scores = score_clips(run.shipped, val[s], s, run.device)
            run.shipped.train()
            point[f"x{s}"], point[f"x{s}_bicubic"] = round(scores["psnr"], 3), round(scores["bicubic_psnr"], 3)
            continue
        point[f"x{s}"] = round(evaluate_model(run.shipped, r, val, s, run.device, spec)["psnr"], 3)
    run.state.curve.append(point)
    log(f"val {r.val_dir} {point}")


def load_training_pairs(recipe: Recipe, files: list[Path], log: Callable[[str], None]) -> TrainingData:
    colour = architecture(recipe.arch).colour
    cache = cache_root() / "train"
    if recipe.clips:  # ``files`` are sequence folders
        return [load_clips(files, s, recipe.degradation, recipe.seed, recipe.clip_variants if recipe.degradation
                           else 1, recipe.window, recipe.max_windows, recipe.max_side, cache, log)
                for s in recipe.scales]
    if recipe.degradation and recipe.temporal:
        return [load_frame_pairs(files, s, recipe.degradation, recipe.seed, cache, log, recipe.hr_scales)
                for s in recipe.scales]
    if recipe.degradation:
        return [load_degraded_pairs(files, s, colour, recipe.degradation, recipe.seed, cache, log, recipe.hr_scales)
                for s in recipe.scales]
    return [load_pairs(files, s, colour, cache, recipe.hr_scales) for s in recipe.scales]


def _cache_teacher(run: Run, pairs: list[Pairs], log: Callable[[str], None]) -> None:
    """The teacher's answers to every training image, attached to the pairs: steps then crop them instead of
    running the teacher."""
    assert run.teacher is not None
    bf16 = run.state.precision_segments[-1]["precision"] == "bf16 autocast"
    sha = next(iter(run.state.teacher.values()))
    for p in pairs:
        attach_teacher_outputs(run.teacher, sha, p, cache_root() / "train", bf16, log)
    run.teacher = None  # its answers travel with the pairs now


def train(recipe: Recipe, data_root: Path, out: Path | None = None, resume: bool = False,
          max_minutes: float = 0.0, max_steps: int = 0, log: Callable[[str], None] = print,
          threads: int | None = None, should_stop: Callable[[], bool] = lambda: False,
          device: str = "cpu") -> TrainState:
    """Run (or continue) ``recipe`` until its last step, ``max_minutes`` of wall time, or ``max_steps`` more steps.
    Returns the state written.

    ``should_stop`` is asked between steps (a signal handler sets it): the run then checkpoints the step it
    finished and returns without the manifest's eval, which takes minutes a shutdown may not have. The state then
    has ``stopped`` set.

    ``device="cuda"`` trains on a GPU in bf16 autocast: for experiments beyond the CPU budget (its steps are not
    bit-reproducible, and its CPU-hours measure only the host process)."""
    tune_allocator()
    torch.set_num_threads(threads or default_threads())
    out = out or engines_dir() / recipe.id
    out.mkdir(parents=True, exist_ok=True)
    files, val = training_inputs(recipe, data_root)
    run = open_run(recipe, out, resume, device, log)
    opt = make_optimizer(run, log)
    pairs = load_training_pairs(recipe, files, log)
    start_wall, start_cpu = time.time(), time.process_time()  # the teacher's answers count toward the run's cost
    if run.teacher is not None and recipe.teacher_outputs == "cached":
        _cache_teacher(run, pairs, log)  # type: ignore[arg-type]
    loss_fn = make_loss(recipe.loss, recipe.chroma_weight).to(run.device)
    state = run.state
    base_cpu, base_wall = state.cpu_seconds, state.wall_seconds
    deadline = start_wall + max_minutes * 60 if max_minutes else float("inf")
    stop_step = min(recipe.steps, state.step + max_steps) if max_steps else recipe.steps
    running: float | None = None  # the loss's moving average over this chunk's steps

    def clock() -> None:
        state.cpu_seconds = base_cpu + time.process_time() - start_cpu
        state.wall_seconds = base_wall + time.time() - start_wall

    while state.step < stop_step and time.time() < deadline and not should_stop():
        loss = train_step(run, opt, pairs, loss_fn)
        running = loss if running is None else 0.98 * running + 0.02 * loss
        clock()
        if state.step % 20 == 0:
            log(f"step {state.step}/{recipe.steps} loss {running:.5f} lr {recipe.lr_at(state.step - 1):.2e} "
                f"cpu_h {state.cpu_hours:.3f}")
        if state.step % recipe.eval_every == 0 or state.step == recipe.steps:
            validate(run, val, state.cpu_hours, log)
        if state.step % recipe.checkpoint_every == 0:
            checkpoint(run, opt)
    clock()
    checkpoint(run, opt)
    if should_stop():
        state.stopped = True
        return state
    write_engine_manifest(recipe, out, state, clips_hash(files) if recipe.clips else data_hash(files), data_root,
                          log, device)
    return state


def training_inputs(recipe: Recipe, data_root: Path) -> tuple[list[Path], Validation]:
    """The training images (or sequence folders, for clips) and the curve's validation set."""
    if not recipe.clips:
        return image_files([data_root / d for d in recipe.train_dirs]), load_set(data_root / recipe.val_dir)
    spec = parse_spec(recipe.degradation.val) if recipe.degradation else None
    held = [data_root / h for h in recipe.val_clips]
    return train_sequences(data_root, recipe.clips, recipe.val_clips), {
        s: load_val_clips(held, s, spec, recipe.val_frames, recipe.val_side, recipe.max_side) for s in recipe.scales}


def _manifest_precision(out: Path) -> str:
    try:
        return str(json.loads((out / "manifest.json").read_text())["training"]["precision"])
    except (OSError, ValueError, KeyError):
        return "unrecorded"
