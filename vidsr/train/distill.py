"""Distillation: a small network also learns a large engine's answers to the same degraded input.

Under heavy noise and compression one degraded patch fits many originals, and the L1 to the one original drawn
pulls a small network toward each of them in turn. A large engine's output on that input is one answer the small
network can reach, with the large one's judgement of what was lost: a recipe's ``teacher`` (an engine id) and
``teacher_weight`` add ``teacher_weight * loss(student, teacher)`` to each step's loss.

By default the teacher runs in eval mode without gradients on the very batch the student sees: with a large teacher
that is most of a step's cost (7.4 CPU-s against 2.5 for repnet-x2-heavy's batch with EDSR-baseline teaching, Zen 3,
fp32). The training pairs are a fixed set, so ``teacher_outputs = "cached"`` runs the teacher once on each whole
LR image instead, keeps its answers beside the pairs (``Pairs.teacher``, 8-bit like the originals) and crops them
with each patch. A whole image's answer is also the better one: the teacher sees past the patch's border.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidsr.errors import VidsrError
from vidsr.files import atomic_path
from vidsr.models.engine import engine_by_id
from vidsr.models.registry import architecture
from vidsr.train.data import Pairs
from vidsr.train.recipe import Recipe


def load_teacher(recipe: Recipe, device: str,
                 log: Callable[[str], None]) -> tuple[torch.nn.Module | None, dict[str, str]]:
    """The recipe's teacher as it runs (fused, eval mode, no gradients) on ``device``, and {its id: its weights'
    sha256} for the manifest; (None, {}) without one.

    The teacher must eat what the student eats (colour mode and input space) at the student's one scale: its
    output is compared pixel for pixel with the student's."""
    if not recipe.teacher:
        return None, {}
    engine = engine_by_id(recipe.teacher, "teacher")
    student = architecture(recipe.arch)
    if len(recipe.scales) != 1 or recipe.scales[0] not in engine.scales:
        raise VidsrError(f"teacher {engine.id} upscales x{'/'.join(map(str, engine.scales))}; the student needs "
                         f"one scale it covers, not x{'/'.join(map(str, recipe.scales))}")
    if (engine.arch.colour, engine.arch.input_space) != (student.colour, student.input_space) \
            or engine.arch.recurrent:
        raise VidsrError(f"teacher {engine.id} takes {engine.arch.colour} {engine.arch.input_space}-size frames "
                         f"one at a time; the student takes {student.colour} {student.input_space}-size ones")
    # In the student's memory format, so that a student equal to its teacher computes bit for bit what it does.
    model = engine.load(recipe.scales[0]).to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.requires_grad_(False)
    log(f"distilling from {engine.id} (weights {engine.manifest.weights_sha256[:12]}) at weight "
        f"{recipe.teacher_weight}")
    return model, {engine.id: engine.manifest.weights_sha256}


def distillation_term(teacher: torch.nn.Module, x: torch.Tensor, pred: torch.Tensor, loss_fn: torch.nn.Module,
                      bf16: bool) -> torch.Tensor:
    """``loss_fn`` between the student's output ``pred`` and the teacher's on the same input ``x`` (NCHW)."""
    with torch.no_grad(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        target = teacher(x)
    return loss_fn(pred.float(), target.float())


def attach_teacher_outputs(teacher: torch.nn.Module, teacher_sha256: str, pairs: Pairs, cache_dir: Path,
                           bf16: bool, log: Callable[[str], None]) -> None:
    """Set ``pairs.teacher``: ``teacher``'s output on every LR image of ``pairs`` (RGB, LR-size models), as uint8
    RGB at HR size. Made once and cached beside the pairs, keyed by their set, the teacher's weights and the
    precision it ran in."""
    if not pairs.key:  # the cache file is named by it: two unnamed sets would share one file
        raise ValueError("teacher outputs are cached per set of pairs, and these pairs carry no key")
    cache = cache_dir / f"teacher-{pairs.key}-{teacher_sha256[:12]}-{'bf16' if bf16 else 'fp32'}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            pairs.teacher = [z[f"t{i}"] for i in range(int(z["n"]))]
        log(f"teacher outputs for {len(pairs.teacher)} x{pairs.scale} images loaded from the cache")
        return
    device = next(teacher.parameters()).device
    outputs = []
    for i, lr in enumerate(pairs.lr):
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255).to(device)
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            y = teacher(x.contiguous(memory_format=torch.channels_last)).float()
        outputs.append(y[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy())
        if i % 250 == 0:
            log(f"teacher outputs: {i + 1}/{len(pairs.lr)} x{pairs.scale} images")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        np.savez(tmp, n=len(outputs), **{f"t{i}": a for i, a in enumerate(outputs)})
    pairs.teacher = outputs
