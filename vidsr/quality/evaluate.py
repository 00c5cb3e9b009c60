"""``vidsr eval``: the papers' protocol (shared BENCHMARKS.md) applied to a model and to bicubic, side by side."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidsr.degradation.apply import degrade, even_crop
from vidsr.degradation.spec import Degradation
from vidsr.quality.images import image_files, read_rgb
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import modcrop, psnr, rgb_to_y, shave, ssim

# (N, C, h, w) float in [0, 1] -> (N, C, H, W) float in [0, 1]
Upscale = Callable[[torch.Tensor], torch.Tensor]


def _to_uint8(t: torch.Tensor) -> np.ndarray:
    a = (t[0].float().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return a.transpose(1, 2, 0) if a.shape[0] == 3 else a[0]


def luma(img: np.ndarray) -> np.ndarray:
    """The Y the papers measure: BT.601 studio-range Y of RGB, or a greyscale image's own values.

    Measuring a greyscale image's own values (not Y of it replicated to RGB, which squeezes it into 16..235) is
    what reproduces the published Set14 numbers: bridge.png scores 26.57 dB bicubic x2 that way, 27.89 the other.
    """
    return img.astype(np.float64) if img.ndim == 2 else rgb_to_y(img)


def super_resolve(upscale: Upscale, lr: np.ndarray, colour: str, lr_y: np.ndarray | None = None) -> np.ndarray:
    """The model's uint8 output for one uint8 LR image (HxWx3 RGB or HxW grey), as HxW luma for Y models and for
    greyscale input, else as HxWx3 RGB. ``lr_y`` is the 8-bit luma a decoder gave (for Y models), where a codec
    made ``lr``."""
    grey = lr.ndim == 2
    if colour == "Y":
        y = (lr if grey else lr_y if lr_y is not None else rgb_to_y(lr)) / 255.0
        x = torch.from_numpy(y.astype(np.float32))[None, None]
    else:
        rgb = np.repeat(lr[..., None], 3, axis=2) if grey else lr
        x = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32) / 255.0)[None]
    out = _to_uint8(upscale(x))
    if grey and out.ndim == 3:
        return np.round(out.mean(axis=2)).astype(np.uint8)
    return out


def degraded_input(hr: np.ndarray, scale: int, degradation: Degradation | None,
                   seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(cropped HR, LR, decoded LR luma or None) for one uint8 HR image. Without a degradation (or a clean one)
    this is the papers' protocol: modcrop and MATLAB bicubic. Otherwise the image goes through ``degradation``
    with a generator seeded by ``seed``, so that every run scores the same bytes."""
    if degradation is None or degradation.is_clean:
        hr = modcrop(hr, scale)
        return hr, imresize(hr, 1 / scale), None
    hr = even_crop(hr, scale)
    grey = hr.ndim == 2
    low = degrade(np.repeat(hr[..., None], 3, axis=2) if grey else hr, scale, degradation,
                  np.random.default_rng([seed]))
    if grey:
        return hr, np.round(low.rgb.mean(axis=2)).astype(np.uint8), None
    return hr, low.rgb, low.y


def evaluate_images(upscale: Upscale | None, colour: str, images: list[np.ndarray], scale: int,
                    degradation: Degradation | None = None) -> dict:
    """Mean PSNR/SSIM of the model (``upscale``; None for bicubic only) and of bicubic over uint8 HR images
    (HxWx3 RGB or HxW grey), whose LR inputs are made by ``degradation`` (None: the papers' MATLAB bicubic);
    image k's degradation is seeded by k."""
    rows: dict[str, tuple[list[float], list[float]]] = {"bicubic": ([], []), "model": ([], [])}
    for k, hr in enumerate(images):
        hr, lr, lr_y = degraded_input(hr, scale, degradation, k)
        y_hr = shave(luma(hr), scale)
        outputs = {"bicubic": luma(imresize(lr, scale))}
        if upscale is not None:
            outputs["model"] = luma(super_resolve(upscale, lr, colour, lr_y))
        for key, y in outputs.items():
            y = shave(y, scale)
            rows[key][0].append(psnr(y, y_hr))
            rows[key][1].append(ssim(y, y_hr))
    result = {"bicubic_psnr": float(np.mean(rows["bicubic"][0])), "bicubic_ssim": float(np.mean(rows["bicubic"][1])),
              "images": len(images)}
    if upscale is not None:
        result |= {"psnr": float(np.mean(rows["model"][0])), "ssim": float(np.mean(rows["model"][1]))}
    return result


def load_set(folder: Path) -> list[np.ndarray]:
    return [read_rgb(f, keep_grey=True) for f in image_files([folder])]

