"""Container names users type, and what each container can hold."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream

# Still images, by extension: what upscale treats as an image, training and eval read, and batch collects.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
ALIASES = {"y4m": "yuv4mpegpipe", "mkv": "matroska", "ts": "mpegts"}
# Containers that hold one raw video stream and nothing else.
VIDEO_ONLY = {"yuv4mpegpipe", "rawvideo"}


def add_video_stream(out: av.container.OutputContainer, codec: str, rate: Fraction | int) -> VideoStream:
    """``out.add_stream`` for a video encoder, typed as the video stream it returns."""
    stream = out.add_stream(codec, rate=rate)
    if not isinstance(stream, VideoStream):
        raise ValueError(f"{codec} is not a video encoder")
    return stream


def container(fmt: str | None, path: str | None = None) -> str | None:
    """The FFmpeg muxer name for ``--format`` (aliases resolved), or for the path's extension where it matters."""
    if fmt:
        return ALIASES.get(fmt, fmt)
    if path and Path(path).suffix.lower() == ".y4m":
        return "yuv4mpegpipe"
    return None


def default_codec(muxer: str | None) -> str:
    return "rawvideo" if muxer in VIDEO_ONLY else "libx264"


def holds_side_streams(muxer: str | None) -> bool:
    return muxer not in VIDEO_ONLY
