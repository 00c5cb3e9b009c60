"""Real media made by the tests: PyAV-encoded clips with real audio and subtitles, and small engines."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.models.engine import save_engine
from vidsr.models.registry import ARCHITECTURES

TINY = {
    "edsr": {"blocks": 1, "features": 8, "res_scale": 1.0},
    "mdsr": {"blocks": 1, "features": 8, "res_scale": 1.0},
    "vdsr": {"depth": 3, "features": 8},
    "srcnn": {"f1": 9, "f2": 1, "f3": 5, "n1": 8, "n2": 4},
    "rvsr": {"blocks": 1, "features": 8, "res_scale": 1.0},
}


def make_engines(root: Path) -> Path:
    """Small, randomly initialised engines of every architecture: real networks, real safetensors files."""
    torch.manual_seed(0)
    for arch, scale_sets in (("edsr", [(2,), (3,), (4,)]), ("vdsr", [(2, 3, 4)]), ("srcnn", [(2,)]),
                             ("mdsr", [(2, 3, 4)]), ("rvsr", [(2,)])):
        for scales in scale_sets:
            model = ARCHITECTURES[arch].build(TINY[arch], scales)
            if arch == "rvsr":  # its fuse layer starts blind to the state; a test engine must use it
                torch.nn.init.normal_(model.fuse.weight, std=0.1)
            eid = f"{arch}-tiny-x{''.join(map(str, scales))}"
            save_engine(root / eid, eid, arch, arch, arch, TINY[arch], scales, model)
    return root


def scene(i: int, w: int, h: int) -> np.ndarray:
    """A smooth, moving RGB test scene (gradients and a bright box), so codecs and models see structure."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / max(w - 1, 1) * 255, yy / max(h - 1, 1) * 255,
                    (np.sin((xx + 3 * i) / 5) * 0.5 + 0.5) * 255], axis=2)
    x0 = (4 * i) % max(w - 12, 1)
    img[h // 4: h // 4 + 10, x0: x0 + 10] = 250
    return img.astype(np.uint8)


def make_clip(path: Path, w: int = 64, h: int = 48, frames: int = 12, *, codec: str = "libx264",
              pix_fmt: str = "yuv420p", pts: list[int] | None = None, time_base: Fraction = Fraction(1, 1000),
              rate: int = 25, audio: bool = True, subtitles: bool = False, colour: tuple[int, int, int, int] | None =
              (1, 1, 1, 1), fmt: str | None = None, crf_noise: tuple[int, float] | None = None) -> Path:
    """Encode a clip. ``pts`` (in ``time_base`` units) makes it variable frame rate. ``colour`` is
    (matrix, range, primaries, transfer) as FFmpeg enum numbers. ``crf_noise`` = (crf, sigma) adds Gaussian
    noise of that sigma to every frame and encodes at that x264 CRF: footage as a cheap recorder makes it."""
    c = av.open(str(path), "w", format=fmt)
    v = c.add_stream(codec, rate=rate)
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    v.time_base = time_base
    v.codec_context.time_base = time_base
    noise = np.random.default_rng(0) if crf_noise else None
    if crf_noise:
        v.options = {"crf": str(crf_noise[0])}
    if colour:
        cc = v.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = colour
    a = s = None
    if audio:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
    if subtitles:
        # PyAV can open the ASS encoder without a header; SubRip and mov_text need one FFmpeg makes itself.
        s = c.add_stream("ass")
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
    pts = pts if pts is not None else [int(round(i / rate / time_base)) for i in range(frames)]
    for i, p in enumerate(pts):
        img = scene(i, w, h)
        if noise is not None and crf_noise:
            img = np.clip(img + noise.normal(0, crf_noise[1], img.shape), 0, 255).astype(np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)
        if colour:
            frame.colorspace, frame.color_range = colour[0], colour[1]
        frame.pts, frame.time_base = p, time_base
        for packet in v.encode(frame):
            c.mux(packet)
    for packet in v.encode(None):
        c.mux(packet)
    end = float((pts[-1] + 1 / rate / time_base) * time_base)
    if a is not None:
        n, t = int(end * 48000), 0
        while t < n:
            k = np.arange(1024) + t
            tone = (0.2 * np.sin(2 * np.pi * 440 * k / 48000)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            for packet in a.encode(af):
                c.mux(packet)
            t += 1024
        for packet in a.encode(None):
            c.mux(packet)
    if s is not None:
        for k, text in enumerate(["first line", "second line"]):
            packet = av.Packet(f"{k},0,Default,,0,0,0,,{text}".encode())
            packet.stream = s
            packet.time_base = Fraction(1, 1000)
            packet.pts = packet.dts = int(k * end / 2 * 1000)
            packet.duration = int(end / 3 * 1000)
            c.mux(packet)
    c.close()
    return path


def probe(path: Path | str) -> dict:
    """Everything the acceptance checks look at, read back with PyAV: frames with times, packets per stream."""
    c = av.open(str(path))
    v = c.streams.video[0]
    out = {"width": v.codec_context.width, "height": v.codec_context.height, "pix_fmt": v.codec_context.pix_fmt,
           "colour": (int(v.codec_context.colorspace), int(v.codec_context.color_range),
                      int(v.codec_context.color_primaries), int(v.codec_context.color_trc)),
           "times": [], "audio": [], "subtitle": [], "streams": [s.type for s in c.streams]}
    for packet in c.demux():
        if packet.stream.type == "video":
            for f in packet.decode():
                out["times"].append(round(float(f.pts * f.time_base), 3))
        elif packet.stream.type in ("audio", "subtitle") and packet.size:
            out[packet.stream.type].append(bytes(packet))
    out["frames"] = len(out["times"])
    c.close()
    return out


def decode_planes(path: Path | str) -> list[list[np.ndarray]]:
    """Every frame's Y, U, V planes (exact, for lossless codecs)."""
    from vidsr.video.colour import planes_of, working_format

    c = av.open(str(path))
    frames = []
    for f in c.decode(video=0):
        frames.append(planes_of(f, working_format(f.format.name)))
    c.close()
    return frames
