"""The torch backend: eager PyTorch on CPU (fp32 or bf16, channels_last) or CUDA (fp16), or the same model through
torch.compile (``--runtime torch-compile``: inductor's kernels, with CUDA graphs on a GPU), compiled on first use for
each input shape (a clip has one, so one compile per run)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from vidsr.runtime.cpu import default_threads, has_fast_bf16, tune_allocator


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` for a TorchRuntime built directly (training, tests); the CLI passes a resolved RuntimeSpec's."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "fp16"
    return "bf16" if has_fast_bf16() else "fp32"


@dataclass
class TorchRuntime:
    model: nn.Module
    device: str = "cpu"
    precision: str = "auto"
    threads: int | None = None  # CPU threads; None: every core we may use (``default_threads``)
    compiled: bool = False  # torch.compile the model (CUDA graphs on a GPU: "reduce-overhead")
    name: str = field(default="torch", init=False)

    def __post_init__(self) -> None:
        tune_allocator()
        if self.device == "cpu":
            # torch's thread count is process-wide: a caller that set its own (training with --threads) passes it.
            torch.set_num_threads(self.threads or default_threads())
        self.precision = resolve_precision(self.precision, self.device)
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("fp16 needs --device cuda; on a CPU use fp32 or bf16")
        # channels_last lets oneDNN pick its blocked NHWC kernels: 1.4x faster fp32 convs here.
        self.model = self.model.to(self.device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
        if self.precision == "fp16":
            self.model = self.model.half()
        self.graphs = self.compiled and self.device.startswith("cuda")
        if self.compiled:
            self.name = "torch-compile"
            self.model = torch.compile(self.model, mode="reduce-overhead" if self.graphs else None,  # type: ignore[assignment]
                                       fullgraph=True, dynamic=False)

    @torch.inference_mode()
    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out (on the input's device)."""
        src = x.device
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        if self.graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last replay's output is ours to keep (copied below)
        if self.precision == "fp16":
            y = self.model(x.half())
        else:
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                y = self.model(x)
        y = y.float()
        return (y.clone() if self.graphs else y).to(src).contiguous()
