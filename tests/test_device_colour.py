"""The device-side colour path (vidsr.video.planes_torch, vidsr.frames.device_stages) against the CPU path it
replaces on CUDA. Both run here on the CPU, through real PyAV clips and real (tiny) torch models.

How close, as the module says: the luma of Y models is bit-exact; every other plane is within one code value
(OpenCV resizes 8-bit planes in 11-bit fixed point, torch in float), and almost every value is exact."""

import av
import cv2
import numpy as np
import pytest
import torch
from media import decode_planes, make_clip, probe

from vidsr.frames.device_stages import DeviceFrames
from vidsr.frames.pipeline import UpscaleJob, batched, upscale_video
from vidsr.frames.stages import FrameUpscaler
from vidsr.frames.upscaler import Upscaler
from vidsr.models.engine import find_engine
from vidsr.runtime.torch_rt import TorchRuntime
from vidsr.video import planes_torch as pt
from vidsr.video.colour import ColourTags, resize_plane
from vidsr.video.writer import EncodeOptions


@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("size", [(45, 80, 90, 160), (45, 80, 180, 320), (31, 47, 93, 141)])
def test_bicubic_matches_opencv(bits, size):
    h, w, out_h, out_w = size
    rng = np.random.default_rng(bits)
    dtype = np.uint8 if bits == 8 else np.uint16
    plane = rng.integers(0, 1 << bits, (h, w)).astype(dtype)  # noise: the most overshoot a bicubic can make
    ref = resize_plane(plane, out_w, out_h, bits).astype(np.int32)
    ours = pt.quantise(pt.bicubic(torch.from_numpy(plane.astype(np.int16) if bits > 8 else plane)[None], out_w,
                                  out_h), bits)[0].numpy().astype(np.int32)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    assert ref.max() <= (1 << bits) - 1  # the CPU path clamps 10-bit overshoot too (OpenCV saturates at 65535)
    if bits == 8 and out_w // w in (2, 4):
        assert diff.max() == 0  # x2, x4: the kernel weights are whole 2048ths, so OpenCV's fixed point is exact


@pytest.mark.parametrize("size", [(90, 160, 45, 80), (93, 141, 47, 71)])
def test_area_down_matches_opencv(size):
    h, w, out_h, out_w = size
    plane = np.random.default_rng(0).random((h, w)).astype(np.float32) * 255
    ref = cv2.resize(plane, (out_w, out_h), interpolation=cv2.INTER_AREA)
    ours = pt.area_down(torch.from_numpy(plane)[None], out_w, out_h)[0].numpy()
    assert np.abs(ours - ref).max() < 1e-3


def _upscale(engines, tmp_path, arch, pix_fmt, device_colour, batch=2, steady=False, noisy=False):
    name = f"{arch}-{pix_fmt}-{device_colour}-{steady}-{noisy}"
    src = tmp_path / f"in-{pix_fmt}-{noisy}.mkv"
    if not src.exists():  # noise fresh each frame gives the temporal filter something to average
        make_clip(src, 66, 50, frames=7, codec="ffv1", pix_fmt=pix_fmt, subtitles=True,
                  crf_noise=(0, 4) if noisy else None)
    engine = find_engine(arch, 2, engines)
    up = Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))
    out = tmp_path / f"{name}.mkv"
    stats = upscale_video(UpscaleJob(str(src), str(out), up, encode=EncodeOptions("ffv1", None, None), batch=batch,
                                     device_colour=device_colour, temporal_filter=steady))
    assert stats.filtered == (6 if steady else 0)
    return src, out


@pytest.mark.parametrize("arch", ["vdsr", "edsr"])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "yuv422p"])
def test_device_path_matches_cpu_path(engines, tmp_path, arch, pix_fmt):
    src, cpu = _upscale(engines, tmp_path, arch, pix_fmt, False)
    _, dev = _upscale(engines, tmp_path, arch, pix_fmt, True)
    a, b = decode_planes(cpu), decode_planes(dev)
    assert len(a) == len(b) == 7
    for fa, fb in zip(a, b):
        for i, (pa, pb) in enumerate(zip(fa, fb)):
            assert pa.shape == pb.shape and pa.dtype == pb.dtype
            diff = np.abs(pa.astype(np.int32) - pb.astype(np.int32))
            if arch == "vdsr" and i == 0:
                assert diff.max() == 0, "Y models' luma must be bit-exact"
            else:
                assert diff.max() <= 1 and (diff == 0).mean() > 0.98
    # Everything else the pipeline carries is the same: timestamps, audio, subtitles.
    p_src, p_dev = probe(src), probe(dev)
    assert p_dev["times"] == p_src["times"] and p_dev["audio"] == p_src["audio"]
    assert p_dev["subtitle"] == p_src["subtitle"] and len(p_src["subtitle"]) == 2


@pytest.mark.parametrize("arch", ["vdsr", "edsr"])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_the_temporal_filter_on_the_device_matches_the_host(engines, tmp_path, arch, pix_fmt):
    """On the device the filter warps and blends in torch (float weights) where the host uses OpenCV (fixed-point
    weights), from the same flow: the planes agree within two code values and mostly exactly."""
    _, cpu = _upscale(engines, tmp_path, arch, pix_fmt, False, steady=True, noisy=True)
    _, dev = _upscale(engines, tmp_path, arch, pix_fmt, True, steady=True, noisy=True)
    _, raw = _upscale(engines, tmp_path, arch, pix_fmt, True, steady=False, noisy=True)
    a, b, c = decode_planes(cpu), decode_planes(dev), decode_planes(raw)
    assert len(a) == len(b) == 7
    for fa, fb in zip(a, b):
        for pa, pb in zip(fa, fb):  # on this CPU: 8-bit exact, 10-bit within one code value
            diff = np.abs(pa.astype(np.int32) - pb.astype(np.int32))
            assert diff.max() <= 2 and (diff == 0).mean() > 0.9
    # and it filtered: a later frame differs from the unfiltered run of the same clip (by 0.9-7 code values)
    assert np.abs(b[5][0].astype(np.int32) - c[5][0].astype(np.int32)).mean() > 0.5


def test_batches_in_flight_are_bounded_and_keep_their_order(engines, tmp_path):
    src = make_clip(tmp_path / "in.mkv", 32, 24, frames=9, codec="ffv1")
    with av.open(str(src)) as c:
        frames = list(c.decode(video=0))
    engine = find_engine("vdsr", 2, engines)
    up = Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))
    sr = FrameUpscaler(up, "yuv420p", "yuv420p", ColourTags(1, 1, 1, 1), 32, 24)
    items: list = []
    for i, f in enumerate(frames):  # a "packet" (a string here) after every third frame, and one before all
        items += ["first"] if i == 0 else []
        items += [f] + ([f"after {i}"] if i % 3 == 2 else [])
    device = DeviceFrames(sr, "cpu", depth=2)
    out = list(device.run(batched(items, 2, lambda x: isinstance(x, av.VideoFrame))))
    assert device.most_in_flight == 2
    got = [x.pts if isinstance(x, av.VideoFrame) else x for x in out]
    pts = [f.pts for f in frames]
    # Frames in their order; each packet after the batch it came with, never ahead of an earlier frame.
    assert [g for g in got if not isinstance(g, str)] == pts
    assert got[0] == "first"
    for k in (2, 5, 8):
        assert got.index(f"after {k}") > got.index(pts[k])
    expected = sr(frames)
    for a, b in zip([x for x in out if isinstance(x, av.VideoFrame)], expected):
        assert np.array_equal(a.planes[0], b.planes[0])
