"""The ONNX Runtime backend, and the ONNX export that TensorRT will also consume.

The graph has dynamic batch, height and width, so one file serves every frame size. Export is checked at once
against torch under ONNX Runtime: a graph that does not match is never used.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vidsr.errors import VidsrError
from vidsr.runtime.cache import ONNX_TOLERANCE, cache_root, is_fresh, key_of, read_sidecar, store

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


def diff_against_torch(model: nn.Module, rt: Any, channels: int, size: tuple[int, int, int] = (2, 37, 29),
                       seed: int = 0) -> float:
    """max |torch fp32 - ``rt``| on random [0, 1] input of a size (N, H, W) no export saw; any runtime's check."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(size[0], channels, size[1], size[2], generator=g)
    with torch.inference_mode():
        ref = model.eval().float()(x).numpy()
    return float(np.abs(ref - rt.run(x).numpy()).max())


def max_abs_diff(model: nn.Module, onnx_path: Path, channels: int, size: tuple[int, int, int] = (2, 37, 29),
                 seed: int = 0) -> float:
    """Torch against ONNX Runtime on the exported graph."""
    return diff_against_torch(model, OnnxRuntime(onnx_path), channels, size, seed)


def onnx_facts(engine: Any, scale: int) -> dict[str, Any]:
    """Everything the exported graph depends on; it names the cached file."""
    return {"engine": engine.id, "weights_sha256": engine.manifest.weights_sha256, "scale": scale,
            "opset": OPSET, "torch": torch.__version__.split("+")[0]}


def onnx_for(engine: Any, scale: int) -> tuple[Path, float]:
    """The verified ONNX graph of ``engine`` at ``scale`` from the cache, exported (and checked) when missing or
    stale. Returns the path and the measured max |torch - ONNX Runtime|."""
    facts = onnx_facts(engine, scale)
    path = cache_root() / "onnx" / f"{engine.id}-x{scale}-{key_of(facts)}.onnx"
    if is_fresh(path, facts):
        return path, float((read_sidecar(path) or {})["max_abs_diff"])
    model = engine.load(scale)
    with tempfile.TemporaryDirectory(prefix="vidsr-onnx-") as tmp:
        exported = export_onnx(model, engine.input_channels, Path(tmp) / "model.onnx")
        diff = max_abs_diff(model, exported, engine.input_channels)
        if not diff <= ONNX_TOLERANCE:
            raise VidsrError(f"ONNX export of {engine.id} x{scale} differs from torch by {diff:.2e} "
                             f"(> {ONNX_TOLERANCE:g}); not using it")
        store(path, exported.read_bytes(), facts, max_abs_diff=diff, tolerance=ONNX_TOLERANCE)
    return path, diff


@dataclass
class OnnxRuntime:
    path: Path
    threads: int = 0  # 0: ONNX Runtime's default (all cores)
    max_abs_diff: float | None = None  # the export's check against torch, for reports
    name: str = field(default="onnx", init=False)
    precision: str = field(default="fp32", init=False)
    device: str = field(default="cpu", init=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        from vidsr.runtime.cpu import default_threads

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or default_threads()
        self.session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """float32 NCHW in, float32 NCHW out, like every runtime."""
        (y,) = self.session.run(None, {"input": x.detach().cpu().float().contiguous().numpy()})
        return torch.from_numpy(y)
