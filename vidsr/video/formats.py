"""Container names users type, and what each container can hold."""

from __future__ import annotations

import functools
from fractions import Fraction
from pathlib import Path

import av
from av.video.stream import VideoStream

from vidsr.errors import UsageError

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
    suffix = Path(path).suffix.lower() if path else ""
    if suffix == ".y4m":
        return "yuv4mpegpipe"
    if suffix == ".webm":  # its codec must be chosen for it: WebM holds VP8, VP9 and AV1 only
        return "webm"
    return None


# Muxers that take no video we encode: animated images (palettes, no x264).
NOT_VIDEO_OUTPUTS = {"gif": "GIF", "apng": "animated PNG", "webp": "animated WebP"}


@functools.lru_cache(maxsize=1)
def _output_extensions() -> dict[str, str]:
    """Each file extension FFmpeg writes, and a muxer that writes it (the first by name)."""
    found: dict[str, str] = {}
    for name in sorted(av.formats_available):
        try:
            fmt = av.ContainerFormat(name)
        except (ValueError, av.error.FFmpegError):
            continue
        if fmt.is_output:
            for ext in fmt.extensions:
                found.setdefault(ext.lower(), name)
    return found


def muxer_for(fmt: str | None, path: str) -> str | None:
    """The muxer FFmpeg will use for ``--format`` or, without one, for the output name's extension."""
    return container(fmt, path) or _output_extensions().get(Path(path).suffix.lower().lstrip("."))


def check_video_output(path: str) -> None:
    """An output name whose extension names no video container FFmpeg writes is a usage error, said before any
    work; so is an animated-image format, which takes no video we encode."""
    suffix = Path(path).suffix.lower().lstrip(".")
    muxer = _output_extensions().get(suffix)
    if muxer is None:
        raise UsageError(f"{path}: FFmpeg writes no container called .{suffix}; use .mkv, .mp4, .mov, .webm or .ts, "
                         "or give --format")
    if muxer in NOT_VIDEO_OUTPUTS or suffix in ("gif", "apng"):
        raise UsageError(f"{path}: {NOT_VIDEO_OUTPUTS.get(muxer, suffix.upper())} output is not supported (a "
                         "palette, no video codec); write .mp4, .mkv or .webm and convert it afterwards")


def default_codec(muxer: str | None, deep_or_hdr: bool = False) -> str:
    """rawvideo for Y4M; VP9 for WebM; HEVC (Main 10 with a 10-bit source) for 10-bit or HDR sources, which 10-bit H.264
    would leave unplayable as HDR on most TVs; libx264 for the rest."""
    if muxer in VIDEO_ONLY:
        return "rawvideo"
    if muxer == "webm":
        return "libvpx-vp9"
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
