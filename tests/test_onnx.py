"""The exported ONNX graph (what TensorRT consumes) matches torch under a real ONNX Runtime session."""

import pytest
import torch

pytest.importorskip("onnxruntime", reason="onnxruntime is a dev extra: pip install -e '.[dev]'")

from vidsr.frames.upscaler import Upscaler  # noqa: E402
from vidsr.models.engine import find_engine  # noqa: E402
from vidsr.runtime.onnx_rt import OnnxRuntime, export_onnx, max_abs_diff  # noqa: E402


@pytest.mark.parametrize("model,scale", [("edsr", 2), ("edsr", 3), ("edsr", 4), ("vdsr", 2), ("srcnn", 2),
                                         ("mdsr", 3)])
def test_export_matches_torch_on_unseen_sizes(engines, tmp_path, model, scale):
    engine = find_engine(model, scale, engines)
    net = engine.load(scale)
    path = export_onnx(net, engine.arch.channels, tmp_path / f"{model}-x{scale}.onnx")
    assert max_abs_diff(net, path, engine.arch.channels) <= 1e-4


def test_onnx_runtime_drives_the_upscaler_like_torch(engines, tmp_path):
    from vidsr.runtime.torch_rt import TorchRuntime

    engine = find_engine("edsr", 2, engines)
    path = export_onnx(engine.load(2), 3, tmp_path / "e.onnx")
    x = torch.rand(1, 3, 40, 50)
    a = Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))(x)
    b = Upscaler(engine.arch, 2, OnnxRuntime(path), tile=32, overlap=8)(x)
    assert b.shape == (1, 3, 80, 100) and torch.allclose(a, b, atol=1e-4)
