"""Deinterlacing before super-resolution, with FFmpeg's own filters through PyAV's filter graph.

A network upscales combing as if it were detail, so interlaced archive material must be made progressive first.
``auto`` runs bwdif on the frames the decoder flags as interlaced and passes progressive ones through untouched;
``yadif`` and ``bwdif`` force that filter on every frame (for files whose flags lie). One frame out per frame in
(``send_frame``), so the frame count and every timestamp stay as they were.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any

import av

MODES = ("off", "auto", "yadif", "bwdif")


class FrameFilter:
    """FFmpeg filters (a chain of (name, args)) run on decoded frames through PyAV's filter graph, built from the
    first frame: the decoder is the authority on size and pixel format."""

    def __init__(self, stream: av.video.stream.VideoStream, chain: list[tuple[str, str]]):
        self.time_base = stream.time_base or Fraction(1, 1000)
        self.chain = chain
        self.graph: av.filter.Graph | None = None

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        g = av.filter.Graph()
        node = g.add_buffer(width=frame.width, height=frame.height, format=frame.format, time_base=self.time_base)
        for name, args in self.chain:
            nxt = g.add(name, args)
            node.link_to(nxt)
            node = nxt
        node.link_to(g.add("buffersink"))
        g.configure()
        return g

    def _drain(self) -> Iterator[av.VideoFrame]:
        assert self.graph is not None
        while True:
            try:
                out = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            # A deinterlacer works in field time (half the time base); bring timestamps back to the stream's.
            assert isinstance(out, av.VideoFrame) and out.pts is not None and out.time_base is not None
            out.pts = int(round(out.pts * out.time_base / self.time_base))
            out.time_base = self.time_base
            yield out

    def __call__(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            if self.graph is None:
                self.graph = self._build(frame)
            self._saw(frame)
            self.graph.push(frame)
            yield from self._drain()

    def _saw(self, frame: av.VideoFrame) -> None:
        pass

    def flush(self) -> Iterator[av.VideoFrame]:
        """The frames the filter still holds (bwdif looks one frame ahead)."""
        if self.graph is None:
            return
        self.graph.push(None)
        yield from self._drain()


class Deinterlacer(FrameFilter):
    def __init__(self, stream: av.video.stream.VideoStream, mode: str):
        deint = "interlaced" if mode == "auto" else "all"
        super().__init__(stream, [("bwdif" if mode == "auto" else mode, f"mode=send_frame:parity=auto:deint={deint}")])
        self.deinterlaced = 0  # frames the decoder flagged as interlaced (what auto acts on)

    def _saw(self, frame: av.VideoFrame) -> None:
        self.deinterlaced += bool(frame.interlaced_frame)


def rotation_chain(frame: av.VideoFrame) -> tuple[list[tuple[str, str]], int]:
    """The filters that show a frame the way its display matrix says (as FFmpeg's own autorotate does), and the
    rotation in degrees; ([], 0) without a matrix. Encoders here take no display matrix, so the pictures turn."""
    entries: list[Any] = list(frame.side_data)
    matrix = next((bytes(sd) for sd in entries if getattr(sd.type, "name", "") == "DISPLAYMATRIX"), None)
    if matrix is None or len(matrix) < 36:
        return [], 0
    m = struct.unpack("<9i", matrix[:36])
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if not s0 or not s1:
        return [], 0
    theta = round(math.degrees(math.atan2(m[1] / s1, m[0] / s0))) % 360  # -av_display_rotation_get, as fftools
    flip = m[0] * m[4] - m[1] * m[3] < 0
    chain = {90: [("transpose", "clock")], 180: [("hflip", ""), ("vflip", "")],
             270: [("transpose", "cclock")]}.get(theta, [])
    return chain + ([("hflip", "")] if flip else []), theta
