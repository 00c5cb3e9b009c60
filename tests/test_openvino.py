"""The OpenVINO runtime against torch on small random inputs, through the upscaler, and its cache of checks."""

import pytest
import torch

from vidsr.frames.upscaler import Upscaler
from vidsr.models.engine import find_engine
from vidsr.runtime import openvino_rt
from vidsr.runtime.openvino_rt import TOLERANCE, openvino_version
from vidsr.runtime.select import RuntimeSpec, make_runtime
from vidsr.runtime.torch_rt import TorchRuntime

pytestmark = pytest.mark.skipif(openvino_version() is None, reason="openvino is not installed (pip install openvino)")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.parametrize("model,scale,precision", [("edsr", 2, "fp32"), ("vdsr", 3, "fp32"), ("mdsr", 4, "fp32"),
                                                   ("edsr", 2, "bf16"), ("vdsr", 2, "bf16")])
def test_openvino_matches_torch(engines, cache_dir, model, scale, precision):
    engine = find_engine(model, scale, engines)
    rt, _ = make_runtime(engine, scale, RuntimeSpec("openvino", precision=precision))
    assert (rt.name, rt.precision, rt.device) == ("openvino", precision, "cpu")
    x = torch.rand(2, engine.arch.channels, 23, 31)  # a size and batch the check never saw
    with torch.inference_mode():
        ref = engine.load(scale).eval()(x)
    got = rt.run(x)
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got - ref).abs().max().item() <= TOLERANCE[precision]


def test_openvino_drives_the_upscaler_like_torch_at_any_tile_size(engines, cache_dir):
    engine = find_engine("edsr", 2, engines)
    rt, _ = make_runtime(engine, 2, RuntimeSpec("openvino", precision="fp32"))
    x = torch.rand(1, 3, 40, 50)
    a = Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))(x)
    b = Upscaler(engine.arch, 2, rt, tile=32, overlap=8)(x)  # edge tiles bring several shapes
    assert b.shape == (1, 3, 80, 100) and torch.allclose(a, b, atol=1e-4)
    assert any((cache_dir / "openvino" / "blobs").iterdir())  # OpenVINO's compiled blob, in our cache


def test_the_check_against_torch_runs_once_per_facts(engines, cache_dir, monkeypatch):
    engine = find_engine("vdsr", 2, engines)
    make_runtime(engine, 2, RuntimeSpec("openvino", precision="fp32"))
    checks = sorted((cache_dir / "openvino").glob("*.check"))
    assert len(checks) == 1

    def fail(*a, **k):
        raise AssertionError("checked again although the sidecar is fresh")

    with monkeypatch.context() as m:
        m.setattr(openvino_rt, "diff_against_torch", fail)
        rt, _ = make_runtime(engine, 2, RuntimeSpec("openvino", precision="fp32"))
    assert rt.max_abs_diff is not None and rt.max_abs_diff <= TOLERANCE["fp32"]
    make_runtime(engine, 2, RuntimeSpec("openvino", precision="bf16"))  # another fact: another check
    assert len(list((cache_dir / "openvino").glob("*.check"))) == 2
    checks[0].write_bytes(b"tampered\n")  # a check whose bytes changed is stale: checked again
    monkeypatch.setattr(openvino_rt, "diff_against_torch", fail)
    with pytest.raises(AssertionError, match="checked again"):
        make_runtime(engine, 2, RuntimeSpec("openvino", precision="fp32"))


def test_openvino_on_cuda_and_in_fp16_are_usage_errors(engines):
    from vidsr.errors import UsageError

    with pytest.raises(UsageError, match="CPU"):
        RuntimeSpec("openvino", "cuda").resolve()
    with pytest.raises(UsageError, match="fp16|fp32"):
        RuntimeSpec("openvino", "cpu", "fp16").resolve()


def test_a_run_sends_no_openvino_telemetry(vidsr, env, tmp_path):
    # `import openvino` starts OpenVINO's usage telemetry (a Google Analytics session from a forked process) where
    # the user never answered; it wrote ~/intel/openvino_ga_cid on a fresh home, and one such fork was found
    # deadlocked behind a run. vidsr imports it under the package's own opt-out.
    from media import make_clip

    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    env.pop("CI", None)
    clip = make_clip(tmp_path / "in.mp4", frames=3)
    vidsr("upscale", clip, "-o", tmp_path / "out.mp4", "-m", "srcnn", "--runtime", "openvino", check=0)
    assert not (tmp_path / "home" / "intel").exists()
