"""``vidsr eval --video``: sequences scored end to end through the video path, with temporal stability.

Each HR sequence (a folder of frames, or a clip) is downscaled with the spec's kernel, given its noise (fresh
each frame, as a sensor's) and encoded as one real clip with the spec's codec, so that the codec's motion
search and GOP act on real motion. That clip goes through ``upscale_video`` (reader, stages, writer: what
``vidsr upscale`` runs) into a lossless FFV1 file, and the decoded Y planes are scored against the HR frames.
Bicubic is MATLAB bicubic of the same decoded LR luma.

Temporal stability is tOF (Chu et al., TecoGAN, 2020): the mean over frame pairs and pixels of
|F(out[t-1], out[t]) - F(hr[t-1], hr[t])|, where F is OpenCV's DIS optical flow (medium preset) on 8-bit Y, in
pixels. It is 0 when the output moves exactly as the original does; flicker and crawling detail that SR adds
raise it. Lower is better, and bicubic's figure is the reference.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from vidsr.degradation.apply import (
    ENCODERS,
    add_noise,
    downscale,
    encode_decode,
    encoder_options,
    even_crop,
    pan_frames,
    yuv420_frame,
)
from vidsr.degradation.detect import InputCondition, assess_image, assess_video
from vidsr.degradation.spec import Degradation
from vidsr.quality.images import read_rgb
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import psnr, rgb_to_y, shave, ssim
from vidsr.video.formats import IMAGE_SUFFIXES, add_video_stream

MAX_FRAMES = 60  # a clip is scored on its first 60 frames: enough pairs for tOF, minutes not hours on 2 cores
BT601 = (6, 1, 6, 6)  # smpte170m matrix, tv range, primaries and transfer: what swscale's default conversion is


def find_sequences(paths: list[Path], frames: int = MAX_FRAMES) -> dict[str, list[np.ndarray]]:
    """{name: HR RGB frames (the first ``frames``)} for clips, folders of frames, and folders of such folders."""
    found: dict[str, list[np.ndarray]] = {}
    for path in paths:
        if path.is_file():
            found[path.stem] = _read_clip(path, frames)
        elif frame_files(path):
            found[path.name] = _read_frames(path, frames)
        else:
            for sub in sorted(p for p in path.iterdir() if p.is_dir() and frame_files(p)):
                found[sub.name] = _read_frames(sub, frames)
    if not found:
        raise FileNotFoundError(f"no sequences under {', '.join(map(str, paths))}")
    return found


def natural_key(path: Path) -> list[object]:
    """im2 before im10: frame files sort by their numbers, not as text."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """A sequence folder's frames in order."""
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)





def _read_frames(folder: Path, frames: int) -> list[np.ndarray]:
    return [read_rgb(p) for p in frame_files(folder)[:frames]]


def _read_clip(path: Path, count: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        frames = []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def write_lr_clip(frames: list[np.ndarray], scale: int, d: Degradation | None, path: Path, seed: int) -> None:
    """The degraded LR clip of HR ``frames``: a real H.264/HEVC/MPEG-2 stream where the spec names one, else
    lossless FFV1 4:2:0 (JPEG is applied per frame first)."""
    d = d or Degradation()
    rng = np.random.default_rng([seed])
    lr = [add_noise(downscale(f, scale, d.kernel, d.blur), d, rng) for f in frames]
    if d.codec == "jpeg":
        lr = [x.rgb for x in encode_decode(lr, replace(d, frames=1, target=0))]
    codec = ENCODERS[d.codec] if d.codec in ENCODERS else "ffv1"
    with av.open(str(path), "w", format="matroska") as c:
        v = add_video_stream(c, codec, 25)
        v.width, v.height, v.pix_fmt = lr[0].shape[1], lr[0].shape[0], "yuv420p"
        v.time_base = Fraction(1, 25)
        cc = v.codec_context
        cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = BT601
        if d.codec in ENCODERS:
            v.options = encoder_options(d)
        for i, rgb in enumerate(lr):
            frame = yuv420_frame(rgb)
            frame.pts = i
            c.mux(v.encode(frame))
        c.mux(v.encode(None))


def assess_under(inputs: list[list[np.ndarray]], scale: int, d: Degradation) -> list[InputCondition]:
    """What ``--degradation auto`` measures of each HR input once ``d`` has degraded it, as ``vidsr upscale``
    would measure the file: a sequence (several frames) becomes its LR clip; an image, as eval degrades it, the
    spec's pan in a clip (a video codec), a JPEG file (JPEG) or a lossless one. Input k is seeded by k."""
    found = []
    with tempfile.TemporaryDirectory(prefix="vidsr-assess-") as tmp:
        for k, frames in enumerate(inputs):
            frames = [even_crop(np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else f, scale) for f in frames]
            if len(frames) == 1 and d.codec == "jpeg":
                lr = add_noise(downscale(frames[0], scale, d.kernel, d.blur), d, np.random.default_rng([k]))
                path = Path(tmp) / f"{k}.jpg"
                cv2.imwrite(str(path), cv2.cvtColor(lr, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, d.quality])
                found.append(assess_image(path))
                continue
            if len(frames) == 1 and d.codec in ENCODERS:
                frames = pan_frames(frames[0], d, scale)
            path = Path(tmp) / f"{k}.mkv"
            write_lr_clip(frames, scale, d, path, seed=k)
            found.append(assess_video(path))
    return found


def read_y(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.reformat(format="yuv420p").to_ndarray()[: f.height].copy() for f in c.decode(video=0)]


def _dis() -> cv2.DISOpticalFlow:
    return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]


def flow_error(frames: list[np.ndarray], reference: list[np.ndarray], t: int, dis: Any = None) -> np.ndarray:
    """Per pixel, |F(frames[t-1], frames[t]) - F(reference[t-1], reference[t])| in pixels: what tOF averages."""
    dis = dis or _dis()
    return np.linalg.norm(dis.calc(frames[t - 1], frames[t], None) - dis.calc(reference[t - 1], reference[t], None),
                          axis=2)


def tof(frames: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """TecoGAN's tOF of 8-bit Y ``frames`` against ``reference`` (see the module's docstring); lower is better."""
    dis = _dis()
    errors = [float(np.mean(flow_error(frames, reference, t, dis))) for t in range(1, len(frames))]
    return float(np.mean(errors)) if errors else 0.0


def evaluate_sequences(upscaler, paths: list[Path], scale: int, d: Degradation | None,
                       temporal_filter: bool = False, frames: int = MAX_FRAMES) -> dict:
    """{sequence name: mean Y-PSNR/SSIM and tOF of the model through the video path, and of bicubic}.

    upscaler: the model to score; d: the degradation (None: MATLAB bicubic, lossless); temporal_filter: whether
    the video path filters the output along the motion (``vidsr upscale --temporal-filter``); frames: how many of
    each sequence's first frames are scored."""
    from vidsr.frames.pipeline import UpscaleJob, upscale_video
    from vidsr.video.writer import EncodeOptions

    results = {}
    for k, (name, hr_frames) in enumerate(find_sequences(paths, frames).items()):
        hr = [even_crop(f, scale) for f in hr_frames]
        hr_y = [rgb_to_y(f).astype(np.uint8) for f in hr]
        with tempfile.TemporaryDirectory(prefix="vidsr-eval-") as tmp:
            lr_path, out_path = Path(tmp) / "lr.mkv", Path(tmp) / "out.mkv"
            write_lr_clip(hr, scale, d, lr_path, seed=k)
            upscale_video(UpscaleJob(str(lr_path), str(out_path), upscaler, out_format="matroska",
                                     encode=EncodeOptions("ffv1", None, None, "yuv420p"),
                                     temporal_filter=temporal_filter))
            out_y, lr_y = read_y(out_path), read_y(lr_path)
        bic_y = [imresize(y, scale) for y in lr_y]
        if len(out_y) != len(hr_y):
            raise RuntimeError(f"{name}: the video path gave {len(out_y)} frames for {len(hr_y)}")
        row: dict[str, float] = {"images": len(hr_y)}
        for key, ys in (("", out_y), ("bicubic_", bic_y)):
            row[f"{key}psnr"] = float(np.mean([psnr(shave(a, scale), shave(b, scale)) for a, b in zip(ys, hr_y)]))
            row[f"{key}ssim"] = float(np.mean([ssim(shave(a, scale), shave(b, scale)) for a, b in zip(ys, hr_y)]))
            row[f"{key}tof"] = tof(ys, hr_y)
        results[name] = row
    if len(results) > 1:
        n = sum(r["images"] for r in results.values())
        results["(all)"] = {"images": n} | {key: sum(r[key] * r["images"] for r in results.values()) / n
                                            for key in row if key != "images"}
    return results
