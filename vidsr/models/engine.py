"""Shipped engines: ``engines/<id>/model.safetensors`` plus ``manifest.json``.

The manifest says how to rebuild the network (architecture, config, scales), where the weights came from (recipe,
data, steps, CPU-hours) and what they measure (the eval table). Weights load from safetensors only, never pickle,
and only when their sha256 matches the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from vidsr.errors import UsageError, VidsrError
from vidsr.files import atomic_write_json
from vidsr.hashing import sha256_file
from vidsr.models.flops import MANIFEST_FIELD, count_gflop_per_output_mp, gflop_per_output_mp
from vidsr.models.manifest import EngineManifest
from vidsr.models.registry import Architecture, architecture

WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"


def engines_dir() -> Path:
    """``$VIDSR_ENGINES``, else the ``engines/`` folder beside the package (an editable install or a checkout)."""
    env = os.environ.get("VIDSR_ENGINES")
    if env and not Path(env).is_dir():
        raise UsageError(f"VIDSR_ENGINES={env}: no such folder (it names the folder of engines; unset it to use "
                         "the shipped ones)")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "engines"


@dataclass
class Engine:
    path: Path
    manifest: EngineManifest = field(repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.manifest, dict):  # a manifest read by hand (tests, tools): validated here too
            self.manifest = EngineManifest.from_dict(self.manifest, str(self.path / MANIFEST))

    @property
    def id(self) -> str:
        return self.manifest.id

    @property
    def family(self) -> str:
        """The name users type: ``edsr``, ``vdsr``, ``srcnn``, ``mdsr``."""
        return self.manifest.family

    @property
    def arch(self) -> Architecture:
        return architecture(self.manifest.arch)

    @property
    def scales(self) -> tuple[int, ...]:
        return self.manifest.scales

    def build(self) -> nn.Module:
        return self.arch.build(self.manifest.config, self.scales)

    def load(self, scale: int) -> nn.Module:
        """The network with its verified weights, set to ``scale``, in eval mode."""
        model = self.build()
        try:
            model.load_state_dict(self.weights())
        except RuntimeError as e:  # torch's report spans many lines: one of ours, with its first reason
            reasons = [line.strip() for line in str(e).splitlines()[1:] if line.strip()]
            raise VidsrError(f"engine {self.id}: its weights do not fit the network its manifest describes "
                             f"({self.manifest.arch} {self.manifest.config}): {reasons[0] if reasons else e}"
                             + (f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else "")) from None
        self.arch.set_scale(model, scale)
        return self.arch.for_inference(model).eval()

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights, only once their sha256 matches the manifest (warm starts go through here too)."""
        path = self.path / WEIGHTS
        if not path.is_file():
            raise VidsrError(f"engine {self.id}: {path} is missing")
        expected, actual = self.manifest.weights_sha256, sha256_file(path)
        if expected != actual:
            raise VidsrError(f"engine {self.id}: weights sha256 {actual[:12]}… does not match the manifest "
                             f"({str(expected)[:12]}…); refusing to load")
        return load_file(str(path))

    @property
    def features(self) -> int:
        return self.arch.widest(self.manifest.config)

    @property
    def input_channels(self) -> int:
        """Channels of the network's input tensor: the frame's, plus a recurrent engine's aligned state."""
        return self.arch.input_channels(self.manifest.config)

    @property
    def degradation(self) -> str:
        return self.manifest.kind

    def degraded_psnr(self, scale: int) -> float | None:
        return self.manifest.degraded_psnr(scale)

    def eval_psnr(self, dataset: str, scale: int) -> float | None:
        return self.manifest.psnr(dataset, scale)

    def mean_psnr(self, scale: int) -> float | None:
        return self.manifest.mean_psnr(scale)

    def steps_label(self) -> str:
        """Steps trained, as "3,700 of 4,000" while the schedule is still running, so a partial run reads as one."""
        t = self.manifest.training
        if t.steps is None:
            return "-"
        return f"{t.steps:,}" if t.target_steps is None or t.steps >= t.target_steps else \
            f"{t.steps:,} of {t.target_steps:,}"

    def cpu_hours_label(self) -> str:
        """CPU-hours of the run, plus those of replaced runs, which were spent from the same budget."""
        t = self.manifest.training
        if t.cpu_hours is None:
            return "-"
        discarded = t.discarded_cpu_hours()
        return f"{t.cpu_hours:.2f}" + (f" + {discarded:.2f} discarded" if discarded else "")


def list_engines(root: Path | None = None) -> list[Engine]:
    root = root or engines_dir()
    found = []
    for manifest in sorted(root.glob(f"*/{MANIFEST}")):
        if (manifest.parent / WEIGHTS).is_file():
            found.append(Engine(manifest.parent, EngineManifest.load(manifest)))
    return found


def engine_by_id(engine_id: str, role: str) -> Engine:
    """The shipped engine whose folder is ``engine_id``, for what a recipe names it as (``role``: ``init_from``,
    ``teacher``), so that a missing one is said in the recipe's words."""
    folder = engines_dir() / engine_id
    if not (folder / MANIFEST).is_file():
        raise VidsrError(f"{role} {engine_id!r}: no engine at {folder}")
    return Engine(folder, EngineManifest.load(folder / MANIFEST))


AUTO = "auto"
# --quality: the most an engine auto picks may cost a pixel, as a share of EDSR-baseline's GFLOP per output megapixel
# at the same scale (its upsampler makes that 686 at x2 but 248 at x4, so one figure for every scale would let an x4
# engine of a quarter of EDSR-baseline's cost count as fast). fast: a tenth (the fast tier's engines, for batches of
# footage); balanced: 1.5x (the 16-block engines and the multi-frame ones built on them, not the 32-block ones);
# best: whatever measures best.
QUALITY_CAPS: dict[str, float | None] = {"fast": 0.1, "balanced": 1.5, "best": None}
# EDSR-baseline's GFLOP per output megapixel at each scale the CLI offers, as flops.count_gflop_per_output_mp counts
# it (a test holds the two together): a table, since a count costs a second and a half of a CLI's start.
EDSR_BASELINE_GFLOP = {2: 686.3, 3: 347.9, 4: 247.9}


def tier_cap(quality: str, scale: int) -> float | None:
    """The most GFLOP per output megapixel auto may pick at ``quality`` and ``scale``; None: no limit."""
    share = QUALITY_CAPS[quality]
    return None if share is None else round(share * EDSR_BASELINE_GFLOP[scale], 1)


DEFAULT_QUALITY = "best"
UNMEASURED_CHOICE = "edsr"  # the family the README argues for, where no engine carries an eval table


DEGRADATIONS = ("clean", "real", "heavy")
# Where no engine of a kind upscales a scale, the next milder kind's stands in: heavy, then real, then clean.
_MILDER = {"heavy": "real", "real": "clean"}


def kinds_from(degradation: str) -> list[str]:
    """``degradation`` and the milder kinds that stand in for it, in order (``heavy``: heavy, real, clean)."""
    kinds = [degradation]
    while kinds[-1] in _MILDER:
        kinds.append(_MILDER[kinds[-1]])
    return kinds


def _best(scored: list[tuple[float, Engine]], scale: int) -> Engine:
    return max(scored, key=lambda qe: (round(qe[0], 2), -gflop_per_output_mp(qe[1], scale)))[1]


def best_engine(engines: list[Engine], scale: int, degradation: str = "clean") -> Engine:
    """``--model auto``: the engine with the best measured quality at ``scale``, the cheaper one where two agree
    to 0.01 dB (rounded). A default chosen once by family would hand users an engine that measures worse than
    another we ship while one scale's training lags (EDSR x3 and x4 restarted from x2 while VDSR was done).

    ``degradation="real"`` or ``"heavy"`` compares the engines trained for that kind of input by their scores
    under degradation; where none upscales ``scale``, the next milder kind's choice stands (heavy, real, clean).

    Recurrent engines (for video) are left out while any single-frame one is in ``engines``: their figures come from
    clips, not images (``video_choice`` weighs them); a family of recurrent engines (``--model rvsr``) chooses
    among its own."""
    engines = [e for e in engines if not e.arch.recurrent] or engines
    for kind in kinds_from(degradation)[:-1]:
        scored = [(q, e) for e in engines if scale in e.scales and e.degradation == kind
                  and (q := e.degraded_psnr(scale)) is not None]
        if scored:
            return _best(scored, scale)
    at = [e for e in engines if scale in e.scales and e.degradation == "clean"]
    at = at or [e for e in engines if scale in e.scales]
    if not at:
        raise UsageError(f"no shipped engine upscales x{scale}")
    measured = [(q, e) for e in at if (q := e.mean_psnr(scale)) is not None]
    if not measured:
        return next((e for e in at if e.family == UNMEASURED_CHOICE), at[0])
    return _best(measured, scale)


@dataclass(frozen=True)
class VideoGain:
    """A recurrent engine's measured gain over a single-frame engine, in one run of ``vidsr eval --video`` on
    held-out sequences (the manifest's ``video_vs_single``): what auto weighs for videos."""

    engine: str
    against: str  # the single-frame engine it was measured beside
    spec: str  # the degradation of the clips ("clean": MATLAB bicubic, lossless)
    gain_db: float  # its Y-PSNR minus the single-frame engine's
    clips: int

    @classmethod
    def of(cls, engine: Engine, scale: int) -> list[VideoGain]:
        rows = engine.manifest.raw.get("video_vs_single", {}).get(str(scale), [])
        return [cls(engine.id, r["against"], r["spec"], float(r["gain_db"]), int(r["clips"])) for r in rows]


def video_choice(engines: list[Engine], scale: int, single: Engine) -> tuple[Engine, str]:
    """``--model auto`` for a video: the recurrent engine of ``single``'s kind that measured better than ``single``
    itself under every degradation it was measured with (the one whose worst gain is largest), else ``single``.
    Returns the engine and why, in a sentence."""
    measured = [(e, [g for g in VideoGain.of(e, scale) if g.against == single.id]) for e in engines
                if e.arch.recurrent and scale in e.scales and e.degradation == single.degradation]
    better = [(min(g.gain_db for g in gains), e, gains) for e, gains in measured if gains
              and min(g.gain_db for g in gains) > 0]
    if not better:
        return single, (f"no multi-frame engine measured better than {single.id} at x{scale} for "
                        f"{single.degradation} input")
    _, engine, gains = max(better, key=lambda t: t[0])
    shown = ", ".join(f"{g.gain_db:+.2f} dB under {g.spec}" for g in gains)
    return engine, f"multi-frame {engine.id} measured {shown} over {single.id} on held-out sequences"


def in_tier(engines: list[Engine], scale: int, quality: str) -> list[Engine]:
    """The engines auto may pick at ``quality`` (``tier_cap``): those within its cost at ``scale``; where none
    upscales ``scale`` within it, the cheapest at ``scale``, so that a tier without its own engine yet still runs
    the fastest one there is."""
    cap = tier_cap(quality, scale)
    if cap is None:
        return engines
    within = [e for e in engines if scale in e.scales and gflop_per_output_mp(e, scale) <= cap]
    at = [e for e in engines if scale in e.scales]
    return within or ([min(at, key=lambda e: gflop_per_output_mp(e, scale))] if at else engines)


def find_engine(model: str, scale: int, root: Path | None = None, degradation: str = "clean",
                video: bool = False, quality: str = DEFAULT_QUALITY) -> Engine:
    """The engine for a family (``edsr``), an engine id (``edsr-baseline-x2``) or ``auto`` at ``scale``; a family
    gives its best-measured engine for ``degradation`` (clean, real or heavily degraded input), else the next
    milder kind's. ``video``: the input is a video, where auto may pick a recurrent engine (``video_choice``).
    ``quality``: auto's tier (``in_tier``); a named model or family runs whatever it costs."""
    engines = list_engines(root)
    if model == AUTO:
        tier = in_tier(engines, scale, quality)
        single = best_engine(tier, scale, degradation)
        return video_choice(tier, scale, single)[0] if video else single
    named = [e for e in engines if model == e.id]
    if not named:
        # A family with several engines for one kind of input (a deeper heavy one beside the baseline's) gives
        # the one that measures best, as auto does over every family.
        family = [e for e in engines if model == e.family and scale in e.scales]
        named = [best_engine(family, scale, degradation)] if family else []
    named = named or [e for e in engines if model == e.family]
    if not named:
        known = sorted({e.family for e in engines} | {e.id for e in engines})
        raise UsageError(f"unknown model {model!r}; shipped: {', '.join(known) or 'none'}")
    for engine in named:
        if scale in engine.scales:
            return engine
    scales = sorted({s for e in named for s in e.scales})
    raise UsageError(f"model {model!r} has no x{scale} engine; it ships scales {', '.join(map(str, scales))}")


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(path / MANIFEST, manifest, durable=True)


def base_manifest(engine_id: str, family: str, preset: str, arch: str, config: dict[str, Any],
                  scales: tuple[int, ...], model: nn.Module, weights_path: Path) -> dict[str, Any]:
    """The fields every manifest has: how to rebuild the network and which weights belong to it."""
    a = architecture(arch)
    return {"id": engine_id, "family": family, "preset": preset, "arch": arch, "config": config,
            "scales": list(scales), "colour": a.colour, "input_space": a.input_space,
            "params": sum(p.numel() for p in model.parameters()), "weights_sha256": sha256_file(weights_path),
            MANIFEST_FIELD: {str(s): round(count_gflop_per_output_mp(a, config, scales, s), 3) for s in scales}}


def save_engine(folder: Path, engine_id: str, family: str, preset: str, arch: str, config: dict[str, Any],
                scales: tuple[int, ...], model: nn.Module, **extra: Any) -> Engine:
    """Write weights and manifest for ``model`` (used by training and to make small engines in tests)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    manifest = base_manifest(engine_id, family, preset, arch, config, scales, model, weights) | extra
    write_manifest(folder, manifest)
    return Engine(folder, EngineManifest.from_dict(manifest))
