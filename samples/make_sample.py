"""Makes samples/sample.mkv, the clip the README upscales: 4 s, 320x180, 25 fps, H.264 + 48 kHz AAC, BT.709 tags.

The imagery is real photography bundled with scikit-image (public-domain NASA images 'astronaut' and 'rocket';
'coffee' and 'chelsea', CC0), panned and zoomed slowly so that a video model sees motion. The sound is a
synthesised chord. scikit-image is needed only to rerun this script; it is not a dependency of vidsr.

    pip install scikit-image && python samples/make_sample.py
"""

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch
from skimage import data

from vidsr.video.colour import chroma_size, frame_from_planes, rgb_to_yuv, to_code

W, H, FPS, SECONDS = 320, 180, 25, 4


def shots() -> list[np.ndarray]:
    return [data.astronaut(), data.coffee(), data.rocket(), data.chelsea()]


def frame_at(img: np.ndarray, t: float) -> np.ndarray:
    """A slow zoom-and-pan (Ken Burns) window over ``img``, t in [0, 1)."""
    h, w = img.shape[:2]
    zoom = 1.0 - 0.25 * t
    cw = min(w, h * W / H) * zoom
    ch = cw * H / W
    x0 = (w - cw) * (0.2 + 0.6 * t)
    y0 = (h - ch) * 0.4
    m = np.array([[W / cw, 0, -x0 * W / cw], [0, H / ch, -y0 * H / ch]])
    # Area-like prefilter before warping, as a camera would integrate light.
    return cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_AREA)


def to_bt709_frame(rgb: np.ndarray) -> av.VideoFrame:
    """BT.709 tv-range yuv420p with vidsr's own converter, so the tags we write are the matrix we used."""
    t = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
    y, u, v = rgb_to_yuv(t, 1, 1, 8)
    cw, ch = chroma_size("yuv420p", W, H)
    u, v = (cv2.resize(c[0].numpy(), (cw, ch), interpolation=cv2.INTER_AREA) for c in (u, v))
    frame = frame_from_planes([to_code(y[0], 8), to_code(torch.from_numpy(u), 8), to_code(torch.from_numpy(v), 8)],
                              "yuv420p")
    frame.colorspace, frame.color_range = 1, 1
    return frame


def main(out: Path) -> None:
    c = av.open(str(out), "w")
    v = c.add_stream("libx264", rate=FPS)
    v.width, v.height, v.pix_fmt = W, H, "yuv420p"
    v.options = {"crf": "20", "preset": "slow"}
    cc = v.codec_context
    cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 1, 1, 1, 1  # BT.709, tv range
    a = c.add_stream("aac", rate=48000)
    a.layout = "stereo"
    images = shots()
    per = FPS * SECONDS // len(images)
    for i in range(FPS * SECONDS):
        img = images[i // per]
        rgb = frame_at(img, (i % per) / per)
        frame = to_bt709_frame(rgb)
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        for p in v.encode(frame):
            c.mux(p)
    for p in v.encode(None):
        c.mux(p)
    t, n = 0, 48000 * SECONDS
    notes = [220.0, 277.18, 329.63, 440.0]
    while t < n:
        k = (np.arange(1024) + t) / 48000
        tone = sum(np.sin(2 * np.pi * f * k) * np.exp(-((k % 1.0) * 2)) for f in notes) * 0.1
        af = av.AudioFrame.from_ndarray(np.stack([tone, tone]).astype(np.float32), format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, t
        for p in a.encode(af):
            c.mux(p)
        t += 1024
    for p in a.encode(None):
        c.mux(p)
    c.close()


if __name__ == "__main__":
    main(Path(__file__).resolve().parent / "sample.mkv")
