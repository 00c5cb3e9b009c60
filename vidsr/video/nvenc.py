"""NVIDIA's hardware encoders (NVENC), which the PyAV wheels carry: their options in x264's terms, the pixel
formats they take, whether one can start on this machine, and the choice `--codec` auto makes on CUDA.

``--crf N`` means constant quality N: NVENC's VBR with target quality ``cq`` N and no bit-rate cap (``b`` 0),
the closest thing it has to x264's CRF (both steer the quantiser around N). ``--preset`` takes x264's names,
mapped onto NVENC's p1 (fastest) to p7 (best), or p1-p7 themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction

import av

from vidsr.errors import VidsrError

NVENC = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")
NVENC_PRESETS = tuple(f"p{i}" for i in range(1, 8))
_FROM_X26X = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
              "medium": "p5", "slow": "p6", "slower": "p7", "veryslow": "p7", "placebo": "p7"}
# The layouts NVENC reads for each planar one vidsr works in. 4:2:2 is left out on purpose: FFmpeg lists it, but
# only the newest GPUs encode it, so 4:2:2 sources are encoded 4:2:0 (and the run says so).
_NVENC_LAYOUT = {"yuv420p10le": "p010le", "yuv420p12le": "p016le", "yuv444p10le": "yuv444p16le",
                 "yuv444p12le": "yuv444p16le"}
_PROBE_SIDE = 256  # NVENC refuses tiny frames; any real size opens if this does


def nvenc_preset(preset: str | None) -> str:
    if not preset:
        return "p5"
    return preset if preset in NVENC_PRESETS else _FROM_X26X[preset]


def nvenc_options(crf: int | None, preset: str | None) -> dict[str, str]:
    """What the encoder is opened with for ``--crf`` and ``--preset``."""
    opts = {"preset": nvenc_preset(preset), "tune": "hq", "rc": "vbr", "b": "0"}
    if crf is not None:
        opts["cq"] = str(crf)
    return opts


def nvenc_pix_fmt(codec: str, work_fmt: str) -> str:
    """The pixel format ``codec`` is fed for frames in ``work_fmt``: the same where it reads it, else the same
    depth and subsampling in the layout NVENC reads, else 4:2:0 of the same depth."""
    supported = {f.name for f in av.codec.Codec(codec, "w").video_formats or []}
    if "422" not in work_fmt:
        for fmt in (work_fmt, _NVENC_LAYOUT.get(work_fmt, "")):
            if fmt in supported:
                return fmt
    deep = av.VideoFormat(work_fmt).components[0].bits > 8
    return "p010le" if deep else "yuv420p"


@functools.lru_cache(maxsize=16)
def nvenc_error(codec: str, pix_fmt: str = "yuv420p") -> str | None:
    """None when ``codec`` opens here for ``pix_fmt``; else why not, in FFmpeg's words (no GPU or driver, a GPU
    without this codec or depth, every encoder session taken)."""
    cc = av.CodecContext.create(codec, "w")
    assert isinstance(cc, av.VideoCodecContext)
    cc.width = cc.height = _PROBE_SIDE
    cc.pix_fmt = pix_fmt
    cc.time_base = Fraction(1, 25)
    cc.options = nvenc_options(23, "p1")
    try:
        cc.open()
    except (av.error.FFmpegError, ValueError) as e:
        # FFmpeg's own reason (no libcuda, no device, unsupported depth) goes to its log; the error carries errno.
        return getattr(e, "strerror", None) or str(e)
    return None


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder a run uses, and why (``--json``'s ``codec_choice``; a note the user sees when not silent)."""

    codec: str
    reason: str
    note: str | None = None  # a fallback the user should hear about


def choose_encoder(asked: str | None, default: str, device: str, deep: bool, muxer_video_only: bool) -> EncoderChoice:
    """--codec as given, or auto: NVENC on CUDA where it opens (HEVC for 10-bit or HDR sources, as on the CPU),
    else ``default``. An explicit NVENC codec that cannot open is a clear error, not a silent fallback."""
    fmt = "p010le" if deep else "yuv420p"
    if asked in NVENC:
        why = nvenc_error(asked, fmt)
        if why:
            raise VidsrError(f"--codec {asked}: NVENC cannot start here ({why}); it needs an NVIDIA GPU with "
                             f"its driver and a free encoder session; use --codec {default}")
        return EncoderChoice(asked, "asked for")
    if asked:
        return EncoderChoice(asked, "asked for")
    if not device.startswith("cuda") or muxer_video_only:
        return EncoderChoice(default, "the CPU encoder for a CPU run" if not muxer_video_only else
                             "the container holds raw video")
    candidate = "hevc_nvenc" if deep else "h264_nvenc"
    why = nvenc_error(candidate, fmt)
    if why is None:
        return EncoderChoice(candidate, "NVENC on the GPU the model runs on")
    return EncoderChoice(default, f"NVENC unavailable ({why})",
                         note=f"{candidate} cannot start ({why}); encoding with {default} on the CPU")
