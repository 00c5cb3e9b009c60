"""The output options a user types (--codec, --crf, --preset, --pix-fmt, --format), checked before any work, so
that a typo is a usage error naming the valid values, not an FFmpeg message about a hidden temporary file."""

from __future__ import annotations

import difflib
import io

import av

from vidsr.errors import UsageError
from vidsr.video.nvenc import NVENC, NVENC_PRESETS

# What people type for an encoder, and the encoder FFmpeg calls it.
CODEC_ALIASES = {"h264": "libx264", "x264": "libx264", "avc": "libx264", "h265": "libx265", "hevc": "libx265",
                 "x265": "libx265", "av1": "libsvtav1", "vp9": "libvpx-vp9", "mpeg2": "mpeg2video"}
# The range of --crf each encoder accepts (x264 clamps 52-63 silently, x265 fails to open).
# NVENC's cq 0 means "automatic", not lossless, so it starts at 1.
CRF_RANGE = {"libx264": (0, 51), "libx265": (0, 51), "libsvtav1": (0, 63), "libaom-av1": (0, 63),
             "libvpx-vp9": (0, 63), **{c: (1, 51) for c in NVENC}}
X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
PRESETS = {"libx264": X26X_PRESETS, "libx265": X26X_PRESETS, "libsvtav1": tuple(str(i) for i in range(14)),
           **{c: X26X_PRESETS + NVENC_PRESETS for c in NVENC}}
COMMON_PIX_FMTS = ("yuv420p", "yuv420p10le", "yuv422p", "yuv422p10le", "yuv444p", "yuv444p10le", "nv12", "gray")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(close)}?" if close else ""


def check_codec(codec: str) -> None:
    if codec in CODEC_ALIASES and codec not in av.codecs_available:
        raise UsageError(f"unknown encoder {codec!r}; FFmpeg calls it {CODEC_ALIASES[codec]} "
                         f"(--codec {CODEC_ALIASES[codec]})")
    try:
        found = av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        video = sorted(c for c in av.codecs_available if c.startswith(("lib", "ffv1", "mpeg", "h26", "hevc", "av1")))
        raise UsageError(f"unknown encoder {codec!r}{_suggest(codec, video)}") from None
    if found.type != "video":
        raise UsageError(f"{codec!r} is not a video encoder")


def check_crf(codec: str, crf: int | None) -> None:
    if crf is None or codec not in CRF_RANGE:
        return
    lo, hi = CRF_RANGE[codec]
    if not lo <= crf <= hi:
        raise UsageError(f"--crf {crf} is outside {codec}'s range {lo}-{hi}")


AUTO_PRESET = "auto"
DEFAULT_PRESET = "medium"
FAST_PRESET = "veryfast"  # x264 at veryfast keeps up with the fast tier at 1080p on 2 cores; medium does not


def encoder_preset(asked: str | None, fast: bool) -> str | None:
    """``--preset`` as the encoder gets it: ``auto`` is veryfast in the fast tier (``fast``), else medium."""
    if asked != AUTO_PRESET:
        return asked
    return FAST_PRESET if fast else DEFAULT_PRESET


def check_preset(codec: str, preset: str | None) -> None:
    valid = PRESETS.get(codec)
    if preset and preset != AUTO_PRESET and valid and preset not in valid:
        raise UsageError(f"--preset {preset!r} is not one of {codec}'s: {', '.join(valid)}")


def check_pix_fmt(pix_fmt: str | None) -> None:
    if pix_fmt is None:
        return
    try:
        av.VideoFormat(pix_fmt)
    except (ValueError, av.error.FFmpegError):
        raise UsageError(f"unknown pixel format {pix_fmt!r}; common ones: {', '.join(COMMON_PIX_FMTS)}") from None


def check_format(muxer: str | None) -> None:
    if muxer and muxer not in av.formats_available:
        names = sorted(av.formats_available | {"mkv", "y4m", "ts"})
        raise UsageError(f"unknown output format {muxer!r}{_suggest(muxer, names)}")


def check_encode(codec: str, crf: int | None, preset: str | None, pix_fmt: str | None, muxer: str | None) -> None:
    """Every output option at once, in the order a user reads them."""
    check_format(muxer)
    check_codec(codec)
    check_crf(codec, crf)
    check_preset(codec, preset)
    check_pix_fmt(pix_fmt)


def check_codec_in(codec: str, muxer: str | None) -> None:
    """An encoder the container cannot hold (x265 into WebM) is a usage error before any work, as FFmpeg's own
    check says it when the stream is added."""
    if not muxer:
        return
    try:
        with av.open(io.BytesIO(), mode="w", format=muxer) as scratch:
            scratch.add_stream(codec)
    except (ValueError, av.error.FFmpegError) as e:
        raise UsageError(f"--codec {codec} cannot go into {muxer} ({e}); choose another --codec or container") from None
