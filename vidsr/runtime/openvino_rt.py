"""The OpenVINO backend: the same exported ONNX graph that ONNX Runtime checks, compiled by OpenVINO for the CPU.

- Precision: bf16 where the CPU has it natively (AMX or AVX-512 bf16), fp32 elsewhere (``--precision``).
- Threads: ``default_threads()``, so ``VIDSR_THREADS`` from ``vidsr batch --jobs`` is honoured; one stream, latency
  hint, since the pipeline sends one call at a time.
- Shapes: compiled per input shape, a few kept (video is one size per clip, and a static shape measured faster than
  the dynamic graph: docs/PERFORMANCE.md). OpenVINO's own cache under ``$VIDSR_CACHE/openvino`` keeps compiled
  blobs, keyed by OpenVINO from the graph, the shape, the device and every option (so by the engine, its weights,
  the scale, the precision and the OpenVINO version).
- Checked against torch fp32 before use, like the ONNX graph; the result is remembered in a sidecar named by the
  same facts, so the check runs once per engine, scale, precision and OpenVINO version.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidsr.errors import VidsrError
from vidsr.runtime.cache import cache_root, is_fresh, key_of, read_sidecar, store
from vidsr.runtime.cpu import default_threads

# max |torch fp32 - OpenVINO| on [0, 1] input: fp32 as ONNX Runtime; bf16 keeps 8 bits of mantissa per layer, and
# its quality is what counts (vidsr eval --runtime openvino, within 0.05 dB of fp32 in docs/PERFORMANCE.md).
TOLERANCE = {"fp32": 1e-4, "bf16": 0.05}
KEEP_SHAPES = 4


def openvino_version() -> str | None:
    try:
        import openvino
    except ImportError:
        return None
    return str(openvino.__version__).split("-")[0]


@dataclass
class OpenVinoRuntime:
    path: Path  # the verified ONNX graph
    precision: str = "fp32"  # fp32 | bf16
    threads: int = 0  # 0: default_threads()
    max_abs_diff: float | None = None  # the check against torch, for reports
    name: str = field(default="openvino", init=False)
    device: str = field(default="cpu", init=False)

    def __post_init__(self) -> None:
        import openvino as ov

        self.core = ov.Core()
        self.core.set_property({"CACHE_DIR": str(cache_root() / "openvino" / "blobs")})
        self.model = self.core.read_model(str(self.path))
        self.config = {"INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                       "INFERENCE_NUM_THREADS": self.threads or default_threads(), "NUM_STREAMS": 1,
                       "PERFORMANCE_HINT": "LATENCY"}
        self._compiled: OrderedDict[tuple[int, ...], Any] = OrderedDict()

    def _request(self, shape: tuple[int, ...]) -> Any:
        request = self._compiled.get(shape)
        if request is None:
            model = self.model.clone()
            model.reshape({model.inputs[0]: list(shape)})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            self._compiled[shape] = request
            while len(self._compiled) > KEEP_SHAPES:
                self._compiled.popitem(last=False)
        self._compiled.move_to_end(shape)
        return request

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out, like every runtime."""
        data = np.ascontiguousarray(x.detach().cpu().float().numpy())
        request = self._request(tuple(data.shape))
        request.infer({0: data})
        return torch.from_numpy(request.get_output_tensor(0).data.copy())


def openvino_for(engine: Any, scale: int, onnx_path: Path, onnx_facts: dict[str, Any], precision: str,
                 threads: int = 0) -> OpenVinoRuntime:
    """An OpenVINO runtime for the graph, checked against torch fp32 (once per facts; remembered in a sidecar)."""
    facts = {"onnx": onnx_facts, "openvino": openvino_version(), "precision": precision}
    check = cache_root() / "openvino" / f"{engine.id}-x{scale}-{key_of(facts)}.check"
    rt = OpenVinoRuntime(onnx_path, precision, threads)
    if is_fresh(check, facts):
        rt.max_abs_diff = float((read_sidecar(check) or {})["max_abs_diff"])
        return rt
    diff = max_abs_diff(engine.load(scale), rt, engine.arch.channels)
    if not diff <= TOLERANCE[precision]:
        raise VidsrError(f"OpenVINO ({precision}) runs {engine.id} x{scale} {diff:.2e} away from torch "
                         f"(> {TOLERANCE[precision]:g}); not using it")
    store(check, f"{diff}\n".encode(), facts, max_abs_diff=diff, tolerance=TOLERANCE[precision])
    rt.max_abs_diff = diff
    return rt


def max_abs_diff(model: torch.nn.Module, rt: OpenVinoRuntime, channels: int, size: tuple[int, int, int] = (1, 37, 29),
                 seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(size[0], channels, size[1], size[2], generator=g)
    with torch.inference_mode():
        ref = model.eval().float()(x).numpy()
    return float(np.abs(ref - rt.run(x).numpy()).max())
