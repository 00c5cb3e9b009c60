"""RepNet, the fast tier's network: the fused graph computes what the trained branches do, every runtime gets the
fused one, and it runs through the CLI like any engine."""

import json

import pytest
import torch
from media import make_clip

from vidsr.models.engine import find_engine, save_engine
from vidsr.models.flops import gflop_per_output_mp
from vidsr.models.registry import ARCHITECTURES, PRESETS
from vidsr.models.repnet import FusedRepNet, RepNet

TINY = {"features": 8, "blocks": 2, "expand": 2}


def trained_looking(model: torch.nn.Module) -> torch.nn.Module:
    """Weights as training leaves them (PReLU slopes and biases away from their starting values), so that a fusion
    that ignored a branch or a bias would show."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_fused_network_computes_what_the_branches_do(scale):
    branched = trained_looking(RepNet(scale=scale, features=16, blocks=3)).eval()
    fused = branched.fused().eval()
    assert isinstance(fused, FusedRepNet)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in fused.modules()) == 5  # head, 3 blocks, tail: one conv each
    x = torch.rand(2, 3, 23, 31)
    with torch.no_grad():
        want, got = branched(x), fused(x)
    assert got.shape == (2, 3, 23 * scale, 31 * scale)
    assert (want - got).abs().max() < 1e-5  # at every pixel, borders included


def test_an_untrained_network_is_nearest_neighbour_upsampling():
    # The residual is the input repeated over each output pixel's sub-pixels: with the tail at zero, the output is
    # the nearest-neighbour upscale, so training starts from a picture, not from noise.
    net = RepNet(scale=2, **TINY)
    for conv in (net.tail.conv3, net.tail.conv1, net.tail.squeeze):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        assert torch.equal(net(x), x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))


@pytest.fixture()
def repnet_engines(tmp_path, env):
    torch.manual_seed(0)
    model = trained_looking(ARCHITECTURES["repnet"].build(TINY, (2,)))
    save_engine(tmp_path / "repnet-tiny-x2", "repnet-tiny-x2", "repnet", "repnet", "repnet", TINY, (2,), model)
    env["VIDSR_ENGINES"] = str(tmp_path)
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    return tmp_path, model


def test_engines_load_export_and_run_fused_on_every_runtime(repnet_engines, vidsr, monkeypatch):
    root, branched = repnet_engines
    monkeypatch.setenv("VIDSR_ENGINES", str(root))
    monkeypatch.setenv("VIDSR_CACHE", str(root / "cache"))
    engine = find_engine("repnet-tiny-x2", 2)
    assert isinstance(engine.load(2), FusedRepNet)
    from vidsr.models.flops import conv_flops

    training_cost = conv_flops(branched, torch.zeros(1, 3, 32, 32)) / 64 ** 2 / 1e3
    assert gflop_per_output_mp(engine, 2) < training_cost / 2  # `vidsr models` counts what runs, not the branches
    from vidsr.runtime.onnx_rt import onnx_facts, onnx_for
    from vidsr.runtime.openvino_rt import openvino_for

    path, diff = onnx_for(engine, 2)
    assert diff < 1e-4
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "Conv" in ops and len([n for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]) == 4
    rt = openvino_for(engine, 2, path, onnx_facts(engine, 2), "fp32")
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (rt.run(x) - branched.eval()(x)).abs().max() < 1e-4  # OpenVINO's fused graph against training's


def test_the_preset_is_a_tenth_of_edsr_baselines_cost_or_less():
    arch, config = PRESETS["repnet"]
    for scale in (2, 4):
        from vidsr.models.flops import conv_flops

        model = ARCHITECTURES[arch].for_inference(ARCHITECTURES[arch].build(config, (scale,)))

        gflop = conv_flops(model, torch.zeros(1, 3, 32, 32)) / (32 * scale) ** 2 / 1e3
        edsr = conv_flops(ARCHITECTURES["edsr"].build(PRESETS["edsr-baseline"][1], (scale,)),
                          torch.zeros(1, 3, 32, 32)) / (32 * scale) ** 2 / 1e3
        assert gflop <= edsr / 10, (scale, gflop, edsr)


def test_a_video_upscales_through_the_cli(repnet_engines, vidsr, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", 64, 48, frames=6)
    p = vidsr("upscale", clip, "-o", tmp_path / "out.mp4", "-m", "repnet-tiny-x2", "--json", check=0)
    report = json.loads(p.stdout)
    assert report["model"] == "repnet-tiny-x2" and report["frames"] == 6 and report["runtime"] == "openvino"


@pytest.fixture()
def tiered_engines(tmp_path, env):
    """EDSR-baseline (686 GFLOP/MP) and RepNet (20.6) at x2, and EDSR-baseline alone at x4: full-size networks,
    random weights, no measurements (auto's unmeasured choice is EDSR)."""
    torch.manual_seed(0)
    for arch, preset, scale in (("edsr", "edsr-baseline", 2), ("repnet", "repnet", 2), ("edsr", "edsr-baseline", 4)):
        config = PRESETS[preset][1]
        eid = f"{preset}-x{scale}"
        save_engine(tmp_path / eid, eid, arch, preset, arch, config, (scale,),
                    ARCHITECTURES[arch].build(config, (scale,)))
    env["VIDSR_ENGINES"] = str(tmp_path)
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    return tmp_path


def test_quality_picks_auto_within_a_tier_and_says_so(tiered_engines, vidsr, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", 64, 48, frames=4)

    def plan(*args):
        p = vidsr("upscale", clip, "-o", tmp_path / "out.mp4", "--dry-run", "--json", "--degradation", "clean", *args,
                  check=0)
        return json.loads(p.stdout)

    assert plan()["model"] == "edsr-baseline-x2"  # best, the default: what auto ran before tiers
    fast = plan("--quality", "fast")
    assert fast["model"] == "repnet-x2" and "--quality fast: engines of 68.6 GFLOP" in fast["model_choice"]["reason"]
    assert plan("--quality", "balanced")["model"] == "edsr-baseline-x2"
    none = plan("--quality", "fast", "--scale", "4")  # no fast engine at x4: the cheapest there, and why
    assert none["model"] == "edsr-baseline-x4" and "no engine within 68.6" in none["model_choice"]["reason"]
    assert plan("--quality", "fast", "--model", "edsr")["model"] == "edsr-baseline-x2"  # a named model runs as named
