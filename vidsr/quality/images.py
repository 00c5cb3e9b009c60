"""Reading image sets: one reader for training and evaluation, so both see the same pixels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from vidsr.video.formats import IMAGE_SUFFIXES


def image_files(folders: list[Path]) -> list[Path]:
    files = sorted(p for d in folders for p in Path(d).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no images under {', '.join(map(str, folders))}")
    return files


def read_rgb(path: Path, keep_grey: bool = False) -> np.ndarray:
    """uint8 HxWx3 RGB. Greyscale images are replicated to three channels, or with ``keep_grey`` stay HxW."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    if img.dtype != np.uint8:
        img = (img / 257).round().astype(np.uint8) if img.dtype == np.uint16 else img.astype(np.uint8)
    if img.ndim == 2:
        return img if keep_grey else np.repeat(img[..., None], 3, axis=2)
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
