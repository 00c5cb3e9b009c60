"""The TensorRT backend: an ONNX graph built into a serialized plan, run on torch-owned CUDA memory.

torch already holds the GPU memory, the stream and the pre- and post-processing kernels, so the plan runs on
torch tensors through ``set_tensor_address`` and ``execute_async_v3`` on a torch CUDA stream; pycuda would be a
second CUDA context and a second allocator for nothing.

Plans are specific to the weights, the TensorRT version, the GPU and its compute capability, the precision and the
optimization profile. All of those name the cached plan and are repeated in its sidecar; a plan whose facts differ
is rebuilt, never loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vidsr.errors import UsageError, VidsrError
from vidsr.files import atomic_write_bytes, cache_root
from vidsr.models.registry import Architecture
from vidsr.runtime.cache import is_fresh, key_of, store

WORKSPACE_BYTES = 4 << 30  # cap on the scratch memory tactics may use while building


@dataclass(frozen=True)
class Profile:
    """Shapes the plan accepts: batch 1..max_batch, and H x W from 1 x 1 up to ``max_hw`` (network input)."""

    channels: int
    max_hw: tuple[int, int]
    max_batch: int = 1

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """min, opt, max input shapes. Frames usually arrive at full size, so full size is what tactics tune for."""
        c, (h, w), n = self.channels, self.max_hw, self.max_batch
        return (1, c, 1, 1), (n, c, h, w), (n, c, h, w)

    def facts(self) -> dict[str, Any]:
        return {"channels": self.channels, "max_hw": list(self.max_hw), "max_batch": self.max_batch}


def profile_for(arch: Architecture, scale: int, max_size: tuple[int, int], batch: int,
                channels: int | None = None) -> Profile:
    """The profile for source frames up to ``max_size`` (W, H), in the network's own input size (the descriptor
    says: HR-space models see the frame after the bicubic upscale); ``channels``: the input's, where a recurrent
    engine stacks its state after the frame's."""
    w, h = max_size
    return Profile(channels or arch.channels, arch.network_size(h, w, scale), batch)


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return trt.__version__


def gpu_facts(device: int = 0) -> dict[str, Any]:
    major, minor = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "compute_capability": f"{major}.{minor}"}


def plan_facts(onnx: dict[str, Any], profile: Profile, precision: str, trt_version: str,
               gpu: dict[str, Any]) -> dict[str, Any]:
    return {"onnx": onnx, "tensorrt": trt_version, **gpu, "precision": precision, "profile": profile.facts()}


def plan_path(facts: dict[str, Any]) -> Path:
    onnx = facts["onnx"]
    return cache_root() / "tensorrt" / f"{onnx['engine']}-x{onnx['scale']}-{facts['precision']}-{key_of(facts)}.plan"


def _trt_logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


def build_plan(onnx_path: Path, profile: Profile, precision: str, timing_cache: Path,
               workspace: int = WORKSPACE_BYTES) -> bytes:
    """Parse the ONNX graph into an explicit-batch network and build a serialized plan for ``profile``."""
    import tensorrt as trt

    logger = _trt_logger()
    builder = trt.Builder(logger)
    # TensorRT 10 networks are always explicit-batch and the flag is deprecated; 8.x still needs it.
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise VidsrError(f"TensorRT could not parse {onnx_path.name}: " + " | ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if precision == "fp16":
        if not getattr(builder, "platform_has_fast_fp16", True):
            raise UsageError("--precision fp16: this GPU has no fast fp16; use fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    # The timing cache keeps tactic timings between builds (other profiles, other models share layers), which
    # turns minutes of autotuning into seconds.
    cache = config.create_timing_cache(timing_cache.read_bytes() if timing_cache.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    opt = builder.create_optimization_profile()
    opt.set_shape(network.get_input(0).name, *profile.shapes())
    config.add_optimization_profile(opt)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise VidsrError(f"TensorRT failed to build {onnx_path.name} (its log is above)")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def plan_for(onnx_path: Path, onnx: dict[str, Any], profile: Profile, precision: str,
             log: Callable[[str], None] = lambda _: None) -> tuple[Path, bool]:
    """The cached plan for these facts, built first when missing or stale. Returns (path, built now)."""
    facts = plan_facts(onnx, profile, precision, tensorrt_version() or "none", gpu_facts())
    path = plan_path(facts)
    if is_fresh(path, facts):
        return path, False
    log(f"building TensorRT plan {path.name} (once per model, GPU, TensorRT version and profile)")
    data = build_plan(onnx_path, profile, precision, cache_root() / "tensorrt" / "timing.cache")
    store(path, data, facts)
    return path, True


@dataclass
class TensorRTRuntime:
    plan: Path
    profile: Profile
    precision: str = "fp16"
    device: str = "cuda"
    onnx: Path | None = None  # the graph the plan was built from, for reports
    built: bool = False  # the plan was built by this call, not found cached
    name: str = field(default="tensorrt", init=False)

    def __post_init__(self) -> None:
        import tensorrt as trt

        self._logger = _trt_logger()
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self.engine is None:
            raise VidsrError(f"TensorRT could not load {self.plan}; remove it with 'vidsr engine clear'")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        modes = {n: self.engine.get_tensor_mode(n) for n in names}
        self.input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self.output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out on the input's device; batches above the profile are split."""
        h, w = x.shape[-2:]
        if h > self.profile.max_hw[0] or w > self.profile.max_hw[1]:
            raise VidsrError(f"input {w}x{h} exceeds the plan's profile {self.profile.max_hw[1]}x"
                             f"{self.profile.max_hw[0]}; the upscaler should have tiled it")
        parts = [self._run(chunk) for chunk in x.split(self.profile.max_batch)]
        return torch.cat(parts).to(x.device)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        # The caller's stream, not one of our own: the input was made on it (device_stages prepares frames there)
        # and the output is used on it, so stream order alone keeps both safe, with no host synchronisation that
        # would stall the next frame's upload.
        stream = torch.cuda.current_stream(self.device)
        xin = x.to(self.device, torch.float32, non_blocking=True).contiguous()
        if not self.context.set_input_shape(self.input, tuple(xin.shape)):
            raise VidsrError(f"TensorRT rejected input shape {tuple(xin.shape)}")
        y = torch.empty(tuple(self.context.get_tensor_shape(self.output)), dtype=torch.float32, device=self.device)
        self.context.set_tensor_address(self.input, xin.data_ptr())
        self.context.set_tensor_address(self.output, y.data_ptr())
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise VidsrError("TensorRT execution failed")
        return y
