"""Motion sequences for ``vidsr eval --video``: a slow pan with a slight zoom over each image of a folder.

    python benchmarks/make_pans.py ../shared/data/test/Set14 /tmp/pans --frames 12

writes /tmp/pans/<image>/0000.png ... . The motion is sub-pixel (0.7 and 0.4 HR pixels a frame, 0.2% zoom), so a
codec's motion search and an SR model's stability both meet the case they meet in real footage. Images smaller
than 128 pixels on a side are skipped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2


def pan(img, frames: int, crop: float = 0.85):
    h, w = img.shape[:2]
    ch, cw = int(h * crop) // 8 * 8, int(w * crop) // 8 * 8
    for i in range(frames):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1 + 0.002 * i)
        m[:, 2] += (-0.7 * i + (w - cw) / 2 - w / 2 + cw / 2, -0.4 * i + (h - ch) / 2 - h / 2 + ch / 2)
        m[:, 2] -= ((w - cw) / 2, (h - ch) / 2)
        yield cv2.warpAffine(img, m, (cw, ch), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT_101)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    for path in sorted(args.src.iterdir()):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < 128:
            continue
        folder = args.out / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(pan(img, args.frames)):
            cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
        print(folder)


if __name__ == "__main__":
    main()
