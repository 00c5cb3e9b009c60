"""What a degradation is: one fixed draw (``Degradation``, what ``vidsr eval --degrade`` names) and the ranges a
recipe draws from (``DegradationRanges``, a recipe's ``[degradation]`` table).

A new kind of degradation is added here (its field and range) and in ``apply.py`` (what it does), nowhere else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

KERNELS = ("bicubic", "bilinear", "area", "gaussian")
# The codecs, by the names a spec uses; each maps to a real encoder in PyAV (JPEG through OpenCV).
CODECS = ("none", "h264", "hevc", "mpeg2", "jpeg")
# What a codec's quality number means, and the range each encoder accepts.
QUALITY_RANGE = {"h264": (0, 51), "hevc": (0, 51), "mpeg2": (1, 31), "jpeg": (1, 100)}
# [degradation] keys added after engines were trained on ranges without them, with the value that draws as before.
LATER_KEYS: dict[str, Any] = {"slow_prob": 0.0, "slow_pan": 0.5}
QUALITY_NAME = {"h264": "crf", "hevc": "crf", "mpeg2": "q", "jpeg": "q"}
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class Degradation:
    """One degradation of an HR image or sequence into the LR input a camera or broadcast chain would deliver.

    ``kernel`` downscales (``blur`` is the Gaussian's sigma in HR pixels for ``gaussian``); ``noise`` is a
    Gaussian sigma and ``poisson`` a shot-noise gain, both in 8-bit levels, added to every channel (``grey_noise``:
    the same to all three, so luma only); ``chroma420`` subsamples chroma; ``codec`` encodes with ``quality``
    (CRF for h264/hevc, qscale for mpeg2, quality for jpeg) at ``preset``. Video codecs see a short pan of
    ``frames`` frames, so P and B frame artefacts appear, and frame ``target`` (the unmoved one) is kept.
    """

    kernel: str = "bicubic"
    blur: float = 0.0
    noise: float = 0.0
    poisson: float = 0.0
    grey_noise: bool = False
    chroma420: bool = False
    codec: str = "none"
    quality: int = 0
    preset: str = "medium"
    frames: int = 5
    target: int = 2
    pan: tuple[float, float] = (1.3, 0.7)  # LR pixels a frame
    zoom: float = 0.004  # relative zoom a frame

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel {self.kernel!r}; choose one of {', '.join(KERNELS)}")
        if self.codec not in CODECS:
            raise ValueError(f"codec {self.codec!r}; choose one of {', '.join(CODECS)}")
        if self.codec != "none":
            lo, hi = QUALITY_RANGE[self.codec]
            if not lo <= self.quality <= hi:
                raise ValueError(f"{self.codec} {QUALITY_NAME[self.codec]}={self.quality} is outside {lo}..{hi}")
        if self.preset not in PRESETS:
            raise ValueError(f"preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.noise < 0 or self.poisson < 0 or self.blur < 0:
            raise ValueError("noise, poisson and blur cannot be negative")
        if not 0 <= self.target < self.frames:
            raise ValueError(f"target frame {self.target} is outside 0..{self.frames - 1}")

    @property
    def is_clean(self) -> bool:
        """The papers' protocol: MATLAB bicubic, nothing else."""
        return self == Degradation(frames=self.frames, target=self.target, pan=self.pan, zoom=self.zoom)

    def spec(self) -> str:
        """The canonical ``--degrade`` text of this degradation, which ``parse_spec`` reads back."""
        parts = [f"kernel={self.kernel}"]
        if self.kernel == "gaussian":
            parts.append(f"blur={self.blur:g}")
        if self.noise:
            parts.append(f"noise={self.noise:g}")
        if self.poisson:
            parts.append(f"poisson={self.poisson:g}")
        if self.grey_noise:
            parts.append("grey")
        if self.chroma420 and self.codec == "none":
            parts.append("420")
        if self.codec != "none":
            parts.append(f"{self.codec}:{QUALITY_NAME[self.codec]}={self.quality}")
            if self.codec in ("h264", "hevc") and self.preset != "medium":
                parts.append(f"preset={self.preset}")
        return ",".join(parts)


SPEC_HELP = ("comma-separated: kernel=bicubic|bilinear|area|gaussian, blur=SIGMA, noise=SIGMA, poisson=GAIN, grey, "
             "420, h264:crf=N, hevc:crf=N, mpeg2:q=N, jpeg:q=N, preset=NAME; e.g. kernel=area,noise=3,h264:crf=30")


def parse_spec(text: str) -> Degradation:
    """``kernel=area,noise=3,h264:crf=30`` -> a Degradation. Raises ValueError with the reason on a bad spec."""
    values: dict[str, Any] = {}
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty item in {text!r}")
        codec, _, rest = item.partition(":")
        if rest:
            if codec not in CODECS[1:]:
                raise ValueError(f"unknown codec {codec!r}; choose one of {', '.join(CODECS[1:])}")
            key, _, number = rest.partition("=")
            if key != QUALITY_NAME[codec]:
                raise ValueError(f"{codec} takes {QUALITY_NAME[codec]}=N, not {rest!r}")
            values |= {"codec": codec, "quality": _number(item, number, int), "chroma420": True}
        elif item in ("grey", "gray"):
            values["grey_noise"] = True
        elif item == "420":
            values["chroma420"] = True
        else:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"{item!r} is not key=value")
            if key == "kernel":
                values["kernel"] = value
            elif key == "preset":
                values["preset"] = value
            elif key in ("blur", "noise", "poisson"):
                values[key] = _number(item, value, float)
            else:
                raise ValueError(f"unknown key {key!r}")
    if values.get("kernel") == "gaussian" and not values.get("blur"):
        values["blur"] = 1.0
    return Degradation(**values)


def _number(item: str, text: str, kind: type) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"{item!r}: {text!r} is not a number") from None


ENGINE_KINDS = ("real", "heavy")  # what a [degradation] recipe's engine is for; "clean" engines have no table


@dataclass(frozen=True)
class DegradationRanges:
    """A recipe's ``[degradation]`` table: the distribution each training image's degradation is drawn from.

    Probabilities are per draw; ``[lo, hi]`` ranges are uniform. ``codecs`` maps a codec name to its weight.
    ``variants`` degraded copies of each training image are made once and cached (measured faster per CPU-hour
    than encoding on the fly: docs/REAL-FOOTAGE.md); ``val`` is the spec the curve is scored under.
    """

    # A list (drawn uniformly) or a table of weights, as ``codecs``: {area = 0.6, bicubic = 0.15, ...}.
    kernels: tuple[str, ...] | dict[str, float] = ("bicubic", "bilinear", "area", "gaussian")
    blur: tuple[float, float] = (0.3, 1.5)  # Gaussian sigma, times scale / 2
    noise_prob: float = 0.6
    noise: tuple[float, float] = (0.0, 8.0)
    poisson_prob: float = 0.3
    poisson: tuple[float, float] = (0.0, 0.5)
    grey_noise_prob: float = 0.4
    chroma420_prob: float = 0.5  # without a codec; every video codec here subsamples
    codecs: dict[str, float] = field(default_factory=lambda: {"h264": 0.6, "hevc": 0.1, "mpeg2": 0.1,
                                                              "jpeg": 0.1, "none": 0.1})
    h264_crf: tuple[int, int] = (18, 38)
    hevc_crf: tuple[int, int] = (20, 38)
    mpeg2_q: tuple[int, int] = (2, 14)
    jpeg_q: tuple[int, int] = (30, 95)
    presets: tuple[str, ...] = ("veryfast", "faster", "medium", "slow")
    frames: int = 5
    pan: float = 2.0  # largest LR pixels a frame, either axis
    zoom: float = 0.01  # largest relative zoom a frame
    # The share of clips that move slowly, within +-slow_pan LR pixels a frame (their zoom scaled down alike), as a
    # fixed camera's footage and a slow pan do: a codec then skips and coarsely predicts blocks, so a kept frame
    # holds content left over from frames before it, which a fast pan rarely shows.
    slow_prob: float = 0.0
    slow_pan: float = 0.5
    variants: int = 16
    val: str = "kernel=area,noise=3,h264:crf=30"
    # Which input the engine is for: "real" (compressed or noisy footage) or "heavy" (heavily compressed, noisy
    # footage: --degradation auto sends H.264 above detect.HEAVY_ABOVE_QP, other codecs under
    # detect.HEAVY_BELOW_BPP, to it where one ships).
    kind: str = "real"

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str = "[degradation]") -> DegradationRanges:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; known: {', '.join(sorted(known))}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        ranges = replace(cls(), **values)
        ranges.validate(where)
        return ranges

    def validate(self, where: str) -> None:
        bad = [k for k in self.kernels if k not in KERNELS] + [c for c in self.codecs if c not in CODECS]
        if bad:
            raise ValueError(f"{where}: unknown kernels or codecs {bad}")
        for name, table in (("codecs", self.codecs), ("kernels", self.kernels)):
            values = list(table.values()) if isinstance(table, dict) else [1.0] * len(table)
            if not values or min(values) < 0 or sum(values) <= 0:
                raise ValueError(f"{where}: {name} needs non-negative weights that add up to more than 0")
        if self.kind not in ENGINE_KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(ENGINE_KINDS)}, not {self.kind!r}")
        if not 0 <= self.slow_prob <= 1 or not 0 < self.slow_pan <= self.pan:
            raise ValueError(f"{where}: slow_prob is a probability and slow_pan from over 0 to pan ({self.pan})")
        if self.variants < 1 or self.frames < 1:
            raise ValueError(f"{where}: variants and frames must be at least 1")
        parse_spec(self.val)
        for codec, (lo, hi) in (("h264", self.h264_crf), ("hevc", self.hevc_crf), ("mpeg2", self.mpeg2_q),
                                ("jpeg", self.jpeg_q)):
            Degradation(codec=codec, quality=lo)
            Degradation(codec=codec, quality=hi)

    def sha256(self) -> str:
        """The hash of what is drawn (it keys the degraded-variant cache): ``kind`` names the use, not the draw.
        Keys added later count only where they differ from their default, so that older ranges keep their hash."""
        drawn = {k: v for k, v in asdict(self).items()
                 if k != "kind" and not (k in LATER_KEYS and v == LATER_KEYS[k])}
        return hashlib.sha256(json.dumps(drawn, sort_keys=True).encode()).hexdigest()

    def draw(self, rng: np.random.Generator, scale: int) -> Degradation:
        """One degradation from these ranges; the same generator state gives the same draw."""
        if isinstance(self.kernels, dict):
            kernel = _weighted(self.kernels, rng)
        else:  # a list draws as it always has, so that the caches and engines made from one stay reproducible
            kernel = self.kernels[int(rng.integers(len(self.kernels)))]
        codec = _weighted(self.codecs, rng)
        quality = {"h264": self.h264_crf, "hevc": self.hevc_crf, "mpeg2": self.mpeg2_q,
                   "jpeg": self.jpeg_q}.get(codec, (0, 0))
        u = rng.uniform(size=6)
        target = int(rng.integers(1, self.frames)) if self.frames > 1 else 0
        # Drawn in this order, always: a seed gives the degradations (and the cached variants) it always gave.
        blur = float(rng.uniform(*self.blur)) * scale / 2 if kernel == "gaussian" else 0.0
        noise = float(rng.uniform(*self.noise)) if u[0] < self.noise_prob else 0.0
        poisson = float(rng.uniform(*self.poisson)) if u[1] < self.poisson_prob else 0.0
        level = int(rng.integers(quality[0], quality[1] + 1)) if codec != "none" else 0
        preset = self.presets[int(rng.integers(len(self.presets)))]
        pan = (float(rng.uniform(-self.pan, self.pan)), float(rng.uniform(-self.pan, self.pan)))
        zoom = float(rng.uniform(-self.zoom, self.zoom))
        if self.slow_prob and rng.uniform() < self.slow_prob:  # no draw without it: older ranges draw as they did
            slow = self.slow_pan / self.pan
            pan, zoom = (pan[0] * slow, pan[1] * slow), zoom * slow
        video = codec in ("h264", "hevc", "mpeg2")
        return Degradation(kernel=kernel, blur=blur, noise=noise, poisson=poisson,
                           grey_noise=bool(u[2] < self.grey_noise_prob),
                           chroma420=codec not in ("none", "jpeg") or bool(u[3] < self.chroma420_prob),
                           codec=codec, quality=level, preset=preset, frames=self.frames if video else 1,
                           target=target if video else 0, pan=pan, zoom=zoom)


def _weighted(table: dict[str, float], rng: np.random.Generator) -> str:
    names = list(table)
    weights = np.array([table[n] for n in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]
