"""The baseline vidsr is measured against: a naive per-frame loop, as one would first write it.

fp32 NCHW eager torch, glibc's default allocator (no mallopt), colour conversion in numpy, and decode, inference
and encode one after another on one thread of control. It reads the same generated clip as ``vidsr bench``.

    python benchmarks/naive_loop.py --model edsr --scale 2 --size 960x540 --frames 4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from vidsr.frames.bench import make_bench_clip, peak_rss_mb
from vidsr.models.engine import find_engine

# BT.601 studio range, the textbook way.
TO_RGB = np.array([[1.164, 0.0, 1.596], [1.164, -0.392, -0.813], [1.164, 2.017, 0.0]])


def yuv420_to_rgb(frame: av.VideoFrame) -> np.ndarray:
    y = frame.to_ndarray(format="yuv420p")
    h, w = frame.height, frame.width
    yy = y[:h].astype(np.float64) - 16
    u = y[h:h + h // 4].reshape(h // 2, w // 2).astype(np.float64) - 128
    v = y[h + h // 4:].reshape(h // 2, w // 2).astype(np.float64) - 128
    u, v = u.repeat(2, 0).repeat(2, 1), v.repeat(2, 0).repeat(2, 1)
    rgb = np.stack([yy, u, v], axis=-1) @ TO_RGB.T
    return np.clip(rgb, 0, 255) / 255.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="edsr")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--frames", type=int, default=4)
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    engine = find_engine(args.model, args.scale)
    model = engine.load(args.scale).float().eval()
    s = args.scale
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_bench_clip(Path(tmp) / "in.mkv", w, h, args.frames)
        t = time.perf_counter()
        n = 0
        with av.open(str(clip)) as src, av.open(str(Path(tmp) / "out.mkv"), "w") as dst:
            out = dst.add_stream("libx264", rate=25)
            out.width, out.height, out.pix_fmt = w * s, h * s, "yuv420p"
            out.options = {"crf": "18", "preset": "medium"}
            for frame in src.decode(video=0):
                rgb = yuv420_to_rgb(frame)
                with torch.no_grad():
                    if engine.arch.colour == "Y":
                        ycc = rgb @ np.array([65.481, 128.553, 24.966]) / 255 + 16 / 255
                        x = torch.nn.functional.interpolate(torch.from_numpy(ycc).float()[None, None],
                                                            scale_factor=s, mode="bicubic")
                        yo = model(x)[0, 0].clamp(0, 1).numpy()
                        img = np.repeat(((yo - 16 / 255) * 255 / 219)[..., None], 3, axis=2)
                    else:
                        x = torch.from_numpy(rgb).float().permute(2, 0, 1)[None]
                        img = model(x)[0].permute(1, 2, 0).clamp(0, 1).numpy()
                result = av.VideoFrame.from_ndarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8),
                                                    format="rgb24")
                for packet in out.encode(result):
                    dst.mux(packet)
                n += 1
            for packet in out.encode(None):
                dst.mux(packet)
        seconds = time.perf_counter() - t
    json.dump({"naive_fps": round(n / seconds, 4), "frames": n, "model": engine.id, "scale": s, "size": args.size,
               "threads": torch.get_num_threads(), "peak_rss_mb": round(peak_rss_mb(), 1)}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
