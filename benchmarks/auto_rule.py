"""The measurements behind ``--degradation auto``: where do the real engines beat the clean ones, and the heavy
ones the real ones?

    python benchmarks/make_pans.py ../shared/data/test/Set14 /tmp/pans14 --frames 8
    python benchmarks/auto_rule.py /tmp/pans14 --scale 2

For each input condition (lossless, or H.264 at a CRF, each with luma noise of a sigma) every sequence is
degraded into a real LR clip, measured as auto measures an input (H.264 mean QP, bits per pixel, noise
estimate), and upscaled through the video path by the clean, the real and the heavy auto engine. One line per
condition: the features, each engine's Y-PSNR, the best, and what the rule as it stands picks; the rule's
thresholds (vidsr/degradation/detect.py) are read off this table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from vidsr.commands.common import build_upscaler
from vidsr.degradation.detect import assess_video
from vidsr.degradation.spec import parse_spec
from vidsr.frames.motion_filter import wanted
from vidsr.models.engine import DEGRADATIONS
from vidsr.quality.sequences import evaluate_sequences, find_sequences, write_lr_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sequences", type=Path)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--crf", default="none,12,18,23,30,36")
    ap.add_argument("--noise", default="0,3,6")
    args = ap.parse_args()
    kinds = {kind: build_upscaler("auto", args.scale, degradation=kind) for kind in DEGRADATIONS}
    print(", ".join(f"{kind} {engine.id}" for kind, (_, engine) in kinds.items()) + f", x{args.scale}")
    print("| input | bits/pixel | mean QP | noise est. | bicubic | " + " | ".join(kinds) + " | best | auto picks |")
    print("|---|---|---|---|---|" + "---|" * len(kinds) + "---|---|")
    sequences = find_sequences([args.sequences])
    for crf in args.crf.split(","):
        for noise in map(float, args.noise.split(",")):
            codec = "" if crf == "none" else f",h264:crf={crf}"
            spec = "kernel=area" + (f",noise={noise:g}" if noise else "") + codec
            d = parse_spec(spec)
            features = []
            with tempfile.TemporaryDirectory() as tmp:
                for k, frames in enumerate(sequences.values()):
                    path = Path(tmp) / f"{k}.mkv"
                    write_lr_clip(frames, args.scale, d, path, seed=k)
                    features.append(assess_video(path))
            bpp = float(np.mean([f.bits_per_pixel or 0 for f in features]))
            sigma = float(np.mean([f.noise_sigma for f in features]))
            qps = [f.quantiser for f in features if f.quantiser is not None]
            qp = f"{np.mean(qps):.1f}" if qps else "-"
            picks = {f.choice for f in features}
            psnrs, bicubic = {}, 0.0
            for kind, (up, engine) in kinds.items():
                # As vidsr upscale runs each kind by default: engines for degraded input filter along the motion.
                r = evaluate_sequences(up, [args.sequences], args.scale, d, wanted("auto", engine.degradation))
                row = r.get("(all)", next(iter(r.values())))
                psnrs[kind], bicubic = row["psnr"], row["bicubic_psnr"]
            best = max(psnrs, key=lambda k: psnrs[k])
            print(f"| {spec} | {bpp:.3f} | {qp} | {sigma:.2f} | {bicubic:.2f} | "
                  + " | ".join(f"{q:.2f}" for q in psnrs.values()) + f" | {best} | {'/'.join(sorted(picks))} |",
                  flush=True)


if __name__ == "__main__":
    main()
