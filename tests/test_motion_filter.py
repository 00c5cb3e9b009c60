"""The motion-compensated temporal filter: steadier output where the motion explains the picture, the frame as it
is where it does not, and through the real video path."""

import json

import av
import cv2
import numpy as np
import pytest
from media import make_clip

from vidsr.frames.motion_filter import MotionFilter, wanted


def texture(seed: int, h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth random texture (float, 8-bit scale) that optical flow can follow."""
    noise = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
    t = cv2.GaussianBlur(noise, (0, 0), 3)
    return (t - t.min()) / (t.max() - t.min()) * 200 + 25


def as_planes(y: np.ndarray) -> list[np.ndarray]:
    """Output planes of a 4:2:0 frame: the luma given, flat chroma."""
    h, w = y.shape
    grey = np.full((h // 2, w // 2), 128, np.uint8)
    return [np.clip(np.rint(y), 0, 255).astype(np.uint8), grey, grey.copy()]


def run(frames_lr: list[np.ndarray], frames_out: list[np.ndarray], f: MotionFilter) -> list[np.ndarray]:
    return [f(np.clip(np.rint(lr), 0, 255).astype(np.uint8), as_planes(out), 8, 8)[0].astype(np.float32)
            for lr, out in zip(frames_lr, frames_out)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255 ** 2 / np.mean((a - b) ** 2)))


def test_noise_on_a_moving_picture_is_averaged_along_the_motion():
    rng = np.random.default_rng(1)
    big = texture(0, 96, 160)
    clean = [big[:, 2 * t:2 * t + 128] for t in range(6)]  # a pan of 2 pixels a frame
    noisy = [c + rng.normal(0, 4, c.shape) for c in clean]
    lr = [cv2.resize(c, (64, 48), interpolation=cv2.INTER_AREA) for c in noisy]
    f = MotionFilter()
    out = run(lr, noisy, f)
    assert f.filtered == 5
    assert np.array_equal(out[0], np.clip(np.rint(noisy[0]), 0, 255))  # nothing to blend the first frame with
    inner = (slice(8, -8), slice(8, -8))
    before = np.mean([psnr(n[inner], c[inner]) for n, c in zip(noisy[2:], clean[2:])])
    after = np.mean([psnr(o[inner], c[inner]) for o, c in zip(out[2:], clean[2:])])
    assert after > before + 1.5, (before, after)  # noise of sigma 4 over a history of 0.5^k weights


def test_a_scene_cut_is_not_blended_into_the_next_frame():
    first, second = texture(2), texture(3)
    lr = [cv2.resize(x, (64, 48), interpolation=cv2.INTER_AREA) for x in (first, second)]
    out = run(lr, [first, second], MotionFilter())
    assert np.mean(np.abs(out[1] - np.rint(second))) < 1.0  # the new scene as it is, no ghost of the old one


def test_a_still_frame_with_fresh_noise_is_steadier():
    rng = np.random.default_rng(4)
    clean = texture(5)
    noisy = [clean + rng.normal(0, 3, clean.shape) for _ in range(5)]
    lr = [cv2.resize(n, (64, 48), interpolation=cv2.INTER_AREA) for n in noisy]
    out = run(lr, noisy, MotionFilter())
    change_in = np.mean([np.abs(b - a).mean() for a, b in zip(noisy[1:], noisy[2:])])
    change_out = np.mean([np.abs(b - a).mean() for a, b in zip(out[1:], out[2:])])
    assert change_out < 0.75 * change_in, (change_in, change_out)


def test_the_mode_follows_the_engine_and_refuses_nonsense():
    assert wanted("auto", "heavy") and wanted("auto", "real") and not wanted("auto", "clean")
    assert wanted("on", "clean") and not wanted("off", "heavy")
    with pytest.raises(ValueError, match="auto, on, off"):
        wanted("always", "clean")
    with pytest.raises(ValueError, match="strength"):
        MotionFilter(strength=1.0)


def decoded_y(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.reformat(format="yuv420p").to_ndarray()[: f.height].astype(np.float32) for f in c.decode(video=0)]


def test_upscale_filters_a_noisy_clip_through_the_video_path(vidsr, tmp_path):
    clip = make_clip(tmp_path / "cctv.mkv", 96, 64, frames=8, codec="ffv1", audio=False, crf_noise=(0, 6))
    runs = {}
    for mode in ("on", "off"):
        out = tmp_path / f"{mode}.mkv"
        p = vidsr("upscale", clip, "-o", out, "--model", "edsr", "--scale", "2", "--codec", "ffv1",
                  "--temporal-filter", mode, "--json", check=0)
        runs[mode] = (json.loads(p.stdout)["temporal_filter"], decoded_y(out))
    assert runs["on"][0] == {"mode": "on", "on": True, "frames_filtered": 7}
    assert runs["off"][0] == {"mode": "off", "on": False, "frames_filtered": 0}
    on, off = runs["on"][1], runs["off"][1]
    assert len(on) == len(off) == 8 and np.array_equal(on[0], off[0])
    # The scene moves, and its noise is fresh each frame: the filtered frames differ less from the one before
    # along the motion, and the filter changed them.
    assert np.mean(np.abs(on[5] - off[5])) > 0.5
    step = [np.mean([np.abs(ys[t] - ys[t - 1]).mean() for t in range(1, 8)]) for ys in (on, off)]
    assert step[0] < step[1], step


def test_temporal_filter_on_an_image_is_a_usage_error(vidsr, tmp_path):
    img = tmp_path / "a.png"
    cv2.imwrite(str(img), np.zeros((16, 16, 3), np.uint8))
    p = vidsr("upscale", img, "-o", tmp_path / "b.png", "--temporal-filter", "on")
    assert p.returncode == 2 and b"apply to videos" in p.stderr and b"Traceback" not in p.stderr
