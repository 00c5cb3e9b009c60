"""vidsr's default CPU path against plain OpenVINO on the same exported graph, in one run (issue 21's check).

Plain OpenVINO is what a user who exports our ONNX would write: read the graph, compile it for the CPU with the bf16
hint (where the CPU has bf16) and 2 threads, infer frame after frame. It runs twice, on the dynamic graph as
exported and on the graph reshaped to the frame size, which also answers whether vidsr should compile per shape.
Then `vidsr bench`'s own measurement (run_bench, the default runtime) on frames of the same size.

With ``--rounds R`` it also alternates the two, frame by frame, R times in one process: plain OpenVINO on the
network's input, then vidsr's upscaler (the call `vidsr bench` times) on the same frame. This VM's speed drifts
by about 9% within minutes, more than the 5% the check allows, and alternating puts both under the same drift;
the medians and the median of the per-round ratios are reported.

    python benchmarks/openvino_plain.py --model edsr-baseline-x2 --size 960x540 --frames 4
    python benchmarks/openvino_plain.py --model vdsr --size 960x540 --frames 2 --rounds 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from vidsr.commands.common import build_upscaler
from vidsr.frames.bench import run_bench
from vidsr.frames.upscaler import Upscaler, bicubic_up
from vidsr.models.engine import find_engine
from vidsr.runtime.cpu import default_threads, has_fast_bf16
from vidsr.runtime.onnx_rt import onnx_for
from vidsr.runtime.openvino_rt import import_openvino
from vidsr.runtime.select import RuntimeSpec
from vidsr.video.writer import EncodeOptions

ov = import_openvino()


def compile_plain(onnx_path: str, x: np.ndarray, static: bool) -> ov.InferRequest:
    core = ov.Core()
    model = core.read_model(onnx_path)
    if static:
        model.reshape({model.inputs[0]: list(x.shape)})
    config = {"INFERENCE_PRECISION_HINT": "bf16" if has_fast_bf16() else "f32",
              "INFERENCE_NUM_THREADS": default_threads()}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    request.infer({0: x})  # warm-up, as vidsr bench does
    return request


def plain(onnx_path: str, x: np.ndarray, frames: int, static: bool) -> float:
    request = compile_plain(onnx_path, x, static)
    t = time.perf_counter()
    for _ in range(frames):
        request.infer({0: x})
    return (time.perf_counter() - t) / frames


def timed(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def interleaved(onnx_path: str, upscaler: Upscaler, lr: torch.Tensor, rounds: int) -> dict[str, float]:
    """Plain OpenVINO and vidsr's upscaler alternating on the same frame, ``rounds`` times each."""
    net_in = bicubic_up(lr, upscaler.scale) if upscaler.arch.input_space == "HR" else lr
    request = compile_plain(onnx_path, net_in.numpy(), static=False)
    upscaler(lr)  # warm-up
    pairs = [(timed(lambda: request.infer({0: net_in.numpy()})), timed(lambda: upscaler(lr))) for _ in range(rounds)]
    return {"rounds": rounds, "plain_median": round(statistics.median(p for p, _ in pairs), 3),
            "vidsr_median": round(statistics.median(v for _, v in pairs), 3),
            "median_ratio": round(statistics.median(v / p for p, v in pairs), 3),
            "ratio_min": round(min(v / p for p, v in pairs), 3), "ratio_max": round(max(v / p for p, v in pairs), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="edsr-baseline-x2")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=0, help="also alternate plain and vidsr this many times")
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    engine = find_engine(a.model, a.scale)
    path, _ = onnx_for(engine, a.scale)
    upscaler, _ = build_upscaler(a.model, a.scale, spec=RuntimeSpec())
    net_hw = engine.arch.network_size(h, w, a.scale)
    x = np.random.default_rng(0).random((1, engine.arch.channels, *net_hw), dtype=np.float32)
    rows = {"plain_dynamic": plain(str(path), x, a.frames, static=False),
            "plain_static": plain(str(path), x, a.frames, static=True)}
    if a.rounds:
        lr = torch.from_numpy(np.random.default_rng(1).random((1, engine.arch.channels, h, w), dtype=np.float32))
        print(json.dumps({"model": engine.id, "size": a.size, "interleaved": interleaved(str(path), upscaler, lr,
                                                                                        a.rounds)}), flush=True)
    r = run_bench(upscaler, engine, (w, h), a.frames, 1, EncodeOptions("libx264", 18, "medium", None))
    rows["vidsr_default"] = r["seconds_per_frame_infer"]
    print(json.dumps({"model": engine.id, "size": a.size, "default_runtime": r["runtime"],
                      "precision": r["precision"], "threads": r["threads"], "cpu": r["cpu"],
                      "seconds_per_frame": {k: round(v, 3) for k, v in rows.items()},
                      "default_vs_plain_dynamic": round(rows["vidsr_default"] / rows["plain_dynamic"], 3),
                      "default_vs_plain_static": round(rows["vidsr_default"] / rows["plain_static"], 3),
                      "e2e_over_infer": r["overhead_ratio"]}))


if __name__ == "__main__":
    main()
