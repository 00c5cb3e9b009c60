"""YCbCr <-> RGB with the stream's own matrix and range, and frame planes."""

import av
import numpy as np
import pytest
import torch

from vidsr.video.colour import ColourTags, frame_from_planes, planes_of, rgb_to_yuv, tags_of, working_format, yuv_to_rgb

BT709, BT601, BT2020 = 1, 6, 9
TV, PC = 1, 2


@pytest.mark.parametrize("matrix", [BT709, BT601, BT2020])
@pytest.mark.parametrize("rng", [TV, PC])
@pytest.mark.parametrize("bits", [8, 10])
def test_round_trip(matrix, rng, bits):
    rgb = torch.rand(2, 3, 8, 8)
    y, u, v = rgb_to_yuv(rgb, matrix, rng, bits)
    back = yuv_to_rgb(y, u, v, matrix, rng, bits)
    assert torch.allclose(back, rgb, atol=1e-5)


def test_known_code_values():
    white = torch.ones(1, 3, 1, 1)
    y, u, v = rgb_to_yuv(white, BT709, TV, 8)
    assert (y.item(), u.item(), v.item()) == pytest.approx((235, 128, 128))
    y, u, v = rgb_to_yuv(white, BT709, TV, 10)
    assert (y.item(), u.item(), v.item()) == pytest.approx((940, 512, 512))
    red = torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)
    # Red's luma differs by matrix: that is what a wrong matrix gets wrong.
    assert rgb_to_yuv(red, BT709, TV, 8)[0].item() == pytest.approx(16 + 219 * 0.2126)
    assert rgb_to_yuv(red, BT601, TV, 8)[0].item() == pytest.approx(16 + 219 * 0.299)
    assert rgb_to_yuv(red, BT601, PC, 8)[0].item() == pytest.approx(255 * 0.299)


def test_untagged_streams_guess_by_height():
    assert ColourTags().effective_matrix(1080) == BT709
    assert ColourTags().effective_matrix(576) == BT601
    assert ColourTags(matrix=BT2020).effective_matrix(576) == BT2020
    assert ColourTags().effective_range() == TV


@pytest.mark.parametrize("fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le"])
def test_planes_round_trip_with_odd_sizes(fmt):
    frame = av.VideoFrame(37, 21, fmt)
    rng = np.random.default_rng(0)
    planes = []
    for p in planes_of(frame, fmt):
        top = 1023 if p.dtype == np.uint16 else 255
        planes.append(rng.integers(0, top + 1, p.shape).astype(p.dtype))
    again = planes_of(frame_from_planes(planes, fmt), fmt)
    assert all(np.array_equal(a, b) for a, b in zip(planes, again))
    if fmt == "yuv420p":
        assert planes[1].shape == (11, 19)


def test_tags_and_working_formats():
    frame = av.VideoFrame(16, 16, "yuvj420p")
    frame.colorspace = BT601
    t = tags_of(frame)
    assert t.matrix == BT601 and t.range == PC
    assert working_format("yuvj420p") == "yuv420p"
    assert working_format("nv12") == "yuv420p"
    assert working_format("p010le") == "yuv420p10le"
