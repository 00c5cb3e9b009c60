"""Deinterlacing before super-resolution, with FFmpeg's own filters through PyAV's filter graph.

A network upscales combing as if it were detail, so interlaced archive material must be made progressive first.
``auto`` runs bwdif on the frames the decoder flags as interlaced and passes progressive ones through untouched;
``yadif`` and ``bwdif`` force that filter on every frame (for files whose flags lie). One frame out per frame in
(``send_frame``), so the frame count and every timestamp stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import av

MODES = ("off", "auto", "yadif", "bwdif")


class Deinterlacer:
    def __init__(self, stream: av.video.stream.VideoStream, mode: str):
        self.filter = "bwdif" if mode == "auto" else mode
        deint = "interlaced" if mode == "auto" else "all"
        self.time_base = stream.time_base or Fraction(1, 1000)
        self.graph: av.filter.Graph | None = None
        self.args = f"mode=send_frame:parity=auto:deint={deint}"
        self.deinterlaced = 0  # frames the decoder flagged as interlaced (what auto acts on)

    def _build(self, frame: av.VideoFrame) -> av.filter.Graph:
        g = av.filter.Graph()
        # Built from the first frame, not the header: the decoder is the authority on size and pixel format.
        src = g.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                           time_base=self.time_base)
        node = g.add(self.filter, self.args)
        sink = g.add("buffersink")
        src.link_to(node)
        node.link_to(sink)
        g.configure()
        return g

    def _drain(self) -> Iterator[av.VideoFrame]:
        assert self.graph is not None
        while True:
            try:
                out = self.graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return
            # The filter works in field time (half the time base); bring timestamps back to the stream's.
            assert isinstance(out, av.VideoFrame) and out.pts is not None and out.time_base is not None
            out.pts = int(round(out.pts * out.time_base / self.time_base))
            out.time_base = self.time_base
            yield out

    def __call__(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            if self.graph is None:
                self.graph = self._build(frame)
            self.deinterlaced += bool(frame.interlaced_frame)
            self.graph.push(frame)
            yield from self._drain()

    def flush(self) -> Iterator[av.VideoFrame]:
        """The frames the filter still holds (it looks one frame ahead)."""
        if self.graph is None:
            return
        self.graph.push(None)
        yield from self._drain()
