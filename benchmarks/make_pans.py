"""Motion sequences for ``vidsr eval --video``: a slow pan with a slight zoom over each image of a folder.

    python benchmarks/make_pans.py ../shared/data/test/Set14 /tmp/pans --frames 12

writes /tmp/pans/<image>/0000.png ... . The motion is sub-pixel (0.7 and 0.4 HR pixels a frame, 0.2% zoom), so a
codec's motion search and an SR model's stability both meet the case they meet in real footage. Images smaller
than 128 pixels on a side are skipped.

``--step PX`` makes a whole-pixel pan instead: the crop window slides PX HR pixels a frame to the left, no zoom and
no resampling. At x2 a step of 4 moves the LR frame by whole 4:2:0 chroma samples, so an SR network (shift-
equivariant but at the frame's edges) should give shifted copies of one output; what it gives beyond that,
against the sub-pixel pan, tells edge effects from sub-pixel crawl (docs/REAL-FOOTAGE.md, session 22).
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


def slide(img, frames: int, step: int, crop: float = 0.85):
    h, w = img.shape[:2]
    ch, cw = int(h * crop) // 8 * 8, int(w * crop) // 8 * 8
    if step * (frames - 1) > w - cw:
        raise SystemExit(f"a {step}-pixel slide over {frames} frames needs {step * (frames - 1)} pixels of margin, "
                         f"and a {w}-pixel-wide image cropped to {cw} has {w - cw}")
    top = (h - ch) // 2
    for i in range(frames):
        yield img[top:top + ch, step * i:step * i + cw]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--step", type=int, default=0, metavar="PX",
                    help="a whole-pixel pan of PX HR pixels a frame (no zoom, no resampling) instead")
    args = ap.parse_args()
    if args.step < 0 or args.frames < 1:
        ap.error("--step is 0 (the sub-pixel pan) or more HR pixels a frame, and --frames at least 1")
    for path in sorted(args.src.iterdir()):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < 128:
            continue
        folder = args.out / path.stem
        folder.mkdir(parents=True, exist_ok=True)
        frames = slide(img, args.frames, args.step) if args.step else pan(img, args.frames)
        for i, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{i:04d}.png"), frame)
        print(folder)


if __name__ == "__main__":
    main()
