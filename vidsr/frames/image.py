"""Still images: the same models on a PNG/JPG/BMP, written to a temporary name and renamed on success."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import torch

from vidsr.errors import UsageError, VidsrError
from vidsr.files import output_file
from vidsr.frames.upscaler import Upscaler
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import BT601_YCBCR
from vidsr.video.formats import IMAGE_SUFFIXES


def is_image(path: str) -> bool:
    """A still image, by its name; an animated PNG (APNG: several frames) is a video, as a GIF is."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES and not is_animated_png(path)


def is_animated_png(path: str | Path) -> bool:
    """Whether ``path`` is a PNG with an animation control chunk (acTL) before its image data."""
    if Path(path).suffix.lower() != ".png" or not Path(path).is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    actl, idat = head.find(b"acTL"), head.find(b"IDAT")
    return actl != -1 and (idat == -1 or actl < idat)


def check_complete(path: str) -> None:
    """Refuse a JPEG whose data stops before its end-of-image marker (FF D9): OpenCV decodes it with a grey rest
    and only a warning of libjpeg's."""
    with open(path, "rb") as f:
        if f.read(2) != b"\xff\xd8":
            return
        f.seek(max(0, Path(path).stat().st_size - 4096))
        if b"\xff\xd9" not in f.read():
            raise VidsrError(f"{path}: truncated: the JPEG stops before its end marker (OpenCV would fill the "
                             "rest with grey)")


EIGHT_BIT_ONLY = {".jpg", ".jpeg", ".webp", ".bmp"}  # what OpenCV writes of a 16-bit image there is garbage


# BT.601 studio-range YCbCr, the space the Y models were trained in (as the papers' MATLAB rgb2ycbcr).
_TO_YCC = np.array(BT601_YCBCR) / 255.0
_OFFSET = np.array([16.0, 128.0, 128.0])


TILE = 512  # LR pixels a side of one piece of a large image: its float copies stay a few hundred MB
OVERLAP = 16  # LR pixels of context around each piece, cut away after (as the video path's large frames)


def upscale_image(src: str, dst: str, upscaler: Upscaler, replace: bool = True) -> tuple[int, int, list[str]]:
    """Returns the output (width, height) and what its format could not hold. ``replace=False``: an output another
    run wrote meanwhile is kept.

    The image goes through the network piece by piece (``TILE`` LR pixels a side, with ``OVERLAP`` of context cut
    away after), so that memory is the integer output plus one piece's float copies, whatever the size: a
    4000x4000 PNG at x2 held 12 GB when it went through whole."""
    if upscaler.arch.recurrent:
        raise UsageError(f"{src}: {upscaler.arch.name} engines restore a frame from the frames before it, so they "
                         "upscale videos; for an image use --model auto, edsr or mdsr")
    if not Path(src).is_file():
        raise UsageError(f"{src}: no such file")
    check_complete(src)
    img = cv2.imread(src, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise VidsrError(f"{src}: not an image OpenCV can read")
    depth = 65535.0 if img.dtype == np.uint16 else 255.0
    alpha = None
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        alpha = img[..., 3]
        img = img[..., :3]
    s = upscaler.scale
    h, w = img.shape[:2]
    out = np.empty((h * s, w * s, 3), img.dtype)
    for top in range(0, h, TILE):
        for left in range(0, w, TILE):
            bottom, right = min(top + TILE, h), min(left + TILE, w)
            y0, x0 = max(top - OVERLAP, 0), max(left - OVERLAP, 0)
            y1, x1 = min(bottom + OVERLAP, h), min(right + OVERLAP, w)
            piece = _upscale_piece(img[y0:y1, x0:x1], upscaler, depth)
            out[top * s:bottom * s, left * s:right * s] = piece[(top - y0) * s:(bottom - y0) * s,
                                                                (left - x0) * s:(right - x0) * s]
    if alpha is not None:
        a = cv2.resize(alpha, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_CUBIC)
        out = np.concatenate([out, a[..., None]], axis=2)
    dropped = []
    if out.dtype == np.uint16 and Path(dst).suffix.lower() in EIGHT_BIT_ONLY:
        out = ((out.astype(np.uint32) + 128) // 257).astype(np.uint8)
        dropped.append(f"16-bit depth ({Path(dst).suffix} holds 8 bits; .png or .tif keep 16)")
    with output_file(dst, replace, keep=(src,)) as tmp:
        _write_image(tmp, dst, np.ascontiguousarray(out))
    return out.shape[1], out.shape[0], dropped


def _upscale_piece(bgr: np.ndarray, upscaler: Upscaler, depth: float) -> np.ndarray:
    """One piece of an image (BGR, integer) upscaled, as integers of the same depth."""
    rgb = bgr[..., ::-1].astype(np.float64) / depth
    s = upscaler.scale
    if upscaler.arch.colour == "Y":
        ycc = rgb @ _TO_YCC.T * 255.0 + _OFFSET  # 0..255 code values
        y = torch.from_numpy((ycc[..., 0] / 255.0).astype(np.float32))[None, None]
        y_sr = upscaler(y)[0, 0].double().numpy() * 255.0
        cbcr = imresize(ycc[..., 1:], s)
        out_ycc = np.concatenate([y_sr[..., None], cbcr], axis=2)
        out = (out_ycc - _OFFSET) @ np.linalg.inv(_TO_YCC).T / 255.0
    else:
        x = torch.from_numpy(rgb.transpose(2, 0, 1).astype(np.float32))[None]
        out = upscaler(x)[0].double().numpy().transpose(1, 2, 0)
    return np.clip(np.round(out * depth), 0, depth).astype(bgr.dtype)[..., ::-1]


def _write_image(tmp: Path, dst: str, img: np.ndarray) -> None:
    """OpenCV says only that a write failed; the encoder it asks for and the disk's free space tell why."""
    try:
        ok = cv2.imwrite(str(tmp), img)
    except cv2.error as e:
        raise VidsrError(f"{dst}: OpenCV could not encode the image ({str(e).strip().splitlines()[-1]})") from None
    if not ok:
        if not cv2.haveImageWriter(str(tmp)):
            raise UsageError(f"{dst}: OpenCV cannot write {Path(dst).suffix or 'this'} images; use .png, .jpg, "
                             ".bmp, .tif or .webp")
        free = shutil.disk_usage(tmp.parent).free
        raise VidsrError(f"{dst}: the image could not be written ({free / 1e6:.0f} MB free in {tmp.parent}; "
                         f"the disk may be full)")
