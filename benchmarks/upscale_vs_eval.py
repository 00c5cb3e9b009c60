"""Do images through ``vidsr upscale`` score what ``vidsr eval`` reports?

``vidsr eval`` runs the model in-process; a user (or a reviewer with an independent implementation of the
protocol) runs ``vidsr upscale LR.png -o SR.png`` and measures the PNG. The two must agree, or the published
numbers say nothing about what users get. This script degrades each HR image with our MATLAB-style bicubic,
writes the LR PNG, runs the real CLI on it, and scores the written PNG with the protocol (Y of BT.601, shave =
scale), next to ``vidsr eval``'s number for the same set.

    python benchmarks/upscale_vs_eval.py --model edsr --scale 2 ../shared/data/test/Set5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidsr.quality.evaluate import luma
from vidsr.quality.images import image_files, read_rgb
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import modcrop, psnr, rgb_to_y, shave


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("--model", default="edsr")
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in image_files([args.images]):
            # Greyscale images (Set14's bridge) stay greyscale, as eval keeps them: Y of their RGB replica would
            # squeeze them into 16..235 and score about 1.3 dB higher than eval's protocol does.
            hr = modcrop(read_rgb(path, keep_grey=True), args.scale)
            lr = imresize(hr, 1 / args.scale)
            lr_png, sr_png = Path(tmp) / f"{path.stem}-lr.png", Path(tmp) / f"{path.stem}-sr.png"
            cv2.imwrite(str(lr_png), lr if lr.ndim == 2 else cv2.cvtColor(lr, cv2.COLOR_RGB2BGR))
            subprocess.run([sys.executable, "-m", "vidsr", "upscale", str(lr_png), "-o", str(sr_png), "--model",
                            args.model, "--scale", str(args.scale), "-y"], check=True, stdout=subprocess.DEVNULL)
            sr = read_rgb(sr_png)
            y_sr = np.round(sr.mean(axis=2)) if hr.ndim == 2 else rgb_to_y(sr)
            score = psnr(shave(y_sr, args.scale), shave(luma(hr), args.scale))
            scores.append(score)
            print(f"{path.name}: {score:.2f} dB", file=sys.stderr)
    ev = subprocess.run([sys.executable, "-m", "vidsr", "eval", "--model", args.model, "--scale", str(args.scale),
                         str(args.images), "--json"], check=True, capture_output=True, text=True)
    reported = json.loads(ev.stdout)["sets"][args.images.name]["psnr"]
    print(json.dumps({"model": args.model, "scale": args.scale, "set": args.images.name,
                      "upscale_png_psnr": round(float(np.mean(scores)), 3), "eval_psnr": round(reported, 3)}))


if __name__ == "__main__":
    main()
