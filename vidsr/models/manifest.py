"""``engines/<id>/manifest.json`` as a typed record: load (with validation), the questions callers ask of it,
and save. The JSON keeps every key it had, so nothing a newer vidsr wrote is lost by an older one's save."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidsr.errors import VidsrError
from vidsr.files import atomic_write_json

REQUIRED = ("id", "arch", "scales", "weights_sha256")
Scores = dict[str, dict[str, dict[str, Any]]]  # set name -> scale -> {"psnr", "ssim", "bicubic_psnr", ...}


@dataclass
class Training:
    """The ``training`` block: what the run cost and how far it got."""

    steps: int | None = None
    target_steps: int | None = None
    cpu_hours: float | None = None
    discarded_runs: list[dict[str, Any]] = field(default_factory=list)
    recipe_changes: list[dict[str, Any]] = field(default_factory=list)
    cpu_hours_with_discarded: float | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Training:
        return cls(raw.get("steps"), raw.get("target_steps"), raw.get("cpu_hours"), raw.get("discarded_runs", []),
                   raw.get("recipe_changes", []), raw.get("cpu_hours_with_discarded"))

    def discarded_cpu_hours(self) -> float:
        return sum(r.get("cpu_hours", 0.0) for r in self.discarded_runs)


@dataclass
class EngineManifest:
    id: str
    arch: str
    scales: tuple[int, ...]
    weights_sha256: str
    family: str = ""
    preset: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    params: int | None = None
    training: Training = field(default_factory=Training)
    curve: list[dict[str, Any]] = field(default_factory=list)
    eval: Scores = field(default_factory=dict)
    # Engines for real footage: the degradation they were trained on, and their scores under its val spec.
    degradation: dict[str, Any] = field(default_factory=dict)
    eval_degraded: dict[str, Scores] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "manifest") -> EngineManifest:
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise VidsrError(f"{where}: missing {', '.join(missing)}; not an engine manifest vidsr can use")
        scales = raw["scales"]
        if not isinstance(scales, list) or not scales or not all(isinstance(s, int) and s > 1 for s in scales):
            raise VidsrError(f"{where}: \"scales\" must be a list of whole scales such as [2] or [2, 3, 4], not "
                             f"{json.dumps(scales)}")
        return cls(id=raw["id"], arch=raw["arch"], scales=tuple(raw["scales"]), weights_sha256=raw["weights_sha256"],
                   family=raw.get("family", raw["arch"]), preset=raw.get("preset", ""),
                   config=raw.get("config", {}), params=raw.get("params"),
                   training=Training.of(raw.get("training", {})), curve=raw.get("curve", []),
                   eval=raw.get("eval", {}), degradation=raw.get("degradation", {}),
                   eval_degraded=raw.get("eval_degraded", {}), raw=raw)

    @classmethod
    def load(cls, path: Path) -> EngineManifest:
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise VidsrError(f"{path}: unreadable engine manifest ({e})") from None
        return cls.from_dict(raw, str(path))

    def save(self, path: Path) -> None:
        atomic_write_json(path, self.raw, durable=True)

    @property
    def kind(self) -> str:
        """``real`` for engines trained on degraded inputs (noise, codecs), ``clean`` for MATLAB-bicubic ones."""
        return str(self.degradation.get("kind", "clean"))

    def psnr(self, dataset: str, scale: int) -> float | None:
        row = self.eval.get(dataset, {}).get(str(scale))
        return None if row is None else row.get("psnr")

    def mean_psnr(self, scale: int) -> float | None:
        """Mean Y-PSNR over the eval sets at ``scale`` (Set5 and Set14 for shipped engines), or None."""
        values = [v for name in self.eval if (v := self.psnr(name, scale)) is not None]
        return sum(values) / len(values) if values else None

    def degraded_psnr(self, scale: int) -> float | None:
        """Mean Y-PSNR over the eval sets under the (first) degradation the engine was scored with, or None."""
        tables = list(self.eval_degraded.values())[:1]
        values = [row["psnr"] for t in tables for sets in t.values() if (row := sets.get(str(scale)))]
        return sum(values) / len(values) if values else None
