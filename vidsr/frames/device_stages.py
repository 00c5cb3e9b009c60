"""The per-frame work on the model's device, overlapped: integer planes go up, colour work and inference run there,
integer planes come down, and several batches are in flight at once.

On CUDA each batch is uploaded from pinned memory on one stream, prepared, inferred and finished on a second, and
downloaded into pinned memory on a third, each waiting on the last through events. Up to ``depth`` batches are in
flight, so the upload of batch n+1, the inference of batch n and the download of batch n-1 overlap, and host
memory stays bounded. The Python thread only enqueues work and waits on the oldest batch's download.

The same code runs on the CPU without streams (everything in order), which is how the tests check it against
``stages.FrameUpscaler``'s OpenCV path (``vidsr.video.planes_torch`` says how close).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
import torch

from vidsr.frames.motion_filter import Motion
from vidsr.frames.stages import LARGE_OUTPUT, FrameUpscaler
from vidsr.video import planes_torch as pt
from vidsr.video.colour import chroma_size

DEPTH = 3  # batches in flight: one uploading, one inferring, one downloading


@dataclass
class InFlight:
    """One batch on its way: its source frames, the packets that ride after it, and its planes coming down."""

    frames: list[av.VideoFrame]
    others: list[Any]
    planes: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # host tensors, filled when ``done`` has fired
    done: torch.cuda.Event | None


@dataclass
class DeviceFrames:
    sr: FrameUpscaler
    device: str
    depth: int = DEPTH
    most_in_flight: int = field(default=0, init=False)  # the largest number of batches in flight at once

    def __post_init__(self) -> None:
        self.dev = torch.device(self.device)
        self.cuda = self.dev.type == "cuda"
        self.streams = tuple(torch.cuda.Stream(self.dev) for _ in range(3)) if self.cuda else ()
        self.chroma_w, self.chroma_h = chroma_size(self.sr.plane_fmt, self.sr.out_w, self.sr.out_h)

    @property
    def whole_frames(self) -> bool:
        """False for outputs above 4K and --compare views, which take the CPU path (tiled into integer planes;
        built on the CPU)."""
        return not self.sr.compare and (self.sr.out_w * self.sr.out_h <= LARGE_OUTPUT
                                        or self.sr.recurrence is not None)

    def run(self, batches: Iterable[tuple[list[av.VideoFrame], list[Any]]]) -> Iterator[Any]:
        """Frames and the packets riding with them, in the order they came, ``depth`` batches deep."""
        pending: deque[InFlight] = deque()
        for frames, others in batches:
            if not frames:
                if pending:
                    pending[-1].others.extend(others)
                else:
                    yield from others
                continue
            if not self.whole_frames:
                while pending:
                    yield from self._collect(pending.popleft())
                yield from self.sr(frames)
                yield from others
                continue
            pending.append(self._submit(frames, others))
            self.most_in_flight = max(self.most_in_flight, len(pending))
            if len(pending) >= self.depth:
                yield from self._collect(pending.popleft())
        while pending:
            yield from self._collect(pending.popleft())

    def _stream(self, i: int) -> contextlib.AbstractContextManager:
        return torch.cuda.stream(self.streams[i]) if self.cuda else contextlib.nullcontext()

    def _event(self, i: int) -> torch.cuda.Event | None:
        if not self.cuda:
            return None
        event = torch.cuda.Event()
        event.record(self.streams[i])
        return event

    def _host(self, arrays: list[np.ndarray]) -> torch.Tensor:
        """The batch's planes of one kind, stacked into (pinned, on CUDA) host memory; 16-bit as int16."""
        a = arrays[0]
        dtype = torch.uint8 if a.dtype == np.uint8 else torch.int16
        buf = torch.empty((len(arrays), *a.shape), dtype=dtype, pin_memory=self.cuda)
        np.stack(arrays, out=buf.numpy().view(a.dtype))
        return buf

    def _submit(self, frames: list[av.VideoFrame], others: list[Any]) -> InFlight:
        sr = self.sr
        with sr.clock("prepare"):
            host = [self._host(list(p)) for p in zip(*(sr.planes(f) for f in frames))]
            with self._stream(0):
                y, u, v = (h.to(self.dev, non_blocking=True) for h in host)
            uploaded = self._event(0)
            if uploaded is not None:
                self.streams[1].wait_event(uploaded)
            motions = self._motions(host[0])
            with self._stream(1):
                for t in (y, u, v):
                    if self.cuda:
                        t.record_stream(self.streams[1])  # allocated on the upload stream, used here
                planes = self._infer(y, u, v, host[0], frames)
                if sr.motion is not None:
                    planes = sr.motion.blend_device(planes, motions, sr.out_bits)
            inferred = self._event(1)
            if inferred is not None:
                self.streams[2].wait_event(inferred)
            with self._stream(2):
                out = []
                for t in planes:
                    if self.cuda:
                        t.record_stream(self.streams[2])
                    h = torch.empty(t.shape, dtype=t.dtype, pin_memory=self.cuda)
                    out.append(h.copy_(t, non_blocking=self.cuda))
            return InFlight(frames, list(others), (out[0], out[1], out[2]), self._event(2))

    def _motions(self, luma: torch.Tensor) -> list[Motion | None]:
        """The temporal filter's motion for each frame of the batch, measured on the host from its input luma
        (what DIS flow needs), so that only the warps and blends of full-size planes run on the device."""
        motion = self.sr.motion
        if motion is None:
            return []
        planes = luma.numpy().view(np.uint8 if luma.dtype == torch.uint8 else np.uint16)
        return [motion.motion(plane, self.sr.in_bits) for plane in planes]

    @torch.inference_mode()
    def _infer(self, y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, luma: torch.Tensor,
               frames: list[av.VideoFrame]) -> tuple[torch.Tensor, ...]:
        """Colour work and inference on the device; ``luma`` is the host copy of ``y``, which a recurrent engine's
        motion is measured on (the state itself stays on the device)."""
        sr = self.sr
        if sr.colour == "Y":
            out = sr.upscaler(pt.prepare_luma(y, sr.in_bits))
            return pt.finish_luma(out, u, v, self.chroma_w, self.chroma_h, sr.in_bits, sr.out_bits)
        lumas = list(luma.numpy().view(np.uint8 if luma.dtype == torch.uint8 else np.uint16))
        out = sr.infer(pt.prepare_rgb(y, u, v, sr.matrix, sr.range, sr.in_bits), lumas, frames)
        return pt.finish_rgb(out, sr.matrix, sr.range, self.chroma_w, self.chroma_h, sr.out_bits)

    def _collect(self, batch: InFlight) -> Iterator[Any]:
        with self.sr.clock("infer"):  # waiting here is waiting for the device
            if batch.done is not None:
                batch.done.synchronize()
        with self.sr.clock("finish"):
            np_dtype = np.uint8 if self.sr.out_bits == 8 else np.uint16
            y, u, v = (t.numpy().view(np_dtype) for t in batch.planes)
            frames = self.sr.to_frames(batch.frames, list(y), list(zip(u, v)))
        yield from frames
        yield from batch.others
