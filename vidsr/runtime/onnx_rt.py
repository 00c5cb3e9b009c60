"""The ONNX Runtime backend, and the ONNX export that TensorRT will also consume.

The graph has dynamic batch, height and width, so one file serves every frame size. Export is checked at once
against torch under ONNX Runtime: a graph that does not match is never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17


def export_onnx(model: nn.Module, channels: int, path: Path, probe_size: tuple[int, int] = (24, 32)) -> Path:
    """Write ``model`` (in its current scale) as ONNX with dynamic N, H, W."""
    model = model.eval().float()
    x = torch.rand(1, channels, *probe_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"], opset_version=OPSET,
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"}, "output": {0: "n", 2: "oh", 3: "ow"}},
                          dynamo=False)
    return path


def max_abs_diff(model: nn.Module, onnx_path: Path, channels: int, size: tuple[int, int] = (2, 37, 29),
                 seed: int = 0) -> float:
    """Torch against ONNX Runtime on random [0, 1] input of a size the export never saw."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(size[0], channels, size[1], size[2], generator=g)
    with torch.inference_mode():
        ref = model.eval()(x).numpy()
    got = OnnxRuntime(onnx_path).run(x).numpy()
    return float(np.abs(ref - got).max())


@dataclass
class OnnxRuntime:
    path: Path
    threads: int = 0  # 0: ONNX Runtime's default (all cores)
    name: str = field(default="onnx", init=False)
    precision: str = field(default="fp32", init=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if self.threads:
            opts.intra_op_num_threads = self.threads
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out, like every runtime."""
        (y,) = self.session.run(None, {"input": x.detach().cpu().float().contiguous().numpy()})
        return torch.from_numpy(y)
