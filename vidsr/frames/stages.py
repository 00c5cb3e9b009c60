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

from vidsr.frames.clock import StageClock
from vidsr.frames.motion_filter import MotionFilter
from vidsr.frames.recurrence import Recurrence, after_hole
from vidsr.frames.upscaler import Upscaler
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

# Output frames larger than 4K go through prepare, infer and finish tile by tile (see FrameUpscaler._large).
LARGE_OUTPUT = 3840 * 2160
LARGE_TILE = 480  # LR pixels a side, even (4:2:0 tiles must start on even output rows and columns)
LARGE_OVERLAP = 16  # LR pixels of context each side, cut away: as the upscaler's own tiles


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
    motion: MotionFilter | None = None  # temporal filtering of the output along the input's motion
    resized: dict[str, int] = field(default_factory=dict)  # frames of another size than the first, by size

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
        arch = self.upscaler.arch
        # A recurrent engine's memory of the frames before: one per stream, fed every frame in order.
        self.recurrence = Recurrence(self.scale, self.upscaler.features, arch.channels) if arch.recurrent else None

    @property
    def colour(self) -> str:
        return self.upscaler.arch.colour

    def planes(self, frame: av.VideoFrame) -> list[np.ndarray]:
        if (frame.width, frame.height) != (self.width, self.height):
            # The output stream has one size: a mid-stream change is scaled to the first frame's, and said so.
            self.resized[f"{frame.width}x{frame.height}"] = self.resized.get(f"{frame.width}x{frame.height}", 0) + 1
        if frame.format.name != self.work_fmt or (frame.width, frame.height) != (self.width, self.height):
            # Other layouts (nv12, rgb, a mid-stream size change) go through swscale once, here.
            frame = frame.reformat(width=self.width, height=self.height, format=self.work_fmt)
        return planes_of(frame, self.work_fmt)

    def network_input(self, frames: list[av.VideoFrame]) -> torch.Tensor:
        """What the upscaler is fed for these frames: the Y plane in [0, 1], or RGB in the stream's own matrix."""
        return self._network_input([self.planes(f) for f in frames])

    def __call__(self, frames: list[av.VideoFrame]) -> list[av.VideoFrame]:
        if self.out_w * self.out_h > LARGE_OUTPUT and not self.compare and self.recurrence is None:
            return [self._large(f) for f in frames]
        with self.clock("prepare"):
            planes = [self.planes(f) for f in frames]
            x = self._network_input(planes)
        with self.clock("infer"):
            sr = self.infer(x, [p[0] for p in planes], frames)
        with self.clock("finish"):
            ys, chroma = self._luma_back(sr, planes) if self.colour == "Y" else self._rgb_back(sr)
            if self.motion:  # the input's luma is at hand here; the device path filters on the device
                steady = [self._steadied(p[0], [y, u, v]) for p, y, (u, v) in zip(planes, ys, chroma)]
                ys, chroma = [y for y, _, _ in steady], [(u, v) for _, u, v in steady]
            return self.to_frames(frames, ys, chroma)

    def infer(self, x: torch.Tensor, lumas: list[np.ndarray], frames: list[av.VideoFrame]) -> torch.Tensor:
        """The upscaler's output for the batch ``x`` (on any device): at once, or for a recurrent engine frame after
        frame, each with the state the one before left (``lumas``: the frames' input Y planes, which the motion is
        measured on)."""
        if self.recurrence is None:
            return self.upscaler(x)
        out = []
        for i, frame in enumerate(frames):
            xi = x[i:i + 1]
            packed = self.recurrence.packed(xi, lumas[i], self.in_bits, after_hole(frame))
            out.append(self.recurrence.keep(self.upscaler(packed), xi))
        return torch.cat(out)

    def _large(self, frame: av.VideoFrame) -> av.VideoFrame:
        """One frame whose output is larger than 4K, prepared, inferred and finished tile by tile into integer
        output planes, so that no float copy of the whole output frame ever exists (4K -> 8K held 3-7 GB)."""
        with self.clock("prepare"):
            planes = self.planes(frame)
            if self.colour == "RGB":  # chroma at luma resolution, still in integer code values
                planes = [planes[0]] + [resize_plane(c, self.width, self.height, self.in_bits) for c in planes[1:]]
        dtype = np.uint8 if self.out_bits == 8 else np.uint16
        cw, ch = chroma_size(self.plane_fmt, self.out_w, self.out_h)
        out_y = np.empty((self.out_h, self.out_w), dtype)
        if self.colour == "Y":
            with self.clock("finish"):
                out_u, out_v = (self._rescale_bits(resize_plane(c, cw, ch, self.in_bits)) for c in planes[1:])
        else:
            out_u, out_v = np.empty((ch, cw), dtype), np.empty((ch, cw), dtype)
        s, o = self.scale, LARGE_OVERLAP
        for top in range(0, self.height, LARGE_TILE):
            for left in range(0, self.width, LARGE_TILE):
                bottom, right = min(top + LARGE_TILE, self.height), min(left + LARGE_TILE, self.width)
                y0, x0 = max(top - o, 0), max(left - o, 0)
                y1, x1 = min(bottom + o, self.height), min(right + o, self.width)
                with self.clock("prepare"):
                    x = self._crop_input(planes, y0, y1, x0, x1)
                with self.clock("infer"):
                    sr = self.upscaler(x)[..., (top - y0) * s:(bottom - y0) * s, (left - x0) * s:(right - x0) * s]
                with self.clock("finish"):
                    self._place(sr, out_y, out_u, out_v, top * s, left * s)
        with self.clock("finish"):
            out = frame_from_planes(self._steadied(planes[0], [out_y, out_u, out_v]), self.plane_fmt)
            if self.plane_fmt != self.out_fmt:
                out = out.reformat(format=self.out_fmt)
            out.pts, out.time_base = frame.pts, frame.time_base
        return out

    def _crop_input(self, planes: list[np.ndarray], y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        y = torch.from_numpy(planes[0][y0:y1, x0:x1].astype(np.float32))[None]
        if self.colour == "Y":
            return y[:, None] / luma_scale(self.in_bits)
        u = torch.from_numpy(planes[1][y0:y1, x0:x1].astype(np.float32))[None]
        v = torch.from_numpy(planes[2][y0:y1, x0:x1].astype(np.float32))[None]
        return yuv_to_rgb(y, u, v, self.matrix, self.range, self.in_bits)

    def _place(self, sr: torch.Tensor, out_y: np.ndarray, out_u: np.ndarray, out_v: np.ndarray, top: int,
               left: int) -> None:
        """Write one output tile (at output pixel top, left; both even) into the output planes."""
        h, w = sr.shape[-2:]
        if self.colour == "Y":
            out_y[top:top + h, left:left + w] = to_code(sr[0, 0] * luma_scale(self.out_bits), self.out_bits)
            return
        y2, u2, v2 = rgb_to_yuv(sr, self.matrix, self.range, self.out_bits)
        out_y[top:top + h, left:left + w] = to_code(y2[0], self.out_bits)
        sx, sy = self._subsampling()
        cy, cx = top >> sy, left >> sx
        ch, cw = min(out_u.shape[0] - cy, -(-h >> sy)), min(out_u.shape[1] - cx, -(-w >> sx))
        for src, dst in ((u2[0], out_u), (v2[0], out_v)):
            small = cv2.resize(src.numpy(), (cw, ch), interpolation=cv2.INTER_AREA)
            dst[cy:cy + ch, cx:cx + cw] = to_code(torch.from_numpy(small), self.out_bits)

    def _subsampling(self) -> tuple[int, int]:
        """(x, y) chroma subsampling shifts of the output layout: (1, 1) for 4:2:0, (1, 0) 4:2:2, (0, 0) 4:4:4."""
        cw, ch = chroma_size(self.plane_fmt, 4, 4)
        return (4 // cw).bit_length() - 1, (4 // ch).bit_length() - 1

    def _network_input(self, planes: list[list[np.ndarray]]) -> torch.Tensor:
        y = torch.from_numpy(np.stack([p[0] for p in planes]).astype(np.float32))
        if self.colour == "Y":
            return y[:, None] / luma_scale(self.in_bits)
        w, h = self.width, self.height
        u = torch.from_numpy(np.stack([resize_plane(p[1], w, h, self.in_bits) for p in planes]).astype(np.float32))
        v = torch.from_numpy(np.stack([resize_plane(p[2], w, h, self.in_bits) for p in planes]).astype(np.float32))
        return yuv_to_rgb(y, u, v, self.matrix, self.range, self.in_bits)

    def to_frames(self, frames: list[av.VideoFrame], ys: list, chroma: list) -> list[av.VideoFrame]:
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

    def _steadied(self, luma: np.ndarray, planes: list[np.ndarray]) -> list[np.ndarray]:
        return self.motion(luma, planes, self.in_bits, self.out_bits) if self.motion else planes

    def _rescale_bits(self, plane: np.ndarray) -> np.ndarray:
        if self.in_bits == self.out_bits:
            return plane
        return to_code(torch.from_numpy(plane.astype(np.float32) * (1 << self.out_bits) / (1 << self.in_bits)),
                       self.out_bits)

    def _luma_back(self, y_sr: torch.Tensor, planes: list[list[np.ndarray]]):
        y_sr = y_sr[:, 0] * luma_scale(self.out_bits)
        cw, ch = chroma_size(self.plane_fmt, self.out_w, self.out_h)
        chroma = [tuple(self._rescale_bits(resize_plane(c, cw, ch, self.in_bits)) for c in p[1:]) for p in planes]
        return [to_code(t, self.out_bits) for t in y_sr], chroma

    def _rgb_back(self, sr: torch.Tensor):
        y2, u2, v2 = rgb_to_yuv(sr, self.matrix, self.range, self.out_bits)
        cw, ch = chroma_size(self.plane_fmt, self.out_w, self.out_h)

        def down(c: torch.Tensor) -> torch.Tensor:
            # Area averaging is the right filter from 4:4:4 down to the output's chroma grid.
            return torch.from_numpy(cv2.resize(c.numpy(), (cw, ch), interpolation=cv2.INTER_AREA))

        chroma = [(to_code(down(a), self.out_bits), to_code(down(b), self.out_bits)) for a, b in zip(u2, v2)]
        return [to_code(t, self.out_bits) for t in y2], chroma
