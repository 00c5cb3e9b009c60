"""Which backend runs a model: ``--runtime auto|torch|onnx|tensorrt`` and ``--device auto|cpu|cuda``, resolved.

``auto`` prefers TensorRT where CUDA and the tensorrt package both exist, then torch on CUDA in fp16, then the
fastest CPU path. On CPU that is torch with channels_last (bf16 where the CPU has native bf16): measured against
ONNX Runtime in docs/PERFORMANCE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vidsr.errors import UsageError
from vidsr.runtime.tensorrt_rt import tensorrt_version

RUNTIMES = ("auto", "torch", "onnx", "tensorrt")
DEVICES = ("auto", "cpu", "cuda")
DEFAULT_MAX_SIZE = (1920, 1080)  # source frames up to this size run untiled under TensorRT


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve(runtime: str, device: str) -> tuple[str, str]:
    """(runtime, device) after ``auto``, or a usage error that says what is missing."""
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
    dev = device if device != "auto" else ("cuda" if cuda_available() else "cpu")
    if runtime == "auto" and dev == "cuda" and tensorrt_version() is not None:
        return "tensorrt", "cuda"
    return "torch", dev


def make_runtime(engine: Any, scale: int, runtime: str = "auto", device: str = "auto", precision: str = "auto",
                 max_size: tuple[int, int] = DEFAULT_MAX_SIZE, batch: int = 1,
                 log: Callable[[str], None] = lambda _: None) -> tuple[Any, tuple[int, int] | None]:
    """The runtime object, and the largest network input (H, W) it accepts (None: any size)."""
    name, dev = resolve(runtime, device)
    if name == "torch":
        from vidsr.runtime.torch_rt import TorchRuntime

        try:
            return TorchRuntime(engine.load(scale), dev, precision), None
        except ValueError as e:
            raise UsageError(str(e)) from None
    if precision not in ("auto", "fp32") and name == "onnx":
        raise UsageError(f"--runtime onnx runs fp32; --precision {precision} is for torch or tensorrt")
    from vidsr.runtime.onnx_rt import OnnxRuntime, onnx_facts, onnx_for

    onnx_path, _ = onnx_for(engine, scale)
    if name == "onnx":
        return OnnxRuntime(onnx_path), None
    if precision not in ("auto", "fp16", "fp32"):
        raise UsageError(f"--runtime tensorrt builds fp16 or fp32 plans, not {precision}")
    from vidsr.runtime.tensorrt_rt import TensorRTRuntime, plan_for, profile_for

    prec = "fp16" if precision == "auto" else precision
    profile = profile_for(engine.arch, scale, max_size, batch)
    plan, _ = plan_for(onnx_path, onnx_facts(engine, scale), profile, prec, log)
    return TensorRTRuntime(plan, profile, prec), profile.max_hw
