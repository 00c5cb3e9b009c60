"""The SR papers' measurement protocol (see shared BENCHMARKS.md): Y of BT.601 studio range, shave, PSNR, SSIM."""

from __future__ import annotations

import cv2
import numpy as np

# BT.601 studio-range luma weights for RGB in 0..255 (MATLAB's rgb2ycbcr): the one copy vidsr keeps.
BT601_Y = (65.481, 128.553, 24.966)
# The whole BT.601 studio-range RGB -> YCbCr matrix (rows Y, Cb, Cr; RGB in 0..1, YCbCr in 8-bit levels).
BT601_YCBCR = (BT601_Y, (-37.797, -74.203, 112.0), (112.0, -93.786, -18.214))


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of an RGB image in 0..255, as float64.

    uint8 input gives rounded values, as MATLAB ``rgb2ycbcr`` does on uint8: with it the Bicubic row reproduces the
    published numbers (Set5 x2 33.65 against 33.66; unrounded Y gives 33.68).
    """
    is_uint8 = rgb.dtype == np.uint8
    rgb = rgb.astype(np.float64)
    kr, kg, kb = BT601_Y
    y = 16.0 + (kr * rgb[..., 0] + kg * rgb[..., 1] + kb * rgb[..., 2]) / 255.0
    return np.round(y) if is_uint8 else y


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def shave(img: np.ndarray, border: int) -> np.ndarray:
    return img[border:-border, border:-border] if border else img


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(peak**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Wang et al.'s SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, 'valid' region (as ssim_index.m)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T

    def filt(x: np.ndarray) -> np.ndarray:
        return cv2.filter2D(x, -1, window, borderType=cv2.BORDER_CONSTANT)[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a = filt(a * a) - mu_a**2
    var_b = filt(b * b) - mu_b**2
    cov = filt(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))
