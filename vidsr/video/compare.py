"""QA views of bicubic against the model, built from the same decoded frame.

``side``: bicubic on the left, the model on the right, at full output size each (twice as wide).
``split``: one frame at output size, bicubic left of the middle, the model right of it, with a one-pixel-pair
white rule at the seam so that nobody mistakes which half is which.
"""

from __future__ import annotations

import av
import numpy as np

from vidsr.video.colour import PLANAR, planes_of

MODES = ("side", "split")


def bicubic_planes(src: av.VideoFrame, width: int, height: int, fmt: str) -> list[np.ndarray]:
    return planes_of(src.reformat(width=width, height=height, format=fmt, interpolation="BICUBIC"), fmt)


def compose(bicubic: list[np.ndarray], model: list[np.ndarray], mode: str, fmt: str) -> list[np.ndarray]:
    if mode == "side":
        return [np.concatenate([b, m], axis=1) for b, m in zip(bicubic, model)]
    out = []
    luma_w = model[0].shape[1]
    white = (1 << PLANAR[fmt][2]) - 1
    for i, (b, m) in enumerate(zip(bicubic, model)):
        w = m.shape[1]
        cut = w // 2 if i == 0 else (luma_w // 2) * w // luma_w  # the same seam on subsampled chroma
        plane = m.copy()
        plane[:, :cut] = b[:, :cut]
        if i == 0:
            plane[:, max(cut - 1, 0):cut + 1] = white
        out.append(plane)
    return out
