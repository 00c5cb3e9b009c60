"""Which backend runs a model, decided once: a frozen ``RuntimeSpec`` (runtime, device, precision, batch, max
size), resolved in one step into concrete choices, and ``make_runtime`` building the backend it names.

``auto`` prefers TensorRT where CUDA and the tensorrt package both exist, then torch on CUDA in fp16, then the
fastest CPU path: OpenVINO where it is installed (bf16 where the CPU has native bf16), else torch with channels_last;
measured side by side with ONNX Runtime in docs/PERFORMANCE.md (`vidsr bench --runtime all`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import torch

from vidsr.errors import UsageError
from vidsr.runtime.cpu import has_fast_bf16
from vidsr.runtime.openvino_rt import openvino_version
from vidsr.runtime.tensorrt_rt import tensorrt_version

RUNTIMES = ("auto", "torch", "torch-compile", "openvino", "onnx", "tensorrt")
CPU_RUNTIMES = ("openvino", "torch", "onnx")  # what `vidsr bench --runtime all` measures on a CPU
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
DEFAULT_MAX_SIZE = (1920, 1080)  # source frames up to this size run untiled under TensorRT
# What each backend can run, on top of what the device allows.
SUPPORTED = {"torch": ("fp32", "bf16", "fp16"), "torch-compile": ("fp32", "bf16", "fp16"),
             "openvino": ("fp32", "bf16", "int8"), "onnx": ("fp32",),
             "tensorrt": ("fp32", "fp16")}


class Runtime(Protocol):
    """What the upscaler calls: float32 NCHW in [0, 1] in, float32 NCHW out, on ``device``."""

    name: str
    precision: str
    device: str

    def run(self, x: torch.Tensor) -> torch.Tensor: ...


def cuda_available() -> bool:
    return torch.cuda.is_available()


@dataclass(frozen=True)
class RuntimeSpec:
    """Every choice a backend depends on, as the user gave it (``auto`` allowed) or resolved."""

    runtime: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    batch: int = 1  # largest batch a TensorRT plan takes
    max_size: tuple[int, int] = DEFAULT_MAX_SIZE  # (W, H): largest source frame a TensorRT plan takes whole

    def resolve(self) -> RuntimeSpec:
        """The same spec with runtime, device and precision made concrete, or a usage error that says what is
        missing or impossible."""
        runtime, device = self._backend()
        precision = self.precision
        if precision == "auto":
            precision = ("fp16" if device == "cuda" and runtime != "onnx" else
                         "bf16" if runtime in ("torch", "torch-compile", "openvino") and has_fast_bf16() else "fp32")
        if precision not in SUPPORTED[runtime]:
            raise UsageError(f"--runtime {runtime} runs {' or '.join(SUPPORTED[runtime])}, not --precision "
                             f"{precision}")
        if precision == "fp16" and device != "cuda":
            raise UsageError("--precision fp16 needs --device cuda; on a CPU use fp32 or bf16")
        return replace(self, runtime=runtime, device=device, precision=precision)

    def _backend(self) -> tuple[str, str]:
        runtime, device = self.runtime, self.device
        if runtime == "onnx" and device == "cuda":
            raise UsageError("--runtime onnx runs on the CPU here; for a GPU use --runtime tensorrt or torch")
        if device == "cuda" and not cuda_available():
            raise UsageError("--device cuda: no CUDA device is available (this torch is a CPU build or no GPU)")
        if runtime == "tensorrt":
            if tensorrt_version() is None:
                raise UsageError("--runtime tensorrt: the tensorrt package is not installed "
                                 "(pip install 'vidsr[tensorrt]')")
            if not cuda_available() or device == "cpu":
                raise UsageError("--runtime tensorrt needs a CUDA GPU, and none is available")
            return "tensorrt", "cuda"
        if runtime == "onnx":
            return "onnx", "cpu"
        if runtime == "openvino":
            if device == "cuda":
                raise UsageError("--runtime openvino runs on the CPU here; for a GPU use --runtime tensorrt or torch")
            if openvino_version() is None:
                raise UsageError("--runtime openvino: the openvino package is not installed (pip install openvino)")
            return "openvino", "cpu"
        dev = device if device != "auto" else ("cuda" if cuda_available() else "cpu")
        if runtime == "auto" and dev == "cuda" and tensorrt_version() is not None:
            return "tensorrt", "cuda"
        if runtime == "auto" and dev == "cpu" and openvino_version() is not None:
            return "openvino", "cpu"  # fastest or level on the Zen 5 and Sapphire Rapids measured (PERFORMANCE.md)
        return ("torch-compile" if runtime == "torch-compile" else "torch"), dev


def resolve(runtime: str, device: str) -> tuple[str, str]:
    """(runtime, device) after ``auto``: ``RuntimeSpec(runtime, device).resolve()`` without the precision."""
    return RuntimeSpec(runtime, device)._backend()


def make_runtime(engine: Any, scale: int, spec: RuntimeSpec,
                 log: Callable[[str], None] = lambda _: None) -> tuple[Runtime, tuple[int, int] | None]:
    """The backend ``spec`` names (resolved here if it is not yet), and the largest network input (H, W) it
    accepts (None: any size). The ONNX graph is exported and checked against torch once, for onnx and tensorrt."""
    asked = spec.precision
    spec = spec.resolve()
    if asked == "auto" and spec.runtime == "openvino":
        from vidsr.runtime.int8 import usable

        if usable(engine, scale)[0]:  # measured faster and close enough on this CPU kind
            spec = replace(spec, precision="int8")
    if spec.runtime in ("torch", "torch-compile"):
        from vidsr.runtime.torch_rt import TorchRuntime

        return TorchRuntime(engine.load(scale), spec.device, spec.precision,
                            compiled=spec.runtime == "torch-compile"), None
    from vidsr.runtime.onnx_rt import OnnxRuntime, onnx_facts, onnx_for

    onnx_path, diff = onnx_for(engine, scale)
    if spec.runtime == "onnx":
        return OnnxRuntime(onnx_path, max_abs_diff=diff), None
    if spec.runtime == "openvino":
        from vidsr.runtime.openvino_rt import openvino_for

        return openvino_for(engine, scale, onnx_path, onnx_facts(engine, scale), spec.precision), None
    from vidsr.runtime.tensorrt_rt import TensorRTRuntime, plan_for, profile_for

    profile = profile_for(engine.arch, scale, spec.max_size, spec.batch, engine.input_channels)
    plan, built = plan_for(onnx_path, onnx_facts(engine, scale), profile, spec.precision, log)
    return TensorRTRuntime(plan, profile, spec.precision, onnx=onnx_path, built=built), profile.max_hw
