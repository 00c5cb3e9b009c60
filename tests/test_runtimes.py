"""Runtime choice, the artefact cache (fresh vs stale) and the TensorRT path.

The TensorRT tests build and run real plans; they skip, saying why, where tensorrt or a CUDA GPU is missing.
Everything TensorRT consumes (the ONNX graph, the profile, the cache key) is tested here on any machine.
"""

import json

import pytest
import torch

from vidsr.errors import UsageError
from vidsr.frames.upscaler import Upscaler
from vidsr.models.engine import find_engine
from vidsr.models.registry import ARCHITECTURES
from vidsr.runtime import cache
from vidsr.runtime.onnx_rt import onnx_facts, onnx_for
from vidsr.runtime.openvino_rt import openvino_version
from vidsr.runtime.select import RuntimeSpec, make_runtime, resolve
from vidsr.runtime.tensorrt_rt import Profile, plan_facts, plan_path, profile_for, tensorrt_version
from vidsr.runtime.torch_rt import TorchRuntime

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = tensorrt_version() is not None
needs_tensorrt = pytest.mark.skipif(not (HAS_CUDA and HAS_TRT),
                                    reason=f"TensorRT needs a CUDA GPU and the tensorrt package (CUDA: {HAS_CUDA}, "
                                           f"tensorrt: {HAS_TRT}); pip install 'vidsr[tensorrt]' on a GPU machine")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_auto_picks_by_what_is_present():
    if HAS_CUDA and HAS_TRT:
        assert resolve("auto", "auto") == ("tensorrt", "cuda")
    elif HAS_CUDA:
        assert resolve("auto", "auto") == ("torch", "cuda")
    cpu = "openvino" if openvino_version() else "torch"  # the faster, where it is installed (PERFORMANCE.md)
    if not HAS_CUDA:
        assert resolve("auto", "auto") == (cpu, "cpu")
    assert resolve("auto", "cpu") == (cpu, "cpu")
    assert resolve("onnx", "auto") == ("onnx", "cpu")


@pytest.mark.skipif(HAS_CUDA and HAS_TRT, reason="tensorrt and CUDA are both present here")
def test_missing_tensorrt_is_a_usage_error_naming_what_is_missing():
    with pytest.raises(UsageError, match="tensorrt|CUDA"):
        resolve("tensorrt", "auto")


def test_onnx_on_cuda_and_onnx_in_bf16_are_usage_errors(engines):
    with pytest.raises(UsageError, match="onnx"):
        resolve("onnx", "cuda")
    with pytest.raises(UsageError, match="fp32"):
        make_runtime(find_engine("edsr", 2, engines), 2, RuntimeSpec("onnx", "cpu", "bf16"))


def test_profile_is_in_network_input_space():
    assert profile_for(ARCHITECTURES["edsr"], 2, (1920, 1080), 2) == Profile(3, (1080, 1920), 2)
    assert profile_for(ARCHITECTURES["vdsr"], 3, (640, 360), 1) == Profile(1, (1080, 1920), 1)
    # a recurrent engine's plan takes the frame with its state stacked after it (3 + 64 hidden + 3 last frame)
    rvsr = ARCHITECTURES["rvsr"]
    channels = rvsr.input_channels({"features": 64})
    assert profile_for(rvsr, 2, (1920, 1080), 1, channels) == Profile(70, (1080, 1920), 1)
    lo, opt, hi = Profile(3, (1080, 1920), 4).shapes()
    assert lo == (1, 3, 1, 1) and opt == hi == (4, 3, 1080, 1920)


def test_plan_name_changes_with_every_fact(engines):
    engine = find_engine("edsr", 2, engines)
    base = dict(onnx=onnx_facts(engine, 2), profile=Profile(3, (1080, 1920), 1), precision="fp16",
                trt_version="10.3.0", gpu={"gpu": "NVIDIA H100", "compute_capability": "9.0"})
    names = {plan_path(plan_facts(**base))}
    for change in (dict(precision="fp32"), dict(trt_version="10.4.0"), dict(profile=Profile(3, (720, 1280), 1)),
                   dict(gpu={"gpu": "NVIDIA L4", "compute_capability": "8.9"}),
                   dict(gpu={"gpu": "NVIDIA H100", "compute_capability": "9.1"}),
                   dict(onnx=onnx_facts(find_engine("edsr", 3, engines), 3))):
        names.add(plan_path(plan_facts(**(base | change))))
    assert len(names) == 7


def test_onnx_cache_reuses_fresh_and_rebuilds_stale(engines, cache_dir):
    engine = find_engine("vdsr", 2, engines)
    path, diff = onnx_for(engine, 2)
    assert path.is_file() and path.is_relative_to(cache_dir) and diff <= cache.ONNX_TOLERANCE
    mtime = path.stat().st_mtime_ns
    assert onnx_for(engine, 2)[0] == path and path.stat().st_mtime_ns == mtime  # fresh: reused
    path.write_bytes(path.read_bytes()[:-10])  # a truncated graph must never be loaded
    assert not cache.is_fresh(path, onnx_facts(engine, 2))
    again, _ = onnx_for(engine, 2)
    assert cache.is_fresh(again, onnx_facts(engine, 2))
    side = path.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["facts"]["weights_sha256"] = "0" * 64  # a sidecar for other weights: stale
    side.write_text(json.dumps(meta))
    assert not cache.is_fresh(path, onnx_facts(engine, 2))
    assert cache.clear("onnx") == 2 and not path.exists()


class Recording:
    """A torch runtime that refuses inputs above a profile, as a TensorRT plan does."""

    def __init__(self, inner, max_hw):
        self.inner, self.max_hw, self.shapes = inner, max_hw, []
        self.name, self.precision = "recording", "fp32"

    def run(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        assert x.shape[-2] <= self.max_hw[0] and x.shape[-1] <= self.max_hw[1]
        return self.inner.run(x)


def test_frames_above_the_profile_are_tiled_to_fit(engines):
    engine = find_engine("edsr", 2, engines)
    whole = TorchRuntime(engine.load(2), "cpu", "fp32")
    rec = Recording(TorchRuntime(engine.load(2), "cpu", "fp32"), (48, 64))
    x = torch.rand(1, 3, 90, 130)
    got = Upscaler(engine.arch, 2, rec, max_input=(48, 64), overlap=8)(x)
    want = Upscaler(engine.arch, 2, whole)(x)
    assert len(rec.shapes) > 1 and got.shape == want.shape
    assert torch.allclose(got, want, atol=1e-5)  # the tiny test nets see less than the overlap


def test_engine_cli_builds_lists_and_clears(vidsr, env, tmp_path):
    env["VIDSR_CACHE"] = str(tmp_path / "c")
    out = json.loads(vidsr("engine", "build", "-m", "edsr", "-s", "3", "--runtime", "onnx", "--json", check=0).stdout)
    assert out["max_abs_diff"] <= out["tolerance"] == 1e-4 and out["precision"] == "fp32"
    listed = [json.loads(line) for line in vidsr("engine", "list", "--json", check=0).stdout.splitlines()]
    assert [(r["kind"], r["scale"], r["path"]) for r in listed] == [("onnx", 3, out["onnx"])]
    assert vidsr("engine", "build", "--max-size", "big", check=2).stdout == b""
    cleared = json.loads(vidsr("engine", "clear", "--json", check=0).stdout)
    assert cleared["removed"] == 2 and cleared["kind"] == "all"  # the graph and its sidecar
    assert vidsr("engine", "list", "--json", check=0).stdout == b""


@pytest.mark.skipif(HAS_CUDA and HAS_TRT, reason="tensorrt and CUDA are both present here")
def test_engine_cli_tensorrt_without_gpu_says_why(vidsr):
    p = vidsr("engine", "build", "--runtime", "tensorrt", check=2)
    assert b"tensorrt" in p.stderr.lower() and len(p.stderr.splitlines()) == 1


@needs_tensorrt
@pytest.mark.parametrize("precision,atol", [("fp32", 2e-3), ("fp16", 2e-2)])
def test_tensorrt_plan_matches_torch_and_is_cached(engines, cache_dir, precision, atol):
    from vidsr.runtime.tensorrt_rt import TensorRTRuntime, plan_for

    engine = find_engine("edsr", 2, engines)
    onnx_path, _ = onnx_for(engine, 2)
    profile = profile_for(ARCHITECTURES["edsr"], 2, (64, 48), 2)
    plan, built = plan_for(onnx_path, onnx_facts(engine, 2), profile, precision)
    assert built and (cache_dir / "tensorrt" / "timing.cache").is_file()
    assert plan_for(onnx_path, onnx_facts(engine, 2), profile, precision) == (plan, False)
    rt = TensorRTRuntime(plan, profile, precision)
    x = torch.rand(3, 3, 40, 56)  # batch 3 > profile batch 2: split
    want = TorchRuntime(engine.load(2), "cpu", "fp32").run(x)
    assert torch.allclose(rt.run(x), want, atol=atol)
    big = torch.rand(1, 3, 100, 150)  # above the profile: the upscaler tiles
    up = Upscaler(engine.arch, 2, rt, max_input=profile.max_hw, overlap=8)(big)
    assert torch.allclose(up, Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))(big),
                          atol=atol)


@needs_tensorrt
def test_tensorrt_stale_plan_is_rebuilt(engines, cache_dir):
    from vidsr.runtime.tensorrt_rt import plan_for

    engine = find_engine("vdsr", 2, engines)
    onnx_path, _ = onnx_for(engine, 2)
    profile = profile_for(ARCHITECTURES["srcnn"], 2, (32, 32), 1)
    plan, _ = plan_for(onnx_path, onnx_facts(engine, 2), profile, "fp16")
    plan.write_bytes(b"not a plan")
    again, built = plan_for(onnx_path, onnx_facts(engine, 2), profile, "fp16")
    assert again == plan and built and again.read_bytes() != b"not a plan"


def test_a_runtime_spec_resolves_every_choice_once():
    from vidsr.runtime.cpu import has_fast_bf16

    if not HAS_CUDA:
        cpu = RuntimeSpec().resolve()
        assert (cpu.runtime, cpu.device) == ("openvino" if openvino_version() else "torch", "cpu")
        assert cpu.precision == ("bf16" if has_fast_bf16() else "fp32")
        assert cpu.resolve() == cpu  # resolving a resolved spec changes nothing
        with pytest.raises(UsageError, match="fp16 needs --device cuda"):
            RuntimeSpec("torch", precision="fp16").resolve()
        with pytest.raises(UsageError, match="not --precision fp16"):
            RuntimeSpec(precision="fp16").resolve()
    assert RuntimeSpec("onnx").resolve().precision == "fp32"
    with pytest.raises(UsageError, match="runs fp32, not --precision bf16"):
        RuntimeSpec("onnx", precision="bf16").resolve()


def test_engine_build_goes_through_the_runtime_upscale_uses(vidsr):
    p = vidsr("engine", "build", "--model", "edsr", "--scale", "2", "--runtime", "onnx", "--json", check=0)
    r = json.loads(p.stdout)
    assert r["precision"] == "fp32" and r["max_abs_diff"] <= r["tolerance"]
    bad = vidsr("engine", "build", "--model", "edsr", "--runtime", "onnx", "--precision", "fp16", check=2)
    assert b"fp16" in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_torch_compile_runtime_matches_eager_torch(engines):
    """--runtime torch-compile: the same numbers as eager torch, through the same upscaler, compiled once a shape."""
    engine = find_engine("edsr", 2, engines)
    rt, _ = make_runtime(engine, 2, RuntimeSpec("torch-compile", "cpu", "fp32"))
    assert rt.name == "torch-compile" and rt.precision == "fp32"
    eager = TorchRuntime(engine.load(2), "cpu", "fp32")
    x = torch.rand(1, 3, 20, 28)
    up = Upscaler(engine.arch, 2, rt)
    assert torch.allclose(up(x), Upscaler(engine.arch, 2, eager)(x), atol=1e-5)
    y = torch.rand(1, 3, 20, 28)  # the same shape again: the compiled graph is reused, and gives y's result
    assert torch.allclose(up(y), Upscaler(engine.arch, 2, eager)(y), atol=1e-5)
