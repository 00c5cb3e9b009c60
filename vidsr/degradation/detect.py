"""``--degradation auto``: is this input clean enough for the clean engines, or does it need the real or the
heavy ones?

Three facts decide, all cheap: the codec (lossless or not), how hard it quantised (H.264's own mean quantiser,
which FFmpeg exports per macroblock and which means the same at every frame size; else the bits per pixel spent),
and a noise estimate on the first frames' luma. The thresholds come from the measurements in
docs/REAL-FOOTAGE.md: the real engines beat the clean ones above ``REAL_ABOVE_QP`` (below ``REAL_BELOW_BPP``),
the heavy ones beat the real ones above ``HEAVY_ABOVE_QP`` (below ``HEAVY_BELOW_BPP``) and on every input
noisier than ``HEAVY_ABOVE_NOISE``.
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
# Read off docs/REAL-FOOTAGE.md's table (Set5 pans through the video path, x2): the real engine lost 0.19 dB at
# H.264 CRF 18 (0.81 bits/pixel) and won 0.40 at CRF 23 (0.54); on lossless input it lost 1.24 dB clean and tied
# (+0.05) at noise sigma 3, whose estimate was 2.5, while clean images' estimates reached 2 on textured content.
REAL_BELOW_BPP = 0.65  # lossy streams spending less than this many bits per pixel go to the real engines
HEAVY_BELOW_BPP = 0.44  # and those under this to the heavy ones, where a scale has one
HEAVY_ABOVE_NOISE = 4.0  # luma noise sigma (8-bit levels) above which any input goes to the heavy ones
# H.264 mean quantiser (QP, 0-51), read by the same table: thresholds on the encoder's own step size hold at every
# frame size, where a CRF spends fewer bits per pixel the larger the frame.
REAL_ABOVE_QP = 22.0
HEAVY_ABOVE_QP = 28.0
PROBE_FRAMES = 5  # the noise estimate's frames
QP_FRAMES = 12  # the quantiser's: a GOP's worth of I, P and B frames, as decoding costs little next to upscaling
_H264_PARAMS = 1  # AV_VIDEO_ENC_PARAMS_H264


@dataclass(frozen=True)
class InputCondition:
    """What ``auto`` measured of an input, and what it chose (``clean``, ``real`` or ``heavy``) with the reason.
    ``quantiser`` is the H.264 mean QP of the first frames, None for other codecs."""

    codec: str
    lossless: bool
    bits_per_pixel: float | None
    noise_sigma: float
    choice: str
    reason: str
    quantiser: float | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["bits_per_pixel"] = None if self.bits_per_pixel is None else round(self.bits_per_pixel, 4)
        d["quantiser"] = None if self.quantiser is None else round(self.quantiser, 2)
        d["noise_sigma"] = round(self.noise_sigma, 3)
        return d


def noise_sigma(y: np.ndarray) -> float:
    """Luma noise sigma in 8-bit levels: Immerkaer's Laplacian-difference estimator (1996), taken over the
    flattest tenth of 16x16 blocks so that edges and texture do not pass for noise."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    r = np.abs(cv2.filter2D(y.astype(np.float32), -1, kernel, borderType=cv2.BORDER_REFLECT_101))[1:-1, 1:-1]
    h, w = (r.shape[0] // 16) * 16, (r.shape[1] // 16) * 16
    if h == 0 or w == 0:
        return float(np.sqrt(np.pi / 2) / 6 * r.mean())
    blocks = r[:h, :w].reshape(h // 16, 16, w // 16, 16).mean(axis=(1, 3)).ravel()
    flat = np.sort(blocks)[: max(1, blocks.size // 10)]
    return float(np.sqrt(np.pi / 2) / 6 * flat.mean())


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


def decide(codec: str, bits_per_pixel: float | None, sigma: float, quantiser: float | None = None) -> InputCondition:
    """Which kind of engine suits an input with this codec, rate (H.264 mean QP where known, else bits per pixel)
    and luma noise: ``clean``, ``real`` (lightly to moderately compressed) or ``heavy`` (heavily compressed or
    noisy); the reason says which fact decided."""
    lossless = codec in LOSSLESS
    rate = "unknown bit rate" if bits_per_pixel is None else f"{bits_per_pixel:.3f} bits/pixel"
    if sigma > HEAVY_ABOVE_NOISE:
        choice, reason = "heavy", f"noisy (luma sigma {sigma:.1f} > {HEAVY_ABOVE_NOISE})"
    elif lossless:
        choice, reason = "clean", f"lossless {codec}, luma sigma {sigma:.1f}"
    elif quantiser is not None:
        qp = f"{codec} mean QP {quantiser:.1f}"
        choice, reason = (("heavy", f"heavily quantised ({qp} > {HEAVY_ABOVE_QP})") if quantiser > HEAVY_ABOVE_QP
                          else ("real", f"quantised ({qp} > {REAL_ABOVE_QP})") if quantiser > REAL_ABOVE_QP
                          else ("clean", f"{qp} (<= {REAL_ABOVE_QP}), little noise"))
    elif bits_per_pixel is not None and bits_per_pixel < HEAVY_BELOW_BPP:
        choice, reason = "heavy", f"heavily compressed ({codec}, {rate} < {HEAVY_BELOW_BPP})"
    elif bits_per_pixel is None or bits_per_pixel < REAL_BELOW_BPP:
        choice, reason = "real", f"compressed ({codec}, {rate} < {REAL_BELOW_BPP})"
    else:
        choice, reason = "clean", f"{codec} at {rate} (>= {REAL_BELOW_BPP}), little noise"
    return InputCondition(codec, lossless, bits_per_pixel, sigma, choice, reason, quantiser)


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
        sigmas: list[float] = []
        qps: list[float] = []
        for i, frame in enumerate(c.decode(stream)):
            if i < PROBE_FRAMES:
                sigmas.append(noise_sigma(frame.reformat(format="gray").to_ndarray()))
            if (qp := frame_quantiser(frame)) is not None:
                qps.append(qp)
            if i + 1 >= (QP_FRAMES if qps else PROBE_FRAMES):
                break
        return decide(cc.name, bpp, float(np.median(sigmas)) if sigmas else 0.0,
                      float(np.mean(qps)) if qps else None)


def assess_image(path: str | Path) -> InputCondition:
    """The same for an image: JPEG counts as lossy at its file's bits per pixel; PNG, BMP, TIFF as lossless."""
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    suffix = Path(path).suffix.lower()
    codec = "mjpeg" if suffix in (".jpg", ".jpeg") else "webp" if suffix == ".webp" else suffix.lstrip(".")
    bpp = Path(path).stat().st_size * 8 / img.size if codec in ("mjpeg", "webp") else None
    return decide(codec if codec in ("mjpeg", "webp") else "png", bpp, noise_sigma(img))
