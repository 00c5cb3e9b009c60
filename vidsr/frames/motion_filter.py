"""Motion-compensated temporal filtering of the output, for compressed and noisy footage.

A single-frame network sees each frame's codec noise afresh, so what it restores differs a little from frame to
frame where the picture does not: flat areas shimmer and fine detail crawls. Each output frame is blended with the
previous filtered output, warped along the motion of the input, wherever that warp explains the input well:

    out'[t] = out[t] + strength * c * (W(out'[t-1]) - out[t]),   c = exp(-blur((lr[t] - W(lr[t-1]))^2) / tol^2)

W warps with DIS optical flow (OpenCV) measured on the input's luma, from frame t back to t-1, and scaled to each
output plane. Where the motion is not explained (occlusions, new objects, a scene cut) c falls to 0 and the frame
passes as it is, so moving content is not smeared into the next frame. The history is recursive, so noise averages
over a few frames (strength 0.5 weights frame t-k by about 0.5^k where the motion holds).

Flow is measured at input resolution, so it costs little next to the network.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

MODES = ("auto", "on", "off")
STRENGTH = 0.5  # weight of the motion-compensated history where it matches: frame t-k counts about 0.5^k
TOLERANCE = 8.0  # 8-bit input code values of warp mismatch at which the history is trusted e^-1 as much
MISMATCH_BLUR = 1.0  # input pixels: the mismatch is judged over a neighbourhood, not one noisy pixel


def wanted(mode: str, engine_degradation: str, fast: bool = False) -> bool:
    """Whether to filter: ``on`` and ``off`` as asked; ``auto`` for engines made for degraded input, since clean
    input has no codec noise to average away and its fine detail should not be smoothed, except in the fast tier
    (``fast``, ``--quality fast``): there the flow and the blend at the output's size took longer than the network
    itself (PERFORMANCE.md, the fast tier's pipeline), and that tier is chosen for speed."""
    if mode not in MODES:
        raise ValueError(f"temporal filter mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode == "on" or (mode == "auto" and engine_degradation != "clean" and not fast)


@functools.lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx, gy


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` sampled at each pixel's position plus ``flow`` (HxWx2, x then y), bilinear, edges repeated."""
    gx, gy = _grid(*flow.shape[:2])
    return cv2.remap(image, gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


MIN_FLOW_SIDE = 16  # DIS refuses frames under 12 pixels a side, and under 16 it has little to go on


def flow_to_previous(dis: Any, luma: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """Where each pixel of ``luma`` was in ``prev`` (HxWx2, x then y), by DIS optical flow on 8-bit planes; no
    motion for frames too small for DIS (a 2x2 video)."""
    if min(luma.shape) < MIN_FLOW_SIDE:
        return np.zeros((*luma.shape, 2), np.float32)
    return dis.calc(luma, prev, None)


def _to_8bit(luma: np.ndarray, bits: int) -> np.ndarray:
    return luma if bits == 8 else (luma >> (bits - 8)).astype(np.uint8)


@dataclass
class Motion:
    """How one input frame moved from the last, at input resolution: where each pixel was (HxWx2, x then y, in
    pixels) and how far that warp is trusted (HxW, 0 to 1)."""

    flow: np.ndarray
    trust: np.ndarray
    _sized: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def at(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """Flow and trust for an (h, w) output plane, the flow in that plane's pixels; resized once per size (4:2:0
        chroma planes share theirs)."""
        fh, fw = self.flow.shape[:2]
        if (h, w) == (fh, fw):
            return self.flow, self.trust
        if (h, w) not in self._sized:
            flow = cv2.resize(self.flow, (w, h), interpolation=cv2.INTER_LINEAR) * np.array([w / fw, h / fh],
                                                                                           np.float32)
            self._sized[h, w] = flow, cv2.resize(self.trust, (w, h), interpolation=cv2.INTER_LINEAR)
        return self._sized[h, w]


@dataclass
class MotionFilter:
    """Filters a stream of output frames in order; one instance per video, fed every frame. The history lives on
    the host (``__call__``, NumPy and OpenCV) or on the model's device (``motion`` then ``blend_device``, torch),
    whichever path the frames take."""

    strength: float = STRENGTH
    tolerance: float = TOLERANCE
    filtered: int = field(default=0, init=False)  # frames that had a history to blend with
    _dis: Any = field(init=False, repr=False)  # cv2.DISOpticalFlow, whose stubs refuse calc's flow=None
    _prev_luma: np.ndarray | None = field(default=None, init=False, repr=False)
    _prev_planes: list[Any] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength < 1.0:
            raise ValueError(f"strength must be in [0, 1), not {self.strength}")
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]

    def motion(self, luma: np.ndarray, in_bits: int) -> Motion | None:
        """The motion from the last input frame to this one (``luma``: its Y plane, code values of ``in_bits``);
        None for the first frame or after a change of size."""
        luma8 = _to_8bit(luma, in_bits)
        prev, self._prev_luma = self._prev_luma, luma8
        if prev is None or prev.shape != luma8.shape:
            return None
        flow = flow_to_previous(self._dis, luma8, prev)
        mismatch = luma8.astype(np.float32) - warp(prev, flow).astype(np.float32)
        trust = np.exp(-cv2.GaussianBlur(mismatch * mismatch, (0, 0), MISMATCH_BLUR) / self.tolerance ** 2)
        return Motion(flow, trust)

    def __call__(self, luma: np.ndarray, planes: list[np.ndarray], in_bits: int, out_bits: int) -> list[np.ndarray]:
        """The filtered output planes of one frame.

        luma: the input frame's Y plane (integer code values of ``in_bits``), which the motion is measured on.
        planes: the output frame's planes (Y, U, V; integer code values of ``out_bits``), any sizes.
        """
        moved = self.motion(luma, in_bits)
        current = [p.astype(np.float32) for p in planes]
        if moved is not None and self._fits(current):
            current = [self._blend(c, p, moved) for c, p in zip(current, self._prev_planes)]
            self.filtered += 1
        self._prev_planes = current
        top = float((1 << out_bits) - 1)
        return [np.clip(np.rint(c), 0, top).astype(p.dtype) for c, p in zip(current, planes)]

    @torch.inference_mode()
    def blend_device(self, planes: tuple[torch.Tensor, ...], motions: list[Motion | None],
                     out_bits: int) -> tuple[torch.Tensor, ...]:
        """``__call__`` on the model's device for a batch: ``planes`` are (N, H, W) integer code tensors (Y, U, V)
        and ``motions`` their frames' ``motion``, measured on the host; the history stays on the device."""
        from vidsr.video.planes_torch import quantise

        out: list[list[torch.Tensor]] = [[] for _ in planes]
        for i, moved in enumerate(motions):
            current = [p[i].float() for p in planes]
            if moved is not None and self._fits(current):
                sized = _DeviceMotion(moved, current[0].device)
                current = [self._blend_on_device(c, p, sized) for c, p in zip(current, self._prev_planes)]
                self.filtered += 1
            self._prev_planes = current
            for k, c in enumerate(current):
                out[k].append(quantise(c, out_bits))
        return tuple(torch.stack(o) for o in out)

    def _fits(self, current: list[Any]) -> bool:
        return [tuple(p.shape) for p in self._prev_planes] == [tuple(c.shape) for c in current]

    def _blend_on_device(self, current: torch.Tensor, prev: torch.Tensor, sized: _DeviceMotion) -> torch.Tensor:
        warped, trust = sized.warp(prev)
        return current + (self.strength * trust) * (warped - current)

    def _blend(self, current: np.ndarray, prev: np.ndarray, moved: Motion) -> np.ndarray:
        flow, trust = moved.at(*current.shape)
        return current + (self.strength * trust) * (warp(prev, flow) - current)


class _DeviceMotion:
    """A frame's ``Motion`` on the model's device, with the sampling grid and trust of each plane size made once
    (4:2:0 chroma planes share theirs): the same bilinear resizes as ``Motion.at`` (pixel centres at +0.5) and the
    same warp as ``warp`` (bilinear, edges repeated), in float rather than OpenCV's fixed-point weights."""

    def __init__(self, moved: Motion, device: torch.device):
        self.flow = torch.from_numpy(moved.flow).to(device)
        self.trust = torch.from_numpy(moved.trust).to(device)
        self.sized: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def warp(self, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``prev`` (H, W) warped along the motion, and the trust at that size."""
        h, w = prev.shape
        if (h, w) not in self.sized:
            self.sized[h, w] = self._grid(h, w)
        grid, trust = self.sized[h, w]
        warped = F.grid_sample(prev[None, None], grid, mode="bilinear", padding_mode="border", align_corners=True)
        return warped[0, 0], trust

    def _grid(self, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
        flow, trust = self.flow, self.trust
        fh, fw = flow.shape[:2]
        if (h, w) != (fh, fw):
            scale = torch.tensor([w / fw, h / fh], device=flow.device)
            flow = F.interpolate(flow.permute(2, 0, 1)[None], size=(h, w), mode="bilinear")[0].permute(1, 2, 0) * scale
            trust = F.interpolate(trust[None, None], size=(h, w), mode="bilinear")[0, 0]
        ys = torch.arange(h, dtype=torch.float32, device=flow.device)[:, None]
        xs = torch.arange(w, dtype=torch.float32, device=flow.device)[None, :]
        grid = torch.stack([(xs + flow[..., 0]) * (2 / max(w - 1, 1)) - 1,
                            (ys + flow[..., 1]) * (2 / max(h - 1, 1)) - 1], dim=-1)
        return grid[None], trust
