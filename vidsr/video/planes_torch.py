"""The per-frame colour work of ``stages.FrameUpscaler`` in torch alone, so that it runs on whichever device the
model runs on: integer planes in, the network's input out (prepare), and the network's output back to integer
planes (finish).

On a GPU this keeps the float copies of every frame off the PCIe bus: uint8 (or 16-bit) planes go up and come
down, and the matrix, the bicubic chroma, the quantisation and the chroma subsampling happen on the device. The
CPU pipeline keeps OpenCV for the two resizes (its SIMD kernels are faster there); the tests run both on the CPU and
hold this module to it: the luma of Y models bit-exact, every other plane within one code value (OpenCV resizes
8-bit planes in 11-bit fixed point, this in float), and the prepared network input exact up to that chroma.

Planes are (N, H, W) tensors of code values: uint8 for 8-bit, int16 for 10-16 bit (torch's uint16 lacks most
ops; the values fit, and a download reinterprets them as uint16 without a copy).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from vidsr.video.colour import luma_scale, rgb_to_yuv, yuv_to_rgb


def code_dtype(bits: int) -> torch.dtype:
    return torch.uint8 if bits == 8 else torch.int16


def quantise(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Float code values -> rounded, clipped integer codes (as ``colour.to_code``, on any device)."""
    return x.round().clamp_(0, (1 << bits) - 1).to(code_dtype(bits))


def bicubic(planes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Bicubic resize of (N, H, W) planes to (N, height, width) floats, unrounded: the kernel OpenCV's INTER_CUBIC
    uses (a = -0.75, pixel centres at +0.5, edges replicated), so rounding gives its result within one code."""
    if planes.shape[-2:] == (height, width):
        return planes.float()
    return F.interpolate(planes.float()[:, None], size=(height, width), mode="bicubic", align_corners=False)[:, 0]


@functools.lru_cache(maxsize=16)
def _area_matrix(n_in: int, n_out: int, device: str) -> torch.Tensor:
    """(n_out, n_in) weights of area averaging: output cell i covers input [i r, (i + 1) r), r = n_in / n_out,
    each input pixel weighted by its overlap, as OpenCV's INTER_AREA does when it shrinks."""
    r = n_in / n_out
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        lo, hi = i * r, (i + 1) * r
        for j in range(int(lo), min(int(-(-hi // 1)), n_in)):
            m[i, j] = min(hi, j + 1) - max(lo, j)
    return (m / r).float().to(device)


def area_down(planes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Area-average (N, H, W) float planes down to (N, height, width): the filter from 4:4:4 to the output's
    chroma grid. Whole factors are a box average; others use the overlap weights."""
    h, w = planes.shape[-2:]
    if (h, w) == (height, width):
        return planes
    if h % height == 0 and w % width == 0:
        return F.avg_pool2d(planes[:, None], (h // height, w // width))[:, 0]
    device = str(planes.device)
    return _area_matrix(h, height, device) @ planes @ _area_matrix(w, width, device).T


def prepare_luma(y: torch.Tensor, bits: int) -> torch.Tensor:
    """Y code planes (N, H, W) -> the Y models' input (N, 1, H, W) in [0, 1]."""
    return y.float()[:, None] / luma_scale(bits)


def prepare_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor, matrix: int, rng: int, bits: int) -> torch.Tensor:
    """Y, U, V code planes (chroma at its own size) -> RGB (N, 3, H, W) in [0, 1] with the stream's matrix and
    range. Chroma is upscaled bicubic to luma size and rounded to codes first, as the CPU path's integer resize."""
    h, w = y.shape[-2:]
    u_full, v_full = (quantise(bicubic(c, w, h), bits) for c in (u, v))
    return yuv_to_rgb(y, u_full, v_full, matrix, rng, bits)


def rescale_bits(x: torch.Tensor, in_bits: int, out_bits: int) -> torch.Tensor:
    """Float code values of ``in_bits`` -> rounded codes of ``out_bits`` (8-bit source into a 10-bit output)."""
    if in_bits == out_bits:
        return quantise(x, out_bits)
    return quantise(x * (1 << out_bits) / (1 << in_bits), out_bits)


def finish_luma(sr: torch.Tensor, u: torch.Tensor, v: torch.Tensor, chroma_w: int, chroma_h: int, in_bits: int,
                out_bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A Y model's output (N, 1, H, W) in [0, 1] and the source's chroma planes -> output Y, U, V codes, chroma
    bicubic to the output's chroma grid."""
    y = quantise(sr[:, 0] * luma_scale(out_bits), out_bits)
    u_out, v_out = (rescale_bits(quantise(bicubic(c, chroma_w, chroma_h), in_bits).float(), in_bits, out_bits)
                    for c in (u, v))
    return y, u_out, v_out


def finish_rgb(sr: torch.Tensor, matrix: int, rng: int, chroma_w: int, chroma_h: int,
               bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """An RGB model's output (N, 3, H, W) in [0, 1] -> Y, U, V codes in the stream's matrix and range, chroma
    area-averaged down to the output's chroma grid."""
    y, u, v = rgb_to_yuv(sr, matrix, rng, bits)
    return (quantise(y, bits), quantise(area_down(u, chroma_w, chroma_h), bits),
            quantise(area_down(v, chroma_w, chroma_h), bits))
