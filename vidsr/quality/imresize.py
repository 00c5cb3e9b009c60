"""MATLAB-compatible bicubic ``imresize``.

The SR papers degrade and judge images with MATLAB's ``imresize`` (antialiased bicubic, a = -0.5, symmetric
padding). Published numbers only compare with ours if we resize the same way, so this is a port of MATLAB's
algorithm, not a call to OpenCV (a = -0.75, no antialiasing) or torch.

A resize along one axis is a dense (out x in) weight matrix, so the same weights serve numpy (evaluation,
training data) and torch (the video pipeline) without a second implementation.
"""

from __future__ import annotations

import functools

import numpy as np


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


@functools.lru_cache(maxsize=64)
def resize_matrix(in_len: int, out_len: int, scale: float | None = None, antialias: bool = True) -> np.ndarray:
    """Weights W (out_len x in_len, float64) so that ``W @ x`` resizes x along its first axis like MATLAB."""
    if scale is None:
        scale = out_len / in_len
    kernel_width = 4.0
    if scale < 1 and antialias:
        # Downscaling stretches the kernel so that it low-passes (MATLAB's antialiasing).
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)

        kernel_width /= scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based, as in MATLAB
    weights = kernel(u[:, None] - idx)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: indices outside the image reflect back into it (edge sample repeated).
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx0 = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), taps)
    np.add.at(matrix, (rows, idx0.ravel()), weights.ravel())
    matrix.setflags(write=False)
    return matrix


def imresize(img: np.ndarray, scale: float | None = None, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """Resize an HxW or HxWxC image like MATLAB ``imresize(img, scale, 'bicubic')``.

    ``size`` is (height, width); otherwise both sides are ``ceil(side * scale)``. uint8 input gives uint8 output,
    rounded and clipped as MATLAB does; float input stays float64 and is not clipped.
    """
    if size is None:
        if scale is None:
            raise ValueError("give scale or size")
        size = (int(np.ceil(img.shape[0] * scale)), int(np.ceil(img.shape[1] * scale)))
        sh = sw = scale
    else:
        sh, sw = size[0] / img.shape[0], size[1] / img.shape[1]
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    # MATLAB resizes the axis with the smaller scale first; on a tie, rows first.
    order = (0, 1) if sh <= sw else (1, 0)
    for axis in order:
        in_len, out_len = out.shape[axis], size[axis]
        matrix = resize_matrix(in_len, out_len, sh if axis == 0 else sw, antialias)
        out = np.tensordot(matrix, out, axes=([1], [axis]))
        out = np.moveaxis(out, 0, axis)
    if is_uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out
