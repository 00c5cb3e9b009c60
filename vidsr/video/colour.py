"""Colour: planes of a decoded frame, the stream's own YCbCr matrix and range, and their conversion to RGB.

VDSR/SRCNN never leave YCbCr: they work on the Y plane as decoded, so no matrix can be got wrong. EDSR/MDSR need
RGB, and we convert with the matrix and range the stream declares (BT.601, BT.709, BT.2020; tv or pc), guessing
only when it declares none, the way players do (BT.709 from 720 lines up, BT.601 below).
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import cv2
import numpy as np
import torch

# Kr, Kb of each YCbCr matrix, by FFmpeg's AVColorSpace number.
_KR_KB = {1: (0.2126, 0.0722), 5: (0.299, 0.114), 6: (0.299, 0.114), 9: (0.2627, 0.0593), 10: (0.2627, 0.0593),
          4: (0.30, 0.11), 7: (0.212, 0.087)}
MATRIX_NAMES = {1: "bt709", 5: "bt470bg", 6: "smpte170m", 9: "bt2020nc", 10: "bt2020c", 4: "fcc", 7: "smpte240m"}
RANGE_TV, RANGE_PC = 1, 2

# Planar YUV layouts we process directly: name -> (chroma subsampling (x, y) as shifts, bit depth).
PLANAR = {
    "yuv420p": (1, 1, 8), "yuv422p": (1, 0, 8), "yuv444p": (0, 0, 8),
    "yuv420p10le": (1, 1, 10), "yuv422p10le": (1, 0, 10), "yuv444p10le": (0, 0, 10),
    "yuv420p12le": (1, 1, 12), "yuv422p12le": (1, 0, 12), "yuv444p12le": (0, 0, 12),
}
# JPEG-style formats are the same memory layout with full range.
_J_FORMATS = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}


@dataclass(frozen=True)
class ColourTags:
    """What the output must carry again. Values are FFmpeg's enum numbers; 2 means unspecified."""

    matrix: int = 2
    range: int = 0
    primaries: int = 2
    transfer: int = 2

    def effective_matrix(self, height: int) -> int:
        if self.matrix in _KR_KB:
            return self.matrix
        return 1 if height >= 720 else 6

    def effective_range(self) -> int:
        return RANGE_PC if self.range == RANGE_PC else RANGE_TV


def tags_of(frame: av.VideoFrame, stream: av.video.stream.VideoStream | None = None) -> ColourTags:
    """The frame's colour tags, falling back to the stream's (some demuxers put them only on the codec)."""
    cc = stream.codec_context if stream is not None else None

    def pick(name: str, unset: int) -> int:
        v = int(getattr(frame, name) or 0)
        if v in (unset, 0) and cc is not None:
            v = int(getattr(cc, name) or 0)
        return v

    rng = pick("color_range", 0)
    if frame.format.name in _J_FORMATS:
        rng = RANGE_PC
    return ColourTags(pick("colorspace", 2), rng, pick("color_primaries", 2), pick("color_trc", 2))


def working_format(pix_fmt: str) -> str:
    """The planar layout a source frame is processed in (its own, where we can)."""
    if pix_fmt in PLANAR:
        return pix_fmt
    if pix_fmt in _J_FORMATS:
        return _J_FORMATS[pix_fmt]
    try:
        bits = av.VideoFormat(pix_fmt).components[0].bits
    except (ValueError, IndexError):
        bits = 8
    return "yuv420p10le" if bits > 8 else "yuv420p"


def planes_of(frame: av.VideoFrame, fmt: str) -> list[np.ndarray]:
    """Y, U, V as 2-D uint8/uint16 arrays (copies) of a frame already in the planar format ``fmt``."""
    _, _, bits = PLANAR[fmt]
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<u2")
    out = []
    for plane in frame.planes:
        row = plane.line_size // dtype.itemsize
        a = np.frombuffer(memoryview(plane), dtype=dtype).reshape(-1, row)[: plane.height, : plane.width]
        out.append(a.copy())
    return out


def frame_from_planes(planes: list[np.ndarray], fmt: str) -> av.VideoFrame:
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, fmt)
    for plane, data in zip(frame.planes, planes):
        row = plane.line_size // data.dtype.itemsize
        buf = np.zeros((plane.height, row), dtype=data.dtype)
        buf[:, : data.shape[1]] = data
        plane.update(buf.tobytes())
    return frame


def chroma_size(fmt: str, width: int, height: int) -> tuple[int, int]:
    sx, sy, _ = PLANAR[fmt]
    return (width + (1 << sx) - 1) >> sx, (height + (1 << sy) - 1) >> sy


def resize_plane(plane: np.ndarray, width: int, height: int, bits: int = 8) -> np.ndarray:
    """Bicubic resize of one integer plane of ``bits`` bits, kept in its own dtype (used for chroma)."""
    if plane.shape == (height, width):
        return plane
    out = cv2.resize(plane, (width, height), interpolation=cv2.INTER_CUBIC)
    # OpenCV saturates 16-bit planes at 65535: bicubic overshoot at a sharp 10-bit edge would leave codes above
    # 1023, which no 10-bit format holds.
    return np.minimum(out, (1 << bits) - 1, out=out) if bits not in (8, 16) else out


def _levels(bits: int, rng: int) -> tuple[float, float, float, float]:
    """(y offset, y span, c centre, c span) in code values."""
    k = float(1 << (bits - 8))
    if rng == RANGE_PC:
        full = float((1 << bits) - 1)
        return 0.0, full, (1 << (bits - 1)) * 1.0, full
    return 16 * k, 219 * k, 128 * k, 224 * k


def luma_scale(bits: int) -> float:
    """Code values -> the [0, 1] scale the Y models were trained on (8-bit code / 255). 10-bit video is divided by
    1020 so that studio black and white land where they land for 8-bit."""
    return 255.0 * (1 << (bits - 8))


def yuv_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int, rng: int, bits: int) -> torch.Tensor:
    """Full-resolution Y, U, V code values (N, H, W) -> RGB in [0, 1] (N, 3, H, W) with the given matrix/range."""
    kr, kb = _KR_KB[matrix]
    kg = 1 - kr - kb
    y0, ys, c0, cs = _levels(bits, rng)
    yn = (y.float() - y0) / ys
    pb = (u.float() - c0) / cs
    pr = (v.float() - c0) / cs
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / kg
    return torch.stack([r, g, b], dim=1).clamp_(0, 1)


def rgb_to_yuv(rgb: torch.Tensor, matrix: int, rng: int, bits: int) -> tuple[torch.Tensor, ...]:
    """RGB in [0, 1] (N, 3, H, W) -> float Y, U, V code values (N, H, W), the inverse of :func:`yuv_to_rgb`."""
    kr, kb = _KR_KB[matrix]
    kg = 1 - kr - kb
    y0, ys, c0, cs = _levels(bits, rng)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    yn = kr * r + kg * g + kb * b
    pb = (b - yn) / (2 * (1 - kb))
    pr = (r - yn) / (2 * (1 - kr))
    return y0 + ys * yn, c0 + cs * pb, c0 + cs * pr


def to_code(x: torch.Tensor, bits: int) -> np.ndarray:
    """Float code values -> rounded, clipped uint8/uint16 numpy."""
    top = (1 << bits) - 1
    a = x.round().clamp_(0, top)
    return a.to(torch.uint8).numpy() if bits == 8 else a.to(torch.int32).numpy().astype(np.uint16)
