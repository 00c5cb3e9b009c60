"""Degrading an HR image the way cameras, recorders and broadcast chains do: downscale, noise, chroma
subsampling, and real codec compression through the real encoders in PyAV.

Video codecs see a short pan over the image (``Degradation.frames`` frames moving by ``pan`` and ``zoom`` each),
so that the kept frame carries the motion-compensated (P/B) artefacts that real footage has, not only intra ones.
The kept frame is the unmoved one, so the clean HR image stays its exact target. Every random choice comes from
the generator passed in, and every step that turns pixels into bytes runs its bit-exact C path, single-threaded:
x264 and x265 with their assembly off, MPEG-2 with integer DCTs, swscale with BITEXACT | ACCURATE_RND. So a seed
gives the same bytes in every process and on every CPU kind, and an eval figure under ``--degrade`` is repeatable
(docs/REAL-FOOTAGE.md, session 20, has what each of these cost and what it fixed).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

from vidsr.degradation.spec import Degradation
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import rgb_to_y
from vidsr.video.formats import add_video_stream

MIN_SIDE = 128
ENCODERS = {"h264": "libx264", "hevc": "libx265", "mpeg2": "mpeg2video"}
# swscale's SIMD RGB <-> YUV paths round differently from its C path (one level on about 2% of samples), so
# their output depends on the CPU's instruction sets; these flags take the C path's rounding on every CPU.
EXACT_SWS = Interpolation.BILINEAR | Interpolation.BITEXACT | Interpolation.ACCURATE_RND
# The MPEG-2 encoder's and decoder's DCTs: the C integer transforms, since the SIMD ones are CPU-dependent.
MPEG2_EXACT = {"dct": "int", "idct": "simple", "flags": "+bitexact"}


@dataclass
class LowRes:
    """A degraded LR image: ``rgb`` (HxWx3 uint8) and ``y``, the 8-bit luma a video decoder would hand the Y
    models (the decoded Y plane where a codec ran, else BT.601 Y of ``rgb``)."""

    rgb: np.ndarray
    y: np.ndarray


def pan_matrix(shape: tuple[int, ...], d: Degradation, scale: int, k: int) -> np.ndarray:
    """The 2x3 affine that makes the pan's frame ``d.target + k`` of an HR image of ``shape`` (OpenCV's warpAffine
    convention: frame(p) = hr(M^-1 p)), so that frame(M q) = hr(q)."""
    h, w = shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, (1 + d.zoom) ** k)
    m[:, 2] += np.array([k * d.pan[0] * scale, k * d.pan[1] * scale])
    return m


def pan_frames(hr: np.ndarray, d: Degradation, scale: int) -> list[np.ndarray]:
    """``d.frames`` HR frames of a pan and zoom over ``hr``; frame ``d.target`` is ``hr`` itself."""
    h, w = hr.shape[:2]
    return [hr if i == d.target else cv2.warpAffine(hr, pan_matrix(hr.shape, d, scale, i - d.target), (w, h),
                                                    flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)
            for i in range(d.frames)]


def downscale(hr: np.ndarray, scale: int, kernel: str, blur: float = 0.0) -> np.ndarray:
    """uint8 HR -> uint8 LR of exactly 1/scale the size, with the named kernel."""
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    if kernel == "bicubic":
        return imresize(hr, 1 / scale)
    if kernel == "bilinear":
        # No antialiasing, as a cheap camera or downconverter scaler does: it aliases.
        return cv2.resize(hr, (w, h), interpolation=cv2.INTER_LINEAR)
    if kernel == "gaussian":
        hr = cv2.GaussianBlur(hr, (0, 0), blur, borderType=cv2.BORDER_REFLECT_101)
    return cv2.resize(hr, (w, h), interpolation=cv2.INTER_AREA)


def add_noise(lr: np.ndarray, d: Degradation, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of sigma ``d.noise`` plus shot noise whose variance grows with the signal (``d.poisson``
    levels of variance per level of signal), both in 8-bit levels; the same in every channel with ``grey_noise``."""
    if not d.noise and not d.poisson:
        return lr
    x = lr.astype(np.float32)
    shape = x.shape[:2] + ((1,) if d.grey_noise else x.shape[2:])
    n = rng.standard_normal(shape, dtype=np.float32)
    sigma = d.noise + (np.sqrt(np.maximum(x.mean(axis=2, keepdims=True) if d.grey_noise else x, 0) * d.poisson)
                       if d.poisson else 0.0)
    return np.clip(np.round(x + n * sigma), 0, 255).astype(np.uint8)


def yuv420_frame(rgb: np.ndarray) -> av.VideoFrame:
    """The 8-bit 4:2:0 frame an encoder is given for an RGB image (BT.601, tv range), bit-exact on every CPU."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p", interpolation=EXACT_SWS, threads=1)


def _decoded(frame: av.VideoFrame, h: int | None = None, w: int | None = None) -> LowRes:
    """RGB and Y of a decoded frame, cropped to (h, w) where the encoder saw it padded."""
    yuv = frame.reformat(format="yuv420p", interpolation=EXACT_SWS, threads=1)
    rgb = yuv.reformat(format="rgb24", interpolation=EXACT_SWS, threads=1).to_ndarray()
    h, w = h or yuv.height, w or yuv.width
    return LowRes(np.ascontiguousarray(rgb[:h, :w]), yuv.to_ndarray()[:h, :w].copy())


def encode_decode(frames: list[np.ndarray], d: Degradation) -> list[LowRes]:
    """Encode RGB frames with ``d.codec`` at ``d.quality`` through PyAV's encoder, and decode them again."""
    if d.codec == "jpeg":
        out = []
        for rgb in frames:
            ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, d.quality])
            if not ok:
                raise RuntimeError("OpenCV could not encode JPEG")
            decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
            if decoded is None:
                raise RuntimeError("OpenCV could not decode its own JPEG")
            rgb_back = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
            out.append(LowRes(rgb_back, rgb_to_y(rgb_back).astype(np.uint8)))
        return out
    if d.codec == "none":
        if d.chroma420:
            return [_decoded(yuv420_frame(rgb)) for rgb in frames]
        return [LowRes(rgb, rgb_to_y(rgb).astype(np.uint8)) for rgb in frames]
    encoder_name = ENCODERS[d.codec]
    h, w = frames[0].shape[:2]
    # x265 corrupts its heap on frames smaller than its 64-pixel CTU (seen at 44x38), and on 64x64 its output
    # varied from run to run (1 in 10 at preset faster); from 128 on it was the same every time. So small frames
    # are padded (reflected, as a codec's own edge extension is) and cropped back after decoding.
    pad_h, pad_w = max(0, MIN_SIDE - h), max(0, MIN_SIDE - w)
    if pad_h or pad_w:
        frames = [cv2.copyMakeBorder(f, 0, pad_h, 0, pad_w, cv2.BORDER_REFLECT_101) for f in frames]
    # Through a real (in-memory) Matroska file rather than bare codec contexts: decoding packets handed straight
    # from PyAV's encoder to a decoder gave other pixels on a process's first call (same packets, seen with
    # libx264), while the muxed round trip gives the same bytes every time.
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as muxer:
        stream = add_video_stream(muxer, encoder_name, 25)
        stream.width, stream.height, stream.pix_fmt = w + pad_w, h + pad_h, "yuv420p"
        stream.time_base = Fraction(1, 25)
        stream.options = encoder_options(d)
        for i, rgb in enumerate(frames):
            frame = yuv420_frame(rgb)
            frame.pts = i
            muxer.mux(stream.encode(frame))
        muxer.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as demuxer:
        demuxer.streams.video[0].thread_count = 1
        if d.codec == "mpeg2":
            demuxer.streams.video[0].codec_context.options = dict(MPEG2_EXACT)
        back = [_decoded(f, h, w) for f in demuxer.decode(video=0)]
    if len(back) != len(frames):
        raise RuntimeError(f"{encoder_name} gave back {len(back)} of {len(frames)} frames")
    return back


def encoder_options(d: Degradation) -> dict[str, object]:
    """The encoder options that make ``d``'s codec, quality and preset, single-threaded and bit-exact."""
    if d.codec == "h264":
        # x264's lookahead runs threads of its own even at threads=1, and then the faster presets' output
        # varies from run to run (seen at veryfast): both are pinned. Its assembly gave other streams for the same
        # frames from one process to the next (8 of 19 Set5/Set14 images at CRF 30 or 23, six processes at once, on a
        # Sapphire Rapids); its C path gave one stream every time, for 1.7x the encode time.
        return {"crf": str(d.quality), "preset": d.preset, "threads": "1",
                "x264-params": "threads=1:lookahead-threads=1:asm=0"}
    if d.codec == "hevc":
        # x265's assembly is CPU-dependent too: off, as x264's is, so that every CPU kind encodes alike.
        return {"crf": str(d.quality), "preset": d.preset,
                "x265-params": "log-level=none:pools=1:frame-threads=1:wpp=0:lookahead-slices=0:asm=0"}
    # MPEG-2 at a fixed quantiser, as SD broadcast chains run it; a GOP of 12 with B-frames, as DVB does.
    return {"qmin": str(d.quality), "qmax": str(d.quality), "g": "12", "bf": "2", "threads": "1", **MPEG2_EXACT}


def even_crop(hr: np.ndarray, scale: int) -> np.ndarray:
    """Crop HR so that its LR has even sides, which 4:2:0 needs."""
    m = 2 * scale
    h, w = hr.shape[:2]
    return hr[: h - h % m, : w - w % m]


def _check_even(hr: np.ndarray, scale: int) -> None:
    if hr.shape[0] % (2 * scale) or hr.shape[1] % (2 * scale):
        raise ValueError(f"HR size {hr.shape[1]}x{hr.shape[0]} is not a multiple of {2 * scale}; use even_crop")


def degrade(hr: np.ndarray, scale: int, d: Degradation, rng: np.random.Generator) -> LowRes:
    """The LR image that ``d`` makes of the uint8 RGB image ``hr``, whose sides must be multiples of 2 * scale
    (``even_crop``) so that 4:2:0 chroma fits. With ``d.is_clean`` this is exactly MATLAB bicubic."""
    _check_even(hr, scale)
    frames = pan_frames(hr, d, scale) if d.codec in ENCODERS else [hr]
    target = d.target if d.codec in ENCODERS else 0
    lr = [add_noise(downscale(f, scale, d.kernel, d.blur), d, rng) for f in frames]
    return encode_decode(lr, d)[target]


@dataclass
class FramePair:
    """A degraded frame and the one before it in the pan: ``lr`` is exactly what ``degrade`` gives for the same
    generator, ``lr_prev`` the decoded frame before it, ``hr_prev`` that frame's clean original, and ``warp`` the
    2x3 affine with hr_prev(warp q) = hr(q), which lines the previous frame up with this one."""

    lr: LowRes
    lr_prev: LowRes
    hr_prev: np.ndarray
    warp: np.ndarray


def degrade_pair(hr: np.ndarray, scale: int, d: Degradation, rng: np.random.Generator) -> FramePair:
    """``degrade`` for a pan's neighbouring frames (a video codec's ``d`` only: one with target frame >= 1), for
    training a network to move its output as the scene moves."""
    _check_even(hr, scale)
    if d.codec not in ENCODERS or d.target < 1:
        raise ValueError(f"a frame pair needs a video codec and a target frame after the first, not {d.spec()}")
    frames = pan_frames(hr, d, scale)
    lr = [add_noise(downscale(f, scale, d.kernel, d.blur), d, rng) for f in frames]
    decoded = encode_decode(lr, d)
    return FramePair(decoded[d.target], decoded[d.target - 1], frames[d.target - 1],
                     pan_matrix(hr.shape, d, scale, -1))
