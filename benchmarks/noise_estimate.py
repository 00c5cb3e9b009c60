"""What ``--degradation auto``'s noise estimate reads on clean and noisy lossless input, the single-frame estimate
beside the video one (each frame's lesser of the spatial and the motion-compensated temporal estimate), through
the protocol auto sees (``assess_under``: the clip written as eval --video writes it).

    python benchmarks/noise_estimate.py --data ../shared/data [--scale 2]

Rows: Set14 and Set5 as 5-frame pans (a sub-pixel pan, and a camera standing still), and the first 6 frames of
real sequences; columns: the estimate at noise 0 and noise 3 (RGB sigma, so about 1.7 in luma)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import vidsr.degradation.detect as detect
from vidsr.degradation.apply import pan_frames
from vidsr.degradation.spec import Degradation, parse_spec
from vidsr.quality.evaluate import load_set
from vidsr.quality.sequences import assess_under
from vidsr.train.clips import read_sequence

CLIPS = ["hevc_basketballpass_vcn/BasketballPass_416x240", "vimeo90k_vcn/00001_0001", "cityscapes_vid2vid/seq0002",
         "cutie_judo/judo", "davis2016val_eorvos/cows", "raft_sintel_demo/sintel_demo_frames", "sam2_bedroom/bedroom"]


def single_frame(lumas: list[np.ndarray]) -> float:
    """The estimate before the video one: the median of each frame's spatial estimate."""
    return float(np.median([detect.noise_sigma(y) for y in lumas])) if lumas else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scale", type=int, default=2)
    a = ap.parse_args()
    images = [im[: im.shape[0] // 4 * 4, : im.shape[1] // 4 * 4] for s in ("Set14", "Set5")
              for im in load_set(a.data / "test" / s)]
    inputs = {f"Set14+Set5 pan {p}": [pan_frames(im, Degradation(pan=p, zoom=0.0, frames=5, target=0), a.scale)
                                      for im in images] for p in ((1.3, 0.7), (0.0, 0.0))}
    inputs["real sequences"] = [read_sequence(a.data / "video" / c, 1024, 0, 6) for c in CLIPS]
    video = detect.video_noise_sigma
    print(f"threshold (luma sigma): {detect.REAL_ABOVE_NOISE}; x{a.scale}")
    for name, seqs in inputs.items():
        for spec in ("kernel=area", "kernel=area,noise=3"):
            for label, fn in (("single-frame", single_frame), ("video", video)):
                detect.video_noise_sigma = fn
                sigmas = [c.noise_sigma for c in assess_under(seqs, a.scale, parse_spec(spec))]
                over = sum(s > detect.REAL_ABOVE_NOISE for s in sigmas)
                print(f"{name:28s} {spec:22s} {label:12s} median {np.median(sigmas):5.2f} "
                      f"range {min(sigmas):5.2f}-{max(sigmas):5.2f}  over the threshold {over}/{len(sigmas)}")
    detect.video_noise_sigma = video


if __name__ == "__main__":
    main()
