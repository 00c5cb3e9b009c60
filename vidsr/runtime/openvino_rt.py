"""The OpenVINO backend: the same exported ONNX graph that ONNX Runtime checks, compiled by OpenVINO for the CPU.

- Precision: bf16 where the CPU has it natively (AMX or AVX-512 bf16), fp32 elsewhere (``--precision``); int8 from
  the engine's own quantised graph, where its measurements allow (``vidsr.runtime.int8``).
- Threads: ``default_threads()``, so ``VIDSR_THREADS`` from ``vidsr batch --jobs`` is honoured; one stream, latency
  hint, since the pipeline sends one call at a time.
- Shapes: the exported graph's dynamic N, H, W, compiled once. Reshaping to each clip's frame size measured no
  faster (benchmarks/openvino_plain.py: 0.922 against 0.926 s/frame at 320x180, and slower at 960x540 on this
  Zen 5), and every new size (each image of an eval set, each edge tile) would cost a compile. OpenVINO's own cache
  under ``$VIDSR_CACHE/openvino/blobs`` keeps the compiled blob, keyed by OpenVINO from the graph, the device and
  every option (so by the engine, its weights, the scale, the precision and the OpenVINO version).
- Checked against torch fp32 before use, like the ONNX graph; the result is remembered in a sidecar named by the
  same facts, so the check runs once per engine, scale, precision and OpenVINO version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.errors import VidsrError
from vidsr.runtime.cache import cache_root, is_fresh, key_of, read_sidecar, store
from vidsr.runtime.cpu import default_threads
from vidsr.runtime.onnx_rt import diff_against_torch

# max |torch fp32 - OpenVINO| on [0, 1] input: fp32 as ONNX Runtime; bf16 keeps 8 bits of mantissa per layer, and
# its quality is what counts (vidsr eval --runtime openvino, within 0.05 dB of fp32 in docs/PERFORMANCE.md).
# int8 is not held to a largest difference: 256 levels a layer are far off on random input, which no calibration
# saw. It is checked on a picture instead (``int8.agreement_db``); its quality is judged on the evaluation sets
# when the graph is made (vidsr engine quantize).
TOLERANCE = {"fp32": 1e-4, "bf16": 0.05}


def import_openvino() -> Any:
    """``import openvino`` without its usage telemetry. The package's import starts OpenVINO's telemetry (a Google
    Analytics session from a forked process), on by default wherever the user never answered its question. A tool
    for CCTV footage sends nothing anywhere, and one such fork, taken while another thread held the import lock, was
    found deadlocked for good behind a run. The package's one switch is its CI opt-out, so the import runs under it
    and the variable is put back after."""
    import os
    import sys

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    saved = os.environ.get("CI")
    os.environ["CI"] = "true"
    try:
        import openvino
    finally:
        if saved is None:
            os.environ.pop("CI", None)
        else:
            os.environ["CI"] = saved
    return openvino


def openvino_version() -> str | None:
    try:
        openvino = import_openvino()
    except ImportError:
        return None
    return str(openvino.__version__).split("-")[0]


@dataclass
class OpenVinoRuntime:
    path: Path  # the verified ONNX graph, or for int8 the engine's quantised OpenVINO graph
    precision: str = "fp32"  # fp32 | bf16 | int8
    threads: int = 0  # 0: default_threads()
    max_abs_diff: float | None = None  # the check against torch, for reports
    name: str = field(default="openvino", init=False)
    device: str = field(default="cpu", init=False)

    def __post_init__(self) -> None:
        ov = import_openvino()

        self.core = ov.Core()
        self.core.set_property({"CACHE_DIR": str(cache_root() / "openvino" / "blobs")})
        self.threads = self.threads or default_threads()
        config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                  "INFERENCE_NUM_THREADS": self.threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
        self.request = self.core.compile_model(str(self.path), "CPU", config).create_infer_request()

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out, like every runtime."""
        self.request.infer({0: np.ascontiguousarray(x.detach().cpu().float().numpy())})
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def openvino_for(engine: Any, scale: int, onnx_path: Path, onnx_facts: dict[str, Any], precision: str,
                 threads: int = 0) -> OpenVinoRuntime:
    """An OpenVINO runtime for the graph, checked against torch fp32 (once per facts; remembered in a sidecar)."""
    facts: dict[str, Any] = {"onnx": onnx_facts, "openvino": openvino_version(), "precision": precision}
    graph = onnx_path
    if precision == "int8":
        from vidsr.runtime.int8 import require

        graph, facts["int8"] = require(engine, scale)
    check = cache_root() / "openvino" / f"{engine.id}-x{scale}-{key_of(facts)}.check"
    rt = OpenVinoRuntime(graph, precision, threads)
    if is_fresh(check, facts):
        rt.max_abs_diff = float((read_sidecar(check) or {})["max_abs_diff"])
        return rt
    if precision == "int8":
        from vidsr.runtime.int8 import check_int8

        rt.max_abs_diff = check_int8(engine, scale, rt)
        store(check, f"{rt.max_abs_diff}\n".encode(), facts, max_abs_diff=rt.max_abs_diff)
        return rt
    diff = diff_against_torch(engine.load(scale), rt, engine.input_channels)
    if not diff <= TOLERANCE[precision]:
        raise VidsrError(f"OpenVINO ({precision}) runs {engine.id} x{scale} {diff:.2e} away from torch "
                         f"(> {TOLERANCE[precision]:g}); not using it")
    store(check, f"{diff}\n".encode(), facts, max_abs_diff=diff, tolerance=TOLERANCE[precision])
    rt.max_abs_diff = diff
    return rt

