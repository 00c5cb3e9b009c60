"""What a training run has done so far: the small JSON beside the weights that makes a run resumable and
honest about its cost (``train_state.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vidsr.files import atomic_write_json


@dataclass
class TrainState:
    step: int = 0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    seed: int = 0
    recipe_sha256: str = ""
    torch_rng: list[int] = field(default_factory=list)  # torch's CPU generator state, for a bit-exact resume
    curve: list[dict[str, Any]] = field(default_factory=list)  # {"step", "cpu_hours", "x2": dB, ...}
    precision_segments: list[dict[str, Any]] = field(default_factory=list)  # {"from_step", "precision"}
    discarded_runs: list[dict[str, Any]] = field(default_factory=list)  # runs --restart replaced, with their cost
    moments_reset_at: list[int] = field(default_factory=list)  # resumes without the optimizer's moments
    recipe_changes: list[dict[str, Any]] = field(default_factory=list)  # {"step", "from", "to"} recipe hashes
    init_from: dict[str, str] = field(default_factory=dict)  # warm-start engine -> weights sha256
    teacher: dict[str, str] = field(default_factory=dict)  # distillation's engine -> weights sha256
    stopped: bool = False  # the last chunk ended on a signal, before the manifest's eval

    @classmethod
    def load(cls, path: Path) -> TrainState:
        """A state file, from any version: keys it lacks take their defaults, keys we no longer use are dropped."""
        raw = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path) -> None:
        data = asdict(self)
        data.pop("stopped")
        atomic_write_json(path, data, durable=True)

    @property
    def cpu_hours(self) -> float:
        return self.cpu_seconds / 3600

    def discarded_cpu_hours(self) -> float:
        return sum(r.get("cpu_hours", 0.0) for r in self.discarded_runs)

    def note_precision(self, precision: str, legacy: str) -> None:
        """Open a precision segment where this chunk's precision differs from the last one. A state written before
        segments were recorded starts with ``legacy``, the precision its manifest stated for its steps."""
        if not self.precision_segments and self.step > 0:
            self.precision_segments.append({"from_step": 0, "precision": legacy})
        if not self.precision_segments or self.precision_segments[-1]["precision"] != precision:
            self.precision_segments.append({"from_step": self.step, "precision": precision})

    def precision_summary(self) -> str:
        """One precision, or each with the steps it covered where resumes crossed machines of different kinds."""
        segments = self.precision_segments
        if len(segments) == 1:
            return str(segments[0]["precision"])
        return "; ".join(f"{seg['precision']} from step {seg['from_step']}" for seg in segments)
