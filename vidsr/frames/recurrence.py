"""The state a recurrent engine (RVSR) carries from one frame of a stream to the next, and when it starts afresh.

Frame t's network input is the frame with the last hidden state and the last frame stacked after it, both warped
onto frame t along the motion: DIS optical flow measured on the input's 8-bit luma, from frame t back to t-1 (the
flow the training clips were given). The state starts afresh (zero hidden state, the frame as its own predecessor)
at the first frame, and wherever the frame before cannot be trusted:

- a scene cut: more than ``CUT_SHARE`` of the pixels still differ by over ``CUT_LEVEL`` after the warp, which
  motion and noise alone do not do (so no ghost of the last shot is carried into the next);
- a hole in the input (frames the container lost; the reader marks the frame after it);
- a change of frame size.

A run with ``--start`` opens its own stream, so its first frame starts afresh too. Nothing is looked ahead: each
output frame leaves as soon as its input is in (a latency of 0 frames), and the state is one frame's worth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import torch

from vidsr.frames.motion_filter import flow_to_previous
from vidsr.frames.motion_filter import warp as warp_plane
from vidsr.models.rvsr import split_output, warp
from vidsr.video.reader import AFTER_HOLE

CUT_LEVEL = 24.0  # 8-bit code values of warp mismatch that motion, noise and codec artefacts rarely leave
CUT_SHARE = 0.4  # the share of pixels over CUT_LEVEL that says the frame shows another shot


def after_hole(frame: Any) -> bool:
    """Whether the reader marked ``frame`` (an av.VideoFrame) as the first after a hole."""
    opaque = getattr(frame, "opaque", None)
    return isinstance(opaque, dict) and bool(opaque.get(AFTER_HOLE))


@dataclass(frozen=True)
class Restart:
    """Where the state started afresh: the frame's index in the stream and why (start, cut, hole, size)."""

    frame: int
    reason: str


@dataclass
class Recurrence:
    """One stream's recurrent state; fed every frame in order (``packed``, then ``keep`` with the network's
    output). Tensors stay on whatever device the frames come on, so the GPU path keeps the state there."""

    scale: int
    features: int
    channels: int = 3
    restarts: list[Restart] = field(default_factory=list)
    frames: int = field(default=0, init=False)
    _dis: Any = field(init=False, repr=False)  # cv2.DISOpticalFlow
    _luma: np.ndarray | None = field(default=None, init=False, repr=False)
    _hidden: torch.Tensor | None = field(default=None, init=False, repr=False)
    _frame: torch.Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]

    def packed(self, x: torch.Tensor, luma: np.ndarray, in_bits: int, hole: bool = False) -> torch.Tensor:
        """The network input for frame ``x`` ((1, C, H, W) in [0, 1]), whose input luma is ``luma`` (code values
        of ``in_bits``, at the network's input size): the frame, the aligned hidden state, the aligned last frame.
        ``hole``: frames are missing before this one."""
        luma8 = luma if in_bits == 8 else (luma >> (in_bits - 8)).astype(np.uint8)
        prev_luma, self._luma = self._luma, luma8
        index, self.frames = self.frames, self.frames + 1
        reason = self._fresh_reason(prev_luma, luma8, x, hole)
        if reason is None:
            assert prev_luma is not None and self._hidden is not None and self._frame is not None
            flow = flow_to_previous(self._dis, luma8, prev_luma)
            if _cut(luma8, prev_luma, flow):
                reason = "cut"
            else:
                f = torch.from_numpy(flow).permute(2, 0, 1)[None].to(x.device)
                return torch.cat([x, warp(self._hidden, f), warp(self._frame, f)], 1)
        self.restarts.append(Restart(index, reason))
        hidden = x.new_zeros(x.shape[0], self.features, *x.shape[-2:])
        return torch.cat([x, hidden, x], 1)

    def keep(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Take the network's output for frame ``x``: keep its hidden state (and the frame) for the next, and
        return the HR frame."""
        y, self._hidden = split_output(out, self.channels, self.scale)
        self._frame = x
        return y

    def _fresh_reason(self, prev_luma: np.ndarray | None, luma8: np.ndarray, x: torch.Tensor,
                      hole: bool) -> str | None:
        if prev_luma is None or self._hidden is None:
            return "start"
        if prev_luma.shape != luma8.shape or self._hidden.shape[-2:] != x.shape[-2:]:
            return "size"
        return "hole" if hole else None

    def counts(self) -> dict[str, int]:
        """How many times the state started afresh, by reason (for --json)."""
        out: dict[str, int] = {}
        for r in self.restarts:
            out[r.reason] = out.get(r.reason, 0) + 1
        return out


def _cut(luma: np.ndarray, prev: np.ndarray, flow: np.ndarray) -> bool:
    """Whether the warp along ``flow`` leaves more than CUT_SHARE of the pixels off by over CUT_LEVEL."""
    warped = warp_plane(prev, flow)  # the temporal filter's warp, its grid made once per frame size
    return float(np.mean(np.abs(luma.astype(np.float32) - warped) > CUT_LEVEL)) > CUT_SHARE
