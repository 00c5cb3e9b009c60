"""Training recipes: one TOML file says everything a run needs, and its hash goes into the manifest."""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidsr.degradation.spec import DegradationRanges
from vidsr.models.registry import PRESETS, architecture
from vidsr.train.losses import LOSSES


@dataclass
class Recipe:
    path: Path
    sha256: str
    id: str  # engine id, and the folder name under engines/
    family: str  # the --model name users type
    preset: str
    arch: str
    config: dict[str, Any]
    scales: tuple[int, ...]
    train_dirs: list[str]
    val_dir: str  # the curve's set, scored every eval_every steps
    eval_dirs: tuple[str, ...]  # the manifest's eval table: the curve's set and the others
    patch: int
    batch: int
    steps: int
    # The HR images at each of these sizes (1.0 = as stored; 0.5 = area-downscaled to half): more content.
    hr_scales: tuple[float, ...] = (1.0,)
    loss: str = "l1"  # or "mse", or "l1-ycbcr" / "mse-ycbcr" (chroma errors weighted by chroma_weight)
    chroma_weight: float = 1.0
    optimizer: str = "adam"
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.9
    weight_decay: float = 0.0
    # Learning-rate multipliers by parameter-name prefix ({fuse = 10.0}): a layer new to a warm-started network
    # (RVSR's fuse, which starts blind to the state) learns faster than the trained body around it.
    lr_scales: dict[str, float] = field(default_factory=dict)
    schedule: str = "cosine"  # "cosine" or "step"
    warmup: int = 0
    decay_every: int = 0  # "step" schedule: multiply lr by decay_factor every decay_every steps
    decay_factor: float = 0.5
    min_lr_ratio: float = 0.01
    clip_theta: float = 0.0  # VDSR's adjustable clipping: gradients clipped to +-theta/lr
    # Decay of an exponential moving average of the weights, which is what ships (0: none; 0.999 averages over
    # about the last 1,000 steps).
    ema: float = 0.0
    # Weight of the motion term (vidsr/train/temporal.py): the step trains on pairs of neighbouring frames of the
    # degradation's pan, ``batch`` pairs of them. 0: single frames.
    temporal: float = 0.0
    augment: bool = True
    mix_scales: bool = False  # multi-scale HR-space models (VDSR): a scale per patch, not one per batch
    seed: int = 0
    # Engine ids whose weights initialise this one (EDSR x3/x4 from x2; MDSR from the three EDSRs). Where two
    # sources hold the same tensor, the first listed wins.
    init_from: tuple[str, ...] = ()
    # Distillation (vidsr/train/distill.py): an engine id whose output on each batch the loss also pulls toward, by
    # teacher_weight against the original's 1.
    teacher: str = ""
    teacher_weight: float = 0.0
    teacher_outputs: str = "per-step"  # or "cached": once per training image (vidsr/train/distill.py)
    eval_every: int = 500
    checkpoint_every: int = 100
    notes: str = ""
    # The [degradation] table: LR inputs degraded as real footage is (noise, codecs), HR clean. None: MATLAB bicubic.
    degradation: DegradationRanges | None = None
    # Video training (recurrent engines, vidsr/train/clips.py): folders of sequences to train on and to hold out for
    # the curve, cut into windows of ``window`` frames (at most ``max_windows`` a sequence, frames area-downscaled
    # to ``max_side``), each degraded ``clip_variants`` times; a step runs ``frames`` consecutive frames of each clip.
    clips: tuple[str, ...] = ()
    val_clips: tuple[str, ...] = ()
    window: int = 10
    max_windows: int = 6
    max_side: int = 1024
    clip_variants: int = 2
    frames: int = 6
    val_frames: int = 10
    val_side: int = 256
    extra: dict[str, Any] = field(default_factory=dict)

    def lr_at(self, step: int) -> float:
        """The learning rate at ``step``: a pure function of the step, so that a resumed run follows the same
        schedule as an uninterrupted one."""
        if self.warmup and step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == "step":
            return self.lr * self.decay_factor ** (step // self.decay_every if self.decay_every else 0)
        t = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    raw = path.read_bytes()
    data = tomllib.loads(raw.decode())
    _check_shape(path, data)
    model, d, t = data.get("model", {}), data.get("data", {}), data.get("train", {})
    preset = model["preset"]
    arch, config = PRESETS[preset]
    architecture(arch)  # fail early on a typo
    config = config | model.get("config", {})
    known = set(Recipe.__dataclass_fields__)
    extra = {k: v for k, v in t.items() if k not in known}
    if extra:
        raise ValueError(f"{path}: unknown [train] keys {sorted(extra)}")
    train_dirs = list(d.get("train", ["train/T91", "train/BSD200"]))
    val_dir = d.get("val", "test/Set5")
    eval_dirs = tuple(dict.fromkeys([val_dir, *d.get("eval", ["test/Set14"])]))
    for held in map(Path, eval_dirs):
        if any(held == x or held.is_relative_to(x) or x.is_relative_to(held) for x in map(Path, train_dirs)):
            raise ValueError(f"{path}: {held} is held out for validation and cannot also be trained on")
    for key, allowed in (("loss", LOSSES), ("optimizer", ("adam", "sgd")),
                         ("schedule", ("cosine", "step"))):
        if key in t and t[key] not in allowed:
            raise ValueError(f"{path}: {key} = {t[key]!r}; choose one of {', '.join(allowed)}")
    if "chroma_weight" in t and (t.get("loss") not in ("l1-ycbcr", "mse-ycbcr") or not 0 <= t["chroma_weight"] <= 1):
        raise ValueError(f"{path}: chroma_weight = {t['chroma_weight']} needs loss = \"l1-ycbcr\" or "
                         "\"mse-ycbcr\" and a value from 0 to 1")
    if not 0 <= t.get("ema", 0.0) < 1:
        raise ValueError(f"{path}: ema = {t['ema']}; a decay from 0 (no average) to under 1, such as 0.999")
    if t.get("temporal", 0.0) and ("degradation" not in data or architecture(arch).colour != "RGB"
                                   or architecture(arch).input_space != "LR" or t["temporal"] < 0):
        raise ValueError(f"{path}: temporal = {t['temporal']} needs a [degradation] table (its pans), an RGB model "
                         "that takes LR input (EDSR, MDSR) and a weight of 0 or more")
    if bool(t.get("teacher")) != bool(t.get("teacher_weight")) or t.get("teacher_weight", 0.0) < 0 \
            or (t.get("teacher") and ("clips" in d or t.get("temporal"))):
        raise ValueError(f"{path}: teacher (an engine id) and teacher_weight (above 0) go together, for models "
                         "trained on single images")
    if t.get("teacher_outputs", "per-step") not in ("per-step", "cached") or (
            t.get("teacher_outputs") == "cached" and not (t.get("teacher") and architecture(arch).colour == "RGB"
                                                          and architecture(arch).input_space == "LR")):
        raise ValueError(f"{path}: teacher_outputs = {t['teacher_outputs']!r}: \"per-step\", or \"cached\" with a "
                         "teacher, for RGB models that take LR input")
    clip_keys = _clip_keys(path, d, arch)
    hr_scales = tuple(float(f) for f in d.get("hr_scales", [1.0]))
    smaller = hr_scales[1:]
    if hr_scales[:1] != (1.0,) or len(set(smaller)) != len(smaller) or not all(0.2 <= f < 1.0 for f in smaller):
        raise ValueError(f"{path}: [data] hr_scales starts with 1.0 (the images as stored), then distinct sizes "
                         "from 0.2 to under 1.0")
    if d.get("mix_scales") and architecture(arch).input_space != "HR":
        raise ValueError(f"{path}: mix_scales needs a model that takes HR-size input (VDSR, SRCNN)")
    if isinstance(t.get("init_from"), str):
        t["init_from"] = (t["init_from"],)
    elif "init_from" in t:
        t["init_from"] = tuple(t["init_from"])
    if "betas" in t:
        t["betas"] = tuple(t["betas"])
    degradation = DegradationRanges.from_table(data["degradation"], f"{path}: [degradation]") \
        if "degradation" in data else None
    return Recipe(path=path, degradation=degradation, sha256=hashlib.sha256(raw).hexdigest(), id=data["id"],
                  family=data.get("family", preset.split("-")[0]), preset=preset, arch=arch,
                  config=config, scales=tuple(model["scales"]), train_dirs=train_dirs, val_dir=val_dir,
                  eval_dirs=eval_dirs, patch=d["patch"], hr_scales=hr_scales, augment=d.get("augment", True),
                  mix_scales=d.get("mix_scales", False),
                  notes=data.get("notes", ""), **clip_keys, **t)


TABLES = {"model": ("preset", "scales"), "data": ("patch",), "train": ("batch", "steps"), "degradation": ()}
TOP_KEYS = ("id", "family", "notes")
MODEL_KEYS = ("preset", "scales", "config")
DATA_KEYS = ("train", "val", "eval", "patch", "hr_scales", "augment", "mix_scales", "clips", "val_clips")


def _check_shape(path: Path, data: dict[str, Any]) -> None:
    """Unknown tables and keys, and missing required ones, named as the file names them (a [trian] table made
    'Recipe.__init__() missing 2 required positional arguments')."""
    import difflib

    for name, value in data.items():
        known = name in TABLES if isinstance(value, dict) else name in TOP_KEYS
        if not known:
            near = difflib.get_close_matches(name, [*TABLES, *TOP_KEYS], n=1)
            kind = f"[{name}] table" if isinstance(value, dict) else f"key {name!r}"
            raise ValueError(f"{path}: unknown {kind}" + (f"; did you mean {near[0]!r}?" if near else ""))
    if "id" not in data:
        raise ValueError(f"{path}: no id (the engine's name, as in id = \"edsr-baseline-x2\")")
    for table, keys in (("model", MODEL_KEYS), ("data", DATA_KEYS + CLIP_KEYS)):
        unknown = sorted(set(data.get(table, {})) - set(keys))
        if unknown:
            near = difflib.get_close_matches(unknown[0], keys, n=1)
            raise ValueError(f"{path}: unknown [{table}] key {unknown[0]!r}" + (f"; did you mean {near[0]!r}?"
                                                                                 if near else ""))
    for table, required in TABLES.items():
        missing = [k for k in required if k not in data.get(table, {})]
        if missing:
            raise ValueError(f"{path}: [{table}] needs {', '.join(missing)}")
    if data["model"]["preset"] not in PRESETS:
        raise ValueError(f"{path}: [model] preset {data['model']['preset']!r} is none of {', '.join(PRESETS)}")


CLIP_KEYS = ("window", "max_windows", "max_side", "clip_variants", "frames", "val_frames", "val_side")


def _clip_keys(path: Path, d: dict[str, Any], arch: str) -> dict[str, Any]:
    """The [data] keys of video training, checked: clips need a recurrent model and held-out clips for the curve.
    A held-out sequence inside a training folder is left out of training (``train_sequences``); a training folder
    inside a held-out one is an error."""
    if "clips" not in d:
        if architecture(arch).recurrent:
            raise ValueError(f"{path}: a recurrent model ({arch}) trains on video: give [data] clips and val_clips")
        return {}
    if not architecture(arch).recurrent:
        raise ValueError(f"{path}: [data] clips train a recurrent model (rvsr), not {arch}")
    clips, held = tuple(d["clips"]), tuple(d.get("val_clips", ()))
    if not held:
        raise ValueError(f"{path}: [data] clips needs val_clips, the sequences held out for the curve")
    for h in map(Path, held):
        if any(c.is_relative_to(h) for c in map(Path, clips)):
            raise ValueError(f"{path}: {h} is held out for validation and cannot also be trained on")
    keys = {k: int(d[k]) for k in CLIP_KEYS if k in d}
    if keys.get("frames", 6) > keys.get("window", 10) or any(v < 1 for v in keys.values()):
        raise ValueError(f"{path}: [data] frames (per step) must be at most window, and every count at least 1")
    return keys | {"clips": clips, "val_clips": held}
