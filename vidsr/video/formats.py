"""Container names users type, and what each container can hold."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream

# Still images, by extension: what upscale treats as an image, training and eval read, and batch collects.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
HDR_TRANSFERS = {16, 18}  # SMPTE ST 2084 (PQ, HDR10) and ARIB STD-B67 (HLG)
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


def default_codec(muxer: str | None, deep_or_hdr: bool = False) -> str:
    """rawvideo for Y4M; HEVC (Main 10 with a 10-bit source) for 10-bit or HDR sources, which 10-bit H.264
    would leave unplayable as HDR on most TVs; libx264 for the rest."""
    if muxer in VIDEO_ONLY:
        return "rawvideo"
    return "libx265" if deep_or_hdr else "libx264"


def is_deep_or_hdr(path: str) -> bool:
    """The first video stream has more than 8 bits or an HDR transfer (PQ, HLG); False where it cannot be read."""
    try:
        with av.open(path) as c:
            cc = c.streams.video[0].codec_context
            bits = max((comp.bits for comp in cc.format.components), default=8) if cc.format else 8
            return bits > 8 or int(cc.color_trc or 0) in HDR_TRANSFERS
    except (av.error.FFmpegError, IndexError, ValueError, OSError):
        return False


def holds_side_streams(muxer: str | None) -> bool:
    return muxer not in VIDEO_ONLY
