"""The work in a video or image file: how many frames of what size a run will upscale, read from the header the
way the run reads the file. Estimates (``vidsr upscale``, ``vidsr batch``, the web page) start from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av


@dataclass(frozen=True)
class Work:
    """The frames a run will upscale: ``frames`` (None when the input does not say, a pipe) of ``width`` x
    ``height`` input pixels, at ``scale``."""

    frames: int | None
    width: int
    height: int
    scale: int

    @property
    def output_pixels(self) -> int:
        return self.width * self.height * self.scale * self.scale


def work_of_stream(info: Any, scale: int) -> Work:
    """The work in an open reader's ``SourceInfo``."""
    cc = info.stream.codec_context
    return Work(info.frames or None, int(cc.width), int(cc.height), scale)


def work_of_file(path: str, scale: int, image: bool, start: float, duration: float | None,
                 in_format: str | None) -> Work:
    """The work in a file, read the way the run reads it (the same frame count, window included)."""
    if image:  # the size from the header: decoding a large image here would read it twice
        try:
            with av.open(path) as c:
                cc = c.streams.video[0].codec_context
                return Work(1, int(cc.width), int(cc.height), scale)
        except (av.error.FFmpegError, IndexError):
            from vidsr.errors import VidsrError

            raise VidsrError(f"{path}: not an image FFmpeg can read") from None
    from vidsr.video.reader import VideoReader

    reader = VideoReader(path, in_format, start, duration, False, False)
    try:
        return work_of_stream(reader.info, scale)
    finally:
        reader.close()
