"""How fast an engine runs on this machine, measured once and remembered, so that a run can say how long it will
take before it starts.

The probe times the engine's own runtime on a small frame (``PROBE_SIDE`` pixels of the network's input), which
costs a second or two where a whole frame of a large engine costs tens. Convolutions cost per pixel, so seconds
per output megapixel carry over to the real frame size. A finished run then records what the whole pipeline
took per output megapixel (decode, filter and encode included), and later estimates use that figure, which is the
truer one.

Every figure is keyed by what changes it (vs-mlrt's rule for engine names): the engine and its weights, the
scale, the runtime, precision and device, the thread count and the CPU model.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from vidsr.files import atomic_write_json, cache_root
from vidsr.runtime.cpu import cpu_model, default_threads

PROBE_SIDE = 128
PROBE_CALLS = 2  # timed, after one that warms the runtime (first-shape setup, caches)
# The probe times inference alone. On the CPU engines decode, colour, the temporal filter and x264 add about a
# tenth: a 768x432 clip spent 92% of its time in inference (issue 39's run). A finished run replaces the guess.
PIPELINE_FACTOR = 1.1
SPEED_FILE = "speed.json"
SAY_AFTER_S = 10.0


@dataclass(frozen=True)
class SpeedKey:
    """Everything that changes how fast an engine runs here."""

    engine: str
    weights_sha256: str
    scale: int
    runtime: str
    precision: str
    device: str
    threads: int
    cpu: str
    # The encoder preset and the temporal filter, which a finished run's figure includes: x264 medium with the
    # filter took 1.65x the fast engine's inference, veryfast without it 0.98x (docs/PERFORMANCE.md).
    pipeline: str = ""

    @property
    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class Speed:
    """Seconds per output megapixel: ``probe`` for the network alone, ``run`` for a whole run (None until one
    has finished)."""

    probe: float
    run: float | None = None
    measured: str = ""

    @property
    def seconds_per_mp(self) -> float:
        return self.run if self.run is not None else self.probe * PIPELINE_FACTOR

    @property
    def source(self) -> str:
        return "from a finished run on this machine" if self.run is not None else \
            "from a probe of the engine on this machine"


@dataclass(frozen=True)
class Estimate:
    """What a run expects: ``frames`` (None when the input cannot tell, a pipe), at ``seconds_per_frame``."""

    frames: int | None
    seconds_per_frame: float
    source: str

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames * self.seconds_per_frame

    @property
    def worth_saying(self) -> bool:
        """Whether the run is long enough for a line about it: ``SAY_AFTER_S`` or more, or a second or more a
        frame where the count is unknown (a pipe). Shorter runs are over before the line is read."""
        return self.seconds >= SAY_AFTER_S if self.seconds is not None else self.seconds_per_frame >= 1.0

    @property
    def fps(self) -> float:
        return 1.0 / self.seconds_per_frame if self.seconds_per_frame > 0 else float("inf")

    def line(self, engine: str, runtime: str, precision: str) -> str:
        """One line for stderr: frames, expected time and where the figure comes from."""
        rate = f"{self.fps:.2f} fps" if self.fps < 10 else f"{self.fps:.0f} fps"
        what = f"{engine} on {runtime}/{precision}, {self.source}"
        if self.frames is None:
            return f"expect about {rate} ({what})"
        return f"{self.frames} frames, expect about {duration_text(self.seconds or 0.0)} at {rate} ({what})"

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "seconds": None if self.seconds is None else round(self.seconds, 3),
                "fps": round(self.fps, 3), "source": self.source}


def duration_text(seconds: float) -> str:
    """3 s, 4 min, 2 h 10 min, 3 days: as a person says a rough time."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{seconds / 86400:.1f} days"


def speed_key(engine: Any, scale: int, runtime: Any, pipeline: str = "") -> SpeedKey:
    """The key for ``engine`` at ``scale`` on ``runtime`` (an object with name, precision and device), behind
    ``pipeline`` (the encoder preset and the temporal filter; "" for images)."""
    return SpeedKey(engine.id, str(engine.manifest.weights_sha256), int(scale), runtime.name,
                    str(getattr(runtime, "precision", "fp32")), str(getattr(runtime, "device", "cpu")),
                    default_threads(), cpu_model(), pipeline)


def _load() -> dict[str, Any]:
    try:
        data = json.loads((cache_root() / SPEED_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save(key: SpeedKey, speed: Speed) -> None:
    data = _load()
    data[key.text] = asdict(speed)
    try:
        atomic_write_json(cache_root() / SPEED_FILE, data)
    except OSError:
        pass  # an estimate is a courtesy: a cache that cannot be written costs a probe next time, nothing more


def cached_speed(key: SpeedKey) -> Speed | None:
    raw = _load().get(key.text)
    try:
        return Speed(**raw) if isinstance(raw, dict) else None
    except TypeError:
        return None


def probe_speed(upscaler: Any, channels: int, key: SpeedKey) -> Speed:
    """The cached speed for ``key``, else one measured on ``upscaler`` (its runtime, tiling and precision) with a
    ``PROBE_SIDE`` square of ``channels`` and stored."""
    known = cached_speed(key)
    if known is not None:
        return known
    side = PROBE_SIDE // key.scale if upscaler.arch.input_space == "HR" else PROBE_SIDE
    x = torch.rand(1, channels, side, side)
    upscaler(x)
    best = float("inf")
    for _ in range(PROBE_CALLS):
        start = time.perf_counter()
        upscaler(x)
        best = min(best, time.perf_counter() - start)
    output_mp = (side * key.scale) ** 2 / 1e6
    speed = Speed(probe=best / output_mp, measured=time.strftime("%Y-%m-%d"))
    _save(key, speed)
    return speed


def record_run(key: SpeedKey, seconds: float, frames: int, output_pixels: int) -> None:
    """A finished run's end-to-end figure; later estimates for ``key`` use it. Runs too short to mean anything
    (under 2 s or 3 frames, where start-up dominates) are not recorded."""
    if seconds < 2.0 or frames < 3 or output_pixels <= 0:
        return
    known = cached_speed(key)
    per_mp = seconds / (frames * output_pixels / 1e6)
    _save(key, Speed(probe=known.probe if known else per_mp / PIPELINE_FACTOR, run=per_mp,
                     measured=time.strftime("%Y-%m-%d")))


def estimate(speed: Speed, frames: int | None, output_pixels: int) -> Estimate:
    """The expected time of ``frames`` frames of ``output_pixels`` each (None: unknown)."""
    return Estimate(frames, speed.seconds_per_mp * output_pixels / 1e6, speed.source)
