"""The measurement protocol: MATLAB imresize, Y, PSNR, SSIM, and the published Bicubic row."""

import numpy as np
import pytest
from conftest import DATA, needs_data

from vidsr.quality.evaluate import evaluate_images, load_set
from vidsr.quality.imresize import imresize, resize_matrix
from vidsr.quality.metrics import psnr, rgb_to_y, ssim

# MATLAB's bicubic (a = -0.5) taps for x2 up and for x1/2 down with antialiasing: the well-known values that any
# port must reproduce, e.g. imresize([0 0 0 1 0 0 0 0], 2) in MATLAB.
X2_UP = [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
X2_DOWN = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]


def test_upscale_taps_match_matlab():
    m = resize_matrix(16, 32, 2.0)
    row = m[10]  # an interior output sample: four non-zero taps
    taps = row[row != 0]
    assert np.allclose(sorted(taps), sorted(X2_UP), atol=1e-12)


def test_downscale_taps_are_antialiased_like_matlab():
    m = resize_matrix(32, 16, 0.5)
    taps = m[8][m[8] != 0]
    assert np.allclose(taps, X2_DOWN, atol=1e-12)
    # Without antialiasing MATLAB uses the plain 4-tap kernel.
    plain = resize_matrix(32, 16, 0.5, antialias=False)[8]
    assert np.count_nonzero(plain) == 4


def test_rows_sum_to_one_and_borders_reflect():
    for n_in, n_out in ((7, 21), (21, 7), (10, 40)):
        m = resize_matrix(n_in, n_out)
        assert np.allclose(m.sum(axis=1), 1.0)
    # Symmetric padding: a constant image stays constant to the edge, a ramp stays monotone.
    ramp = np.tile(np.arange(10, dtype=np.float64), (4, 1))
    up = imresize(ramp, 2)
    assert up.shape == (8, 20)
    assert np.all(np.diff(up[0]) >= -1e-9)


def test_uint8_round_trip_rounds_and_clips():
    img = (np.random.default_rng(0).random((12, 10, 3)) * 255).astype(np.uint8)
    out = imresize(img, 0.5)
    assert out.dtype == np.uint8 and out.shape == (6, 5, 3)
    assert imresize(np.full((8, 8), 200, np.uint8), 3).max() == 200


def test_psnr_and_ssim_known_values():
    a = np.full((32, 32), 100.0)
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255**2), abs=1e-9)  # MSE 1 -> 48.13 dB
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 40)).astype(np.float64)
    assert ssim(img, img) == pytest.approx(1.0)
    # Two flat images: only the luminance term is left, (2ab + C1) / (a^2 + b^2 + C1).
    c1 = (0.01 * 255) ** 2
    assert ssim(a, a + 10) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-9)
    assert ssim(img, img + rng.normal(0, 40, img.shape)) < 0.95


def test_y_is_bt601_studio_range_and_rounded_for_uint8():
    white = np.full((1, 1, 3), 255, np.uint8)
    black = np.zeros((1, 1, 3), np.uint8)
    assert rgb_to_y(white)[0, 0] == 235 and rgb_to_y(black)[0, 0] == 16
    assert rgb_to_y(np.array([[[255, 0, 0]]], np.uint8))[0, 0] == round(16 + 65.481)


def test_greyscale_images_are_measured_on_their_own_values():
    grey = np.random.default_rng(2).integers(0, 256, (48, 48)).astype(np.uint8)  # large errors, not rounding
    r = evaluate_images(None, "Y", [grey], 2)
    rgb = evaluate_images(None, "Y", [np.repeat(grey[..., None], 3, axis=2)], 2)
    # Replicating to RGB squeezes grey into 16..235, which raises PSNR by about 20*log10(255/219) = 1.32 dB.
    assert rgb["bicubic_psnr"] - r["bicubic_psnr"] == pytest.approx(1.32, abs=0.05)


@needs_data
def test_bicubic_row_reproduces_published_set5():
    images = load_set(DATA / "test" / "Set5")
    for scale, published in ((2, 33.66), (3, 30.39), (4, 28.42)):
        assert evaluate_images(None, "RGB", images, scale)["bicubic_psnr"] == pytest.approx(published, abs=0.02)
