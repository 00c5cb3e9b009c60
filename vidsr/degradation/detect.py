"""``--degradation auto``: is this input clean enough for the clean engines, or does it need the real or the
heavy ones?

Three facts decide, all cheap: the codec (lossless or not), how hard it quantised (H.264's own mean quantiser,
which FFmpeg exports per macroblock and which means the same at every frame size; else the bits per pixel spent),
and a noise estimate on the first frames' luma. The thresholds come from the measurements in
docs/REAL-FOOTAGE.md: the real engines beat the clean ones above ``REAL_ABOVE_QP`` (below ``REAL_BELOW_BPP``),
the heavy ones beat the real ones above ``HEAVY_ABOVE_QP`` (below ``HEAVY_BELOW_BPP``), and the real ones win on
input the rate calls clean that is noisier than ``REAL_ABOVE_NOISE``. QP thresholds hold at every frame size;
bits per pixel fall with frame size at the same quality.
"""

from __future__ import annotations

import struct
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from av.sidedata.sidedata import Type as SideDataType

# Codecs whose output is the input: nothing to restore.
LOSSLESS = {"ffv1", "rawvideo", "png", "apng", "bmp", "tiff", "huffyuv", "ffvhuff", "utvideo", "magicyuv",
            "qtrle", "r210", "v210", "v410", "yuv4", "gif", "ppm", "pgm", "pam", "webp_lossless", "qoi"}
# Read off docs/REAL-FOOTAGE.md's table (Set5 pans through the video path, x2, benchmarks/auto_rule.py).
# H.264 mean QP: the real engine beat the clean one at every lossy level measured (CRF 18, QP 25, by 0.4-0.6 dB);
# the heavy one beat the real one from CRF 30 (QP 37, by 0.14) and lost to it up to CRF 26 (QP 33, by 0.1): the
# threshold is the midpoint. Bits per pixel, for codecs that export no QP, the same rows: real won at 0.87 and
# 0.81, heavy from 0.35, real at 0.44. Noise: on lossless input at RGB sigma 3 the real engine won by 0.9 dB. The
# video estimate (``video_noise_sigma``) reads that as luma sigma 1.6-2.5 on real sequences and 1.0-3.0 on the
# Set14/Set5 pans, and clean input as 0-1.6 (0 wherever the camera stands still), where the single-frame estimate
# took fine texture for noise (up to 3.6 on clean pans, 4 on DAVIS cows at x4): benchmarks/noise_estimate.py.
REAL_ABOVE_QP = 22.0  # under the lightest stream measured (CRF 18, QP 25), where real still won
HEAVY_ABOVE_QP = 35.0
REAL_BELOW_BPP = 1.0
HEAVY_BELOW_BPP = 0.39
REAL_ABOVE_NOISE = 1.6  # luma noise sigma (8-bit levels) above which an input the rate calls clean goes real
# JPEG quality (IJG scale, read back from the file's luma quantisation table): on Set5, area down, the real engine
# beat the clean one by 1.2 dB at quality 40, 1.4 at 70, 1.1 at 90 and 0.6 at 95, where on MATLAB-bicubic input
# the clean one won by 0.6 (docs/REAL-FOOTAGE.md): near 95 the downscaler decides, so the line sits below it.
# JPEG spends so many more bits than H.264 for the same loss that bits per pixel would call all of these clean.
JPEG_REAL_BELOW = 93.0
PROBE_FRAMES = 5  # the noise estimate's frames
MIN_FLOW_SIDE = 16  # DIS optical flow refuses frames under 12 pixels a side; under 16 it has little to go on
QP_FRAMES = 12  # the quantiser's: a GOP's worth of I, P and B frames, as decoding costs little next to upscaling
_H264_PARAMS = 1  # AV_VIDEO_ENC_PARAMS_H264


@dataclass(frozen=True)
class InputCondition:
    """What ``auto`` measured of an input, and what it chose (``clean``, ``real`` or ``heavy``) with the reason.
    ``quantiser`` is the H.264 mean QP of the first frames, ``jpeg_quality`` a JPEG's IJG quality; None where
    the input has no such thing."""

    codec: str
    lossless: bool
    bits_per_pixel: float | None
    noise_sigma: float
    choice: str
    reason: str
    quantiser: float | None = None
    jpeg_quality: float | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["bits_per_pixel"] = None if self.bits_per_pixel is None else round(self.bits_per_pixel, 4)
        d["quantiser"] = None if self.quantiser is None else round(self.quantiser, 2)
        d["jpeg_quality"] = None if self.jpeg_quality is None else round(self.jpeg_quality, 1)
        d["noise_sigma"] = round(self.noise_sigma, 3)
        return d


def noise_sigma(y: np.ndarray) -> float:
    """Luma noise sigma in 8-bit levels: Immerkaer's Laplacian-difference estimator (1996), taken over the
    flattest tenth of 16x16 blocks so that edges and texture do not pass for noise."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    r = np.abs(cv2.filter2D(y.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101))[1:-1, 1:-1]
    h, w = (r.shape[0] // 16) * 16, (r.shape[1] // 16) * 16
    if r.size == 0:
        return 0.0  # a frame of 2 pixels or fewer a side has no inner pixel to measure
    if h == 0 or w == 0:
        return float(np.sqrt(np.pi / 2) / 6 * r.mean())
    blocks = r[:h, :w].reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3)).ravel()
    flat = np.sort(blocks)[: max(1, blocks.size // 10)]
    return float(np.sqrt(np.pi / 2) / 6 * flat.mean())


def temporal_noise_sigma(prev: np.ndarray, y: np.ndarray) -> float:
    """Luma noise sigma from two consecutive frames: the difference of ``y`` and ``prev`` warped onto it by DIS
    optical flow, taken over the tenth of 16x16 blocks where it is least, and scaled as ``noise_sigma`` scales its
    flattest blocks. Texture moves with the scene and cancels in the difference; sensor noise is drawn afresh each
    frame and does not, so fine texture and printed text, which a single frame cannot tell from noise, pass as clean
    (exactly so where the camera stands still; under a sub-pixel pan the warp's interpolation leaves some)."""
    if min(y.shape) < MIN_FLOW_SIDE:
        return float("inf")  # DIS needs a few blocks: the spatial estimate stands
    a, b = prev.astype(np.uint8), y.astype(np.uint8)
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(b, a, None)  # type: ignore[attr-defined]
    h, w = b.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    warped = cv2.remap(a.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_CUBIC,
                       borderMode=cv2.BORDER_REPLICATE)
    d = np.abs(b.astype(np.float32) - warped)[8:-8, 8:-8]  # the warp repeats edges: their pixels are not moved
    bh, bw = (d.shape[0] // 16) * 16, (d.shape[1] // 16) * 16
    if bh == 0 or bw == 0:
        return float("inf")  # too small to tell: the spatial estimate stands
    blocks = np.sort(d[:bh, :bw].reshape(bh // 16, 16, bw // 16, 16).mean(axis=(1, 3)).ravel())
    # |N(0, s * sqrt 2)| has mean s * sqrt(2) * sqrt(2 / pi), so s = mean * sqrt(pi) / 2.
    return float(np.sqrt(np.pi) / 2 * blocks[: max(1, blocks.size // 10)].mean())


def video_noise_sigma(lumas: list[np.ndarray]) -> float:
    """The median over frames of the lesser of each frame's spatial estimate (``noise_sigma``) and its temporal
    one against the frame before (``temporal_noise_sigma``): each is raised by what it mistakes for noise (texture;
    motion the flow cannot follow), and noise raises both."""
    if not lumas:
        return 0.0
    sigmas = [noise_sigma(lumas[0])]
    for prev, y in zip(lumas, lumas[1:]):
        spatial = noise_sigma(y)
        sigmas.append(min(spatial, temporal_noise_sigma(prev, y)) if prev.shape == y.shape else spatial)
    # The first frame has no predecessor: it counts only when it is all there is.
    return float(np.median(sigmas[1:] if len(sigmas) > 1 else sigmas))


def frame_quantiser(frame: av.VideoFrame) -> float | None:
    """The mean H.264 QP of a decoded frame, each block weighted by its area, from the encoding parameters FFmpeg
    exports when the decoder has ``export_side_data=venc_params``; None for other codecs or without them."""
    # The stub types the container as a plain Mapping of str; it is keyed by Type too.
    data = frame.side_data.get(SideDataType.VIDEO_ENC_PARAMS)  # type: ignore[call-overload]
    if data is None:
        return None
    raw = bytes(data)
    # AVVideoEncParams (libavutil/video_enc_params.h), 64-bit: nb_blocks (uint32, padded), blocks_offset and
    # block_size (size_t), type (enum), qp (int32); a block is src_x, src_y, w, h, delta_qp (int32 each).
    (count,), (offset, size), (kind, qp) = (struct.unpack_from(f, raw, o) for f, o in (("=I", 0), ("=QQ", 8),
                                                                                         ("=ii", 24)))
    if kind != _H264_PARAMS:
        return None
    if not count or size % 4:
        return float(qp)
    blocks = np.frombuffer(raw, np.int32, count * size // 4, offset).reshape(count, size // 4)
    area = blocks[:, 2].astype(np.float64) * blocks[:, 3]
    return float(qp + (blocks[:, 4] * area).sum() / area.sum())


# IJG's luminance quantisation table at quality 50 (ITU-T T.81 Annex K), in the zigzag order a DQT segment uses.
_IJG_LUMA_ZIGZAG = np.array([16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49,
                             35, 37, 29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56,
                             80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103,
                             99], dtype=np.float64)


def jpeg_quality(data: bytes) -> float | None:
    """The IJG quality (1-100) a JPEG file's luma quantisation table was scaled to, or None without one: the
    inverse of libjpeg's scaling (table = base * (5000 / q or 200 - 2q) / 100), taken on the mean ratio."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDB and length >= 67 and data[i + 4] & 0x0F == 0:  # DQT, table 0 (luma)
            wide = data[i + 4] >> 4
            table = np.frombuffer(data, np.dtype(">u2") if wide else np.uint8, 64, i + 5).astype(np.float64)
            scale = float(np.mean(table * 100 / _IJG_LUMA_ZIGZAG))
            return float(np.clip(5000 / scale if scale > 100 else (200 - scale) / 2, 1, 100))
        if marker == 0xDA:  # start of scan: no table before the image data
            return None
        i += 2 + length
    return None


def decide(codec: str, bits_per_pixel: float | None, sigma: float, quantiser: float | None = None,
           jpeg_q: float | None = None) -> InputCondition:
    """Which kind of engine suits an input with this codec, rate (H.264 mean QP or JPEG quality where known, else
    bits per pixel) and luma noise: ``clean``, ``real`` (lightly to moderately compressed) or ``heavy`` (heavily
    compressed or noisy); the reason says which fact decided."""
    lossless = codec in LOSSLESS
    rate = "unknown bit rate" if bits_per_pixel is None else f"{bits_per_pixel:.3f} bits/pixel"
    if lossless:
        choice, reason = "clean", f"lossless {codec}"
    elif jpeg_q is not None:
        choice, reason = (("real", f"JPEG quality {jpeg_q:.0f} (< {JPEG_REAL_BELOW:.0f})") if jpeg_q < JPEG_REAL_BELOW
                          else ("clean", f"JPEG quality {jpeg_q:.0f} (>= {JPEG_REAL_BELOW:.0f})"))
    elif quantiser is not None:
        qp = f"{codec} mean QP {quantiser:.1f}"
        choice, reason = (("heavy", f"heavily quantised ({qp} > {HEAVY_ABOVE_QP})") if quantiser > HEAVY_ABOVE_QP
                          else ("real", f"quantised ({qp} > {REAL_ABOVE_QP})") if quantiser > REAL_ABOVE_QP
                          else ("clean", f"{qp} (<= {REAL_ABOVE_QP})"))
    elif bits_per_pixel is not None and bits_per_pixel < HEAVY_BELOW_BPP:
        choice, reason = "heavy", f"heavily compressed ({codec}, {rate} < {HEAVY_BELOW_BPP})"
    elif bits_per_pixel is None or bits_per_pixel < REAL_BELOW_BPP:
        choice, reason = "real", f"compressed ({codec}, {rate} < {REAL_BELOW_BPP})"
    else:
        choice, reason = "clean", f"{codec} at {rate} (>= {REAL_BELOW_BPP})"
    if choice == "clean" and sigma > REAL_ABOVE_NOISE:
        choice, reason = "real", f"noisy (luma sigma {sigma:.1f} > {REAL_ABOVE_NOISE}); {reason}"
    elif choice == "clean":
        reason += f", luma sigma {sigma:.1f}"
    return InputCondition(codec, lossless, bits_per_pixel, sigma, choice, reason, quantiser, jpeg_q)


def assess_video(path: str | Path) -> InputCondition:
    """Codec, quantiser or bits per pixel, and noise of a video file's first video stream (its first frames)."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        cc = stream.codec_context
        cc.options = {"export_side_data": "venc_params"}
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        bit_rate: float = stream.bit_rate or c.bit_rate
        if not bit_rate and c.duration:
            bit_rate = Path(path).stat().st_size * 8 / (c.duration / av.time_base)
        bpp = bit_rate / (cc.width * cc.height * rate) if bit_rate and cc.width and cc.height else None
        lumas: list[np.ndarray] = []
        qps: list[float] = []
        for i, frame in enumerate(c.decode(stream)):
            if i < PROBE_FRAMES:
                lumas.append(frame.reformat(format="gray").to_ndarray())
            if (qp := frame_quantiser(frame)) is not None:
                qps.append(qp)
            if i + 1 >= (QP_FRAMES if qps else PROBE_FRAMES):
                break
        return decide(cc.name, bpp, video_noise_sigma(lumas), float(np.mean(qps)) if qps else None)


def assess_image(path: str | Path) -> InputCondition:
    """The same for an image: JPEG by the quality its quantisation table says (else its bits per pixel), WebP
    by its bits per pixel; PNG, BMP, TIFF as lossless."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    suffix = Path(path).suffix.lower()
    codec = "mjpeg" if suffix in (".jpg", ".jpeg") else "webp" if suffix == ".webp" else suffix.lstrip(".")
    bpp = Path(path).stat().st_size * 8 / img.size if codec in ("mjpeg", "webp") else None
    quality = jpeg_quality(Path(path).read_bytes()) if codec == "mjpeg" else None
    return decide(codec if codec in ("mjpeg", "webp") else "png", bpp, noise_sigma(img), jpeg_q=quality)
