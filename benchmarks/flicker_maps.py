"""Where the output flickers: per-pixel tOF maps of bicubic, the network alone and the network with the temporal
filter, on one degraded sequence through the video path (what ``vidsr eval --video`` averages).

    python benchmarks/make_pans.py ../shared/data/test/Set14 /tmp/pans14 --frames 8
    python benchmarks/flicker_maps.py /tmp/pans14/foreman -o docs/images/flicker-maps.jpg

Each panel shows |F(out[t-1], out[t]) - F(hr[t-1], hr[t])| for one frame pair (DIS flow, as tOF), black for 0
and bright for 2 pixels or more, with the clip's mean tOF in its label; the first panel is the original frame.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from vidsr.commands.common import build_upscaler
from vidsr.degradation.apply import even_crop
from vidsr.degradation.spec import parse_spec
from vidsr.frames.pipeline import UpscaleJob, upscale_video
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import rgb_to_y
from vidsr.quality.sequences import find_sequences, flow_error, read_y, tof, write_lr_clip
from vidsr.runtime.select import RuntimeSpec
from vidsr.video.writer import EncodeOptions

SATURATE = 2.0  # pixels of flow error shown at full brightness


def panel(image: np.ndarray, *lines: str) -> np.ndarray:
    """The image with its label lines on a black band above it."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
    band = np.zeros((18 * len(lines) + 6, out.shape[1], 3), np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(band, line, (6, 18 * k + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([band, out])


def heat(error: np.ndarray) -> np.ndarray:
    return cv2.applyColorMap(np.clip(error / SATURATE * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sequence", type=Path, help="a folder of HR frames (or a clip)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--degrade", default="kernel=area,noise=3,h264:crf=30")
    ap.add_argument("--model", default="auto")
    ap.add_argument("--degradation", default="heavy", help="which engine kind (clean, real, heavy)")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--frame", type=int, default=4, help="the pair (frame-1, frame) to show")
    args = ap.parse_args()
    upscaler, engine = build_upscaler(args.model, args.scale, spec=RuntimeSpec("auto", "auto", "auto"),
                                      degradation=args.degradation)
    frames = next(iter(find_sequences([args.sequence]).values()))
    hr = [even_crop(f, args.scale) for f in frames]
    hr_y = [rgb_to_y(f).astype(np.uint8) for f in hr]
    outputs: dict[str, list[np.ndarray]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lr_path = Path(tmp) / "lr.mkv"
        write_lr_clip(hr, args.scale, parse_spec(args.degrade), lr_path, seed=0)
        outputs["bicubic"] = [imresize(y, args.scale) for y in read_y(lr_path)]
        for name, steady in ((engine.id, False), (f"{engine.id} + filter", True)):
            out_path = Path(tmp) / f"{steady}.mkv"
            upscale_video(UpscaleJob(str(lr_path), str(out_path), upscaler, out_format="matroska",
                                     encode=EncodeOptions("ffv1", None, None, "yuv420p"), temporal_filter=steady))
            outputs[name] = read_y(out_path)
    t = args.frame
    panels = [panel(cv2.cvtColor(hr[t], cv2.COLOR_RGB2BGR), "original", f"frame {t}, {args.degrade}")]
    for name, ys in outputs.items():
        panels.append(panel(heat(flow_error(ys, hr_y, t)), name, f"tOF of the clip {tof(ys, hr_y):.3f}"))
    top, bottom = np.hstack(panels[:2]), np.hstack(panels[2:])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.output), np.vstack([top, bottom]))
    print(f"{args.output}: {args.degrade}, x{args.scale}, pair {t - 1}-{t}")


if __name__ == "__main__":
    main()
