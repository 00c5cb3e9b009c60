"""From a low-resolution tensor to a high-resolution one, whatever the architecture and backend.

The descriptor decides the input space: HR-space models (SRCNN, VDSR) get the MATLAB-bicubic upscale they were
trained on first; LR-space models (EDSR, MDSR) get the frame as it is. Large frames are cut into overlapping tiles
so that memory stays bounded; the overlap is cut away, not blended, so that tiles agree with a whole-frame run
except for the far edge of the receptive field.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vidsr.errors import Cancelled
from vidsr.models.registry import Architecture
from vidsr.quality.imresize import resize_matrix
from vidsr.runtime.select import Runtime

LIVE_MAPS = 3  # feature maps eager torch holds at once in a residual network: input, output, skip
MIN_AUTO_TILE = 64  # smaller tiles spend more on their overlap than they save
TILE_MULTIPLE = 8  # tile sides on a multiple of 8, which oneDNN's blocked conv kernels prefer


@functools.lru_cache(maxsize=16)
def _matrix(n: int, scale: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.tensor(resize_matrix(n, n * scale, float(scale)), dtype=dtype, device=device)


def bicubic_up(x: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB bicubic upscale of an NCHW float tensor, as two matrix products (exact, and cheap next to a CNN).
    The matrices are built once per frame size, not per frame."""
    h, w = x.shape[-2:]
    mh = _matrix(h, scale, x.dtype, str(x.device))
    mw = _matrix(w, scale, x.dtype, str(x.device))
    return mh @ x @ mw.T


@dataclass
class Upscaler:
    arch: Architecture
    scale: int
    runtime: Runtime
    tile: int = 0  # tile side in the network's input space; 0 = whole frames unless memory demands tiles
    overlap: int = 16
    features: int = 64  # the widest activation, to estimate memory
    memory_budget: float = 2.0e9  # bytes of activations one call may hold before we tile automatically
    ensemble: bool = False  # geometric self-ensemble: the mean over 8 flips/rotations, 8x the cost
    max_input: tuple[int, int] | None = None  # (H, W) the runtime accepts at most (a TensorRT profile)
    # Asked before every tile: a signal or a failed stage then ends the run within one tile, not one frame.
    should_stop: Callable[[], bool] | None = None

    def auto_tile(self, n: int, h: int, w: int) -> int:
        """A tile side that keeps activations under the budget; 0 when whole frames fit.

        Eager torch holds about three feature maps of the widest layer at once (input, output, residual), in
        fp32: VDSR at 1080p output needs about 1.6 GB, EDSR-full at 4K output far more than a small machine has.
        """
        per_pixel = LIVE_MAPS * 4 * self.features * n  # fp32 bytes of the live feature maps at one pixel
        if per_pixel * h * w <= self.memory_budget:
            return 0
        side = int((self.memory_budget / per_pixel) ** 0.5)
        return max(MIN_AUTO_TILE, side - side % TILE_MULTIPLE)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """NCHW float32 in [0, 1] at LR size -> NCHW float32 in [0, 1] at HR size."""
        if not self.ensemble:
            return self._once(x)
        acc = torch.zeros(0)
        for k in range(8):
            t = torch.rot90(x.flip(-1) if k & 4 else x, k & 3, dims=(-2, -1))
            y = torch.rot90(self._once(t), -(k & 3), dims=(-2, -1))
            y = y.flip(-1) if k & 4 else y
            acc = y if k == 0 else acc.add_(y)
        return acc.div_(8)

    def _once(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch.input_space == "HR":  # the descriptor's network_size: HR-space models see it upscaled
            x = bicubic_up(x, self.scale)
            out_scale = 1
        else:
            out_scale = self.scale
        h, w = x.shape[-2:]
        tile = self.tile or self.auto_tile(x.shape[0], h, w)
        if self.max_input and (h > self.max_input[0] or w > self.max_input[1]):
            # Frames larger than the plan's profile are tiled to fit it.
            tile = min(tile or 1 << 30, *self.max_input)
        if tile and max(h, w) > tile:
            y = self._tiled(x, out_scale, tile)
        else:
            y = self.runtime.run(x)
        # The picture's channels; a recurrent network's hidden state rides after them, unclamped.
        y[:, :self.arch.channels].clamp_(0.0, 1.0)
        return y

    def _tiled(self, x: torch.Tensor, s: int, tile: int) -> torch.Tensor:
        n, _, h, w = x.shape
        t, o = tile, min(self.overlap, tile // 4)
        step = t - 2 * o
        out = torch.empty(0)
        for top in range(0, h, step):
            for left in range(0, w, step):
                # The tile reads o pixels of context on each side, clipped at the frame edge.
                y0, x0 = max(top - o, 0), max(left - o, 0)
                y1, x1 = min(top + step + o, h), min(left + step + o, w)
                if self.should_stop and self.should_stop():
                    raise Cancelled
                part = self.runtime.run(x[..., y0:y1, x0:x1])
                if out.numel() == 0:  # the output's channels are the network's (a recurrent one's differ)
                    out = torch.empty(n, part.shape[1], h * s, w * s, dtype=part.dtype, device=x.device)
                bottom, right = min(top + step, h), min(left + step, w)
                out[..., top * s:bottom * s, left * s:right * s] = part[
                    ..., (top - y0) * s:(bottom - y0) * s, (left - x0) * s:(right - x0) * s]
        return out
