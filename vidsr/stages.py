"""The per-frame work between decoder and encoder: prepare (planes to tensors), infer, finish (back to frames).

Y models take the decoded Y plane as it is and chroma is upscaled bicubic, so there is no RGB round trip. RGB
models convert with the stream's own matrix and range and convert back with the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import cv2
import numpy as np
import torch

from vidsr.clock import StageClock
from vidsr.upscaler import Upscaler
from vidsr.video.colour import (
    PLANAR,
    ColourTags,
    chroma_size,
    frame_from_planes,
    luma_scale,
    planes_of,
    resize_plane,
    rgb_to_yuv,
    to_code,
    yuv_to_rgb,
)
from vidsr.video.compare import bicubic_planes, compose


def bits_of(fmt: str) -> int:
    return PLANAR[fmt][2] if fmt in PLANAR else av.VideoFormat(fmt).components[0].bits


def planar_for(out_fmt: str, work_fmt: str) -> str:
    """The planar layout we build output frames in before (if needed) swscale converts to ``out_fmt``."""
    if out_fmt in PLANAR:
        return out_fmt
    sub = work_fmt.split("p")[0]  # yuv420 / yuv422 / yuv444
    return f"{sub}p10le" if bits_of(out_fmt) > 8 else f"{sub}p"


@dataclass
class FrameUpscaler:
    upscaler: Upscaler
    work_fmt: str  # planar format frames are read in
    out_fmt: str  # pixel format handed to the encoder
    tags: ColourTags
    width: int  # source size
    height: int
    clock: StageClock = field(default_factory=StageClock)
    compare: str | None = None  # "side" or "split": a QA view of bicubic against the model

    def __post_init__(self) -> None:
        self.scale = self.upscaler.scale
        self.in_bits = bits_of(self.work_fmt)
        self.plane_fmt = planar_for(self.out_fmt, self.work_fmt)
        self.out_bits = bits_of(self.plane_fmt)
        self.out_w, self.out_h = self.width * self.scale, self.height * self.scale
        # What the encoder receives: twice as wide for a side-by-side comparison.
        self.frame_w = self.out_w * (2 if self.compare == "side" else 1)
        self.matrix = self.tags.effective_matrix(self.height)
        self.range = self.tags.effective_range()

    @property
    def colour(self) -> str:
        return self.upscaler.arch.colour

    def _planes(self, frame: av.VideoFrame) -> list[np.ndarray]:
        if frame.format.name != self.work_fmt or (frame.width, frame.height) != (self.width, self.height):
            # Other layouts (nv12, rgb, a mid-stream size change) go through swscale once, here.
            frame = frame.reformat(width=self.width, height=self.height, format=self.work_fmt)
        return planes_of(frame, self.work_fmt)

    def network_input(self, frames: list[av.VideoFrame]) -> torch.Tensor:
        """What the upscaler is fed for these frames: the Y plane in [0, 1], or RGB in the stream's own matrix."""
        return self._network_input([self._planes(f) for f in frames])

    def __call__(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        with self.clock("prepare"):
            planes = [self._planes(f) for f in frames]
            x = self._network_input(planes)
        with self.clock("infer"):
            sr = self.upscaler(x)
        with self.clock("finish"):
            ys, chroma = self._luma_back(sr, planes) if self.colour == "Y" else self._rgb_back(sr)
            return self._frames(frames, ys, chroma)

    def _network_input(self, planes: list[list[np.ndarray]]) -> torch.Tensor:
        y = torch.from_numpy(np.stack([p[0] for p in planes]).astype(np.float32))
        if self.colour == "Y":
            return y[:, None] / luma_scale(self.in_bits)
        w, h = self.width, self.height
        u = torch.from_numpy(np.stack([resize_plane(p[1], w, h) for p in planes]).astype(np.float32))
        v = torch.from_numpy(np.stack([resize_plane(p[2], w, h) for p in planes]).astype(np.float32))
        return yuv_to_rgb(y, u, v, self.matrix, self.range, self.in_bits)

    def _frames(self, frames: list[av.VideoFrame], ys: list, chroma: list) -> list[av.VideoFrame]:
        out = []
        for src, y, (u, v) in zip(frames, ys, chroma):
            planes = [y, u, v]
            if self.compare:
                ref = bicubic_planes(src, self.out_w, self.out_h, self.plane_fmt)
                planes = compose(ref, planes, self.compare, self.plane_fmt)
            frame = frame_from_planes(planes, self.plane_fmt)
            if self.plane_fmt != self.out_fmt:
                frame = frame.reformat(format=self.out_fmt)
            frame.pts, frame.time_base = src.pts, src.time_base
            out.append(frame)
        return out

    def _rescale_bits(self, plane: np.ndarray) -> np.ndarray:
        if self.in_bits == self.out_bits:
            return plane
        return to_code(torch.from_numpy(plane.astype(np.float32) * (1 << self.out_bits) / (1 << self.in_bits)),
                       self.out_bits)

    def _luma_back(self, y_sr: torch.Tensor, planes: list[list[np.ndarray]]):
        y_sr = y_sr[:, 0] * luma_scale(self.out_bits)
        cw, ch = chroma_size(self.plane_fmt, self.out_w, self.out_h)
        chroma = [tuple(self._rescale_bits(resize_plane(c, cw, ch)) for c in p[1:]) for p in planes]
        return [to_code(t, self.out_bits) for t in y_sr], chroma

    def _rgb_back(self, sr: torch.Tensor):
        y2, u2, v2 = rgb_to_yuv(sr, self.matrix, self.range, self.out_bits)
        cw, ch = chroma_size(self.plane_fmt, self.out_w, self.out_h)

        def down(c: torch.Tensor) -> torch.Tensor:
            # Area averaging is the right filter from 4:4:4 down to the output's chroma grid.
            return torch.from_numpy(cv2.resize(c.numpy(), (cw, ch), interpolation=cv2.INTER_AREA))

        chroma = [(to_code(down(a), self.out_bits), to_code(down(b), self.out_bits)) for a, b in zip(u2, v2)]
        return [to_code(t, self.out_bits) for t in y2], chroma
