"""Which fast network to train, by measured speed on this CPU, not by FLOPs alone.

Each candidate (RepNet sizes, fused as they ship) and EDSR-baseline are exported to ONNX and run under OpenVINO at
the precision ``--precision auto`` picks here, on a 960x540 frame at the scale, in one run, so that the ratios are
fair:

    python benchmarks/fast_candidates.py                 # x2, every candidate
    python benchmarks/fast_candidates.py --scale 4 --calls 3

Prints GFLOP per output megapixel, seconds a frame, fps and the speed-up over EDSR-baseline (the issue's bar: 15x
end to end, so the network alone must do better than that).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidsr.models.flops import conv_flops
from vidsr.models.registry import ARCHITECTURES, PRESETS
from vidsr.runtime.cpu import cpu_model, default_threads, has_fast_bf16
from vidsr.runtime.onnx_rt import export_onnx

CANDIDATES = {  # name: (arch, config)
    "edsr-baseline": ("edsr", PRESETS["edsr-baseline"][1]),
    "repnet c48 b6": ("repnet", {"features": 48, "blocks": 6, "expand": 2}),
    "repnet c32 b8": ("repnet", {"features": 32, "blocks": 8, "expand": 2}),
    "repnet c32 b6": ("repnet", {"features": 32, "blocks": 6, "expand": 2}),
    "repnet c32 b4": ("repnet", {"features": 32, "blocks": 4, "expand": 2}),
    "repnet u2 c64 b4": ("repnet", {"features": 64, "blocks": 4, "expand": 2, "unshuffle": 2}),
    "repnet u2 c64 b6": ("repnet", {"features": 64, "blocks": 6, "expand": 2, "unshuffle": 2}),
    "repnet u2 c48 b6": ("repnet", {"features": 48, "blocks": 6, "expand": 2, "unshuffle": 2}),
    "repnet u2 c48 b8": ("repnet", {"features": 48, "blocks": 8, "expand": 2, "unshuffle": 2}),
    "repnet u2 c64 b8": ("repnet", {"features": 64, "blocks": 8, "expand": 2, "unshuffle": 2}),
    "repnet c24 b6": ("repnet", {"features": 24, "blocks": 6, "expand": 2}),
    "repnet c16 b4": ("repnet", {"features": 16, "blocks": 4, "expand": 2}),
}


def seconds_a_frame(model: torch.nn.Module, scale: int, precision: str, calls: int, folder: Path) -> float:
    from vidsr.runtime.openvino_rt import import_openvino

    ov = import_openvino()
    x = torch.rand(1, 3, 540, 960)
    path = export_onnx(model, 3, folder / "net.onnx")
    config = {"INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
              "INFERENCE_NUM_THREADS": default_threads(), "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    request = ov.Core().compile_model(str(path), "CPU", config).create_infer_request()
    data = np.ascontiguousarray(x.numpy())
    request.infer({0: data})
    best = float("inf")
    for _ in range(calls):
        start = time.perf_counter()
        request.infer({0: data})
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--calls", type=int, default=3, help="timed calls per candidate (the best is kept)")
    parser.add_argument("--only", nargs="*", default=[], help="candidate names to time (EDSR-baseline always runs)")
    args = parser.parse_args()
    precision = "bf16" if has_fast_bf16() else "fp32"
    print(f"{cpu_model()}, {default_threads()} threads, openvino {precision}, 960x540 -> x{args.scale}")
    print(f"{'network':<16} {'GFLOP/MP':>9} {'s/frame':>8} {'fps':>7} {'speed-up':>9}")
    base = None
    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, config) in CANDIDATES.items():
            if args.only and name != "edsr-baseline" and name not in args.only:
                continue
            a = ARCHITECTURES[arch]
            model = a.for_inference(a.build(config, (args.scale,))).eval()
            gflop = conv_flops(model, torch.zeros(1, 3, 32, 32)) / (32 * args.scale) ** 2 / 1e3
            seconds = seconds_a_frame(model, args.scale, precision, args.calls, Path(tmp))
            base = base or seconds
            print(f"{name:<16} {gflop:>9.1f} {seconds:>8.3f} {1 / seconds:>7.2f} {base / seconds:>8.1f}x", flush=True)


if __name__ == "__main__":
    main()
