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


@pytest.mark.parametrize("size", [(23, 31), (24, 30), (1, 1)])
def test_the_unshuffled_variant_fuses_and_takes_any_size(size, tmp_path):
    # unshuffle=2 folds 2x2 pixel blocks into channels: odd sizes are padded by repeating the edge and cropped
    # again, in torch and in the exported graph, which saw only an even size.
    branched = trained_looking(RepNet(scale=2, features=16, blocks=2, unshuffle=2)).eval()
    fused = branched.fused().eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        want, got = branched(x), fused(x)
    assert got.shape == (1, 3, size[0] * 2, size[1] * 2) and (want - got).abs().max() < 1e-5
    from vidsr.runtime.onnx_rt import export_onnx, max_abs_diff

    assert max_abs_diff(fused, export_onnx(fused, 3, tmp_path / "u2.onnx"), 3, (1, *size)) < 1e-4


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


def test_a_bicubic_base_fuses_exports_and_runs_alike_on_every_runtime(tmp_path, monkeypatch):
    # x4 engines add the input upsampled bicubically: an ONNX Resize whose border handling must match torch's on
    # ONNX Runtime and OpenVINO, or every runtime but torch would ship a seam at the frame's edge.
    config = TINY | {"base": "bicubic"}
    branched = trained_looking(ARCHITECTURES["repnet"].build(config, (4,))).eval()
    save_engine(tmp_path / "repnet-bicubic-x4", "repnet-bicubic-x4", "repnet", "repnet", "repnet", config, (4,),
                branched)
    monkeypatch.setenv("VIDSR_ENGINES", str(tmp_path))
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path / "cache"))
    engine = find_engine("repnet-bicubic-x4", 4)
    x = torch.rand(1, 3, 13, 17)
    with torch.no_grad():
        want = branched(x)
        assert (engine.load(4).eval()(x) - want).abs().max() < 1e-5
        nearest = RepNet(scale=4, **TINY).eval()
        nearest.load_state_dict(branched.state_dict())
        assert (nearest(x) - want).abs().max() > 0.01  # the base is not nearest neighbour's
    from vidsr.runtime.onnx_rt import onnx_facts, onnx_for
    from vidsr.runtime.openvino_rt import openvino_for

    path, diff = onnx_for(engine, 4)
    assert diff < 1e-4
    import onnx

    assert "Resize" in {n.op_type for n in onnx.load(str(path)).graph.node}
    rt = openvino_for(engine, 4, path, onnx_facts(engine, 4), "fp32")
    assert (rt.run(x) - want).abs().max() < 1e-4


def test_the_preset_is_a_tenth_of_edsr_baselines_cost_or_less():
    arch, config = PRESETS["repnet"]
    for scale in (2, 4):
        from vidsr.models.flops import conv_flops

        model = ARCHITECTURES[arch].for_inference(ARCHITECTURES[arch].build(config, (scale,)))

        gflop = conv_flops(model, torch.zeros(1, 3, 32, 32)) / (32 * scale) ** 2 / 1e3
        edsr = conv_flops(ARCHITECTURES["edsr"].build(PRESETS["edsr-baseline"][1], (scale,)),
                          torch.zeros(1, 3, 32, 32)) / (32 * scale) ** 2 / 1e3
        assert gflop <= edsr / 10, (scale, gflop, edsr)


def test_the_tiers_caps_follow_edsr_baselines_counted_cost_at_each_scale():
    from vidsr.models.engine import EDSR_BASELINE_GFLOP, tier_cap
    from vidsr.models.flops import count_gflop_per_output_mp

    arch, config = PRESETS["edsr-baseline"]
    for scale, table in EDSR_BASELINE_GFLOP.items():
        counted = count_gflop_per_output_mp(ARCHITECTURES[arch], config, (scale,), scale)
        assert abs(counted - table) < 0.05, (scale, counted, table)
    assert (tier_cap("fast", 2), tier_cap("fast", 4), tier_cap("balanced", 2), tier_cap("best", 4)) == (
        68.6, 24.8, 1029.4, None)


def test_a_video_upscales_through_the_cli(repnet_engines, vidsr, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", 64, 48, frames=6)
    p = vidsr("upscale", clip, "-o", tmp_path / "out.mp4", "-m", "repnet-tiny-x2", "--json", check=0)
    report = json.loads(p.stdout)
    assert report["model"] == "repnet-tiny-x2" and report["frames"] == 6 and report["runtime"] == "openvino"
    # The run says which thread bounded it; the fast tier gets an encoder that keeps its pace.
    assert report["preset"] == "medium"
    fast = json.loads(vidsr("upscale", clip, "-o", tmp_path / "fast.mp4", "-m", "repnet-tiny-x2", "--quality", "fast",
                            "--json").stdout)
    assert fast["preset"] == "veryfast"
    bound = report["bound_by"]
    assert bound["thread"] in ("decode", "upscale", "encode") and set(bound["busy_seconds"]) == {
        "decode", "upscale", "encode"}
    assert bound["busy_seconds"][bound["thread"]] == max(bound["busy_seconds"].values())
    asked = vidsr("upscale", clip, "-o", tmp_path / "slow.mp4", "-m", "repnet-tiny-x2", "--quality", "fast",
                  "--preset", "slow", "--json")
    assert json.loads(asked.stdout)["preset"] == "slow"  # asked for: kept


def scored(psnr: float) -> dict:
    """A heavy engine's manifest fields, with a Set14 score under the val degradation (bicubic at 27.0)."""
    row = {"psnr": psnr, "bicubic_psnr": 27.0, "ssim": 0.8, "bicubic_ssim": 0.7, "images": 14}
    spec = "kernel=area,noise=3,h264:crf=30"
    return {"degradation": {"kind": "heavy", "curve_under": spec},
            "eval_degraded": {spec: {"Set14": {"2": row}, "Set5": {"2": row}}}}


@pytest.fixture()
def heavy_tiers(tmp_path, env):
    """Two engines for heavy input at x2: a tiny RepNet (the fast tier) and a one-block EDSR of 128 features
    (about 520 GFLOP/MP, above the fast tier), the bigger one scored higher."""
    torch.manual_seed(0)
    save_engine(tmp_path / "fast-heavy", "fast-heavy", "repnet", "repnet", "repnet", TINY, (2,),
                ARCHITECTURES["repnet"].build(TINY, (2,)), **scored(27.2))
    big = {"blocks": 1, "features": 128, "res_scale": 1.0}
    save_engine(tmp_path / "big-heavy", "big-heavy", "edsr", "edsr-baseline", "edsr", big, (2,),
                ARCHITECTURES["edsr"].build(big, (2,)), **scored(27.6))
    env["VIDSR_ENGINES"] = str(tmp_path)
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    return tmp_path


def test_the_fast_tier_leaves_the_temporal_filter_off_unless_asked(heavy_tiers, vidsr, tmp_path):
    # The filter is for engines made for degraded input, except in the fast tier: its optical flow and blend at
    # the output's size cost more than a fast network (docs/PERFORMANCE.md).
    clip = make_clip(tmp_path / "in.mp4", 48, 32, frames=3)

    def run(quality, *extra):
        p = vidsr("upscale", clip, "-o", tmp_path / f"{quality}{len(extra)}.mp4", "--quality", quality,
                  "--degradation", "heavy", "--json", *extra)
        return json.loads(p.stdout)

    fast, best = run("fast"), run("best")
    assert fast["model"] == "fast-heavy" and best["model"] == "big-heavy"
    assert not fast["temporal_filter"]["on"] and fast["preset"] == "veryfast"
    assert best["temporal_filter"]["on"] and best["preset"] == "medium"
    assert run("fast", "--temporal-filter", "on")["temporal_filter"]["on"]


def test_bench_puts_the_tiers_side_by_side_with_an_hour_of_footage(heavy_tiers, vidsr):
    p = vidsr("bench", "--quality", "all", "--degradation", "heavy", "--device", "cpu", "--size", "48x32",
              "--frames", "2", "--fps", "12.5", "--json", check=0)
    r = json.loads(p.stdout)
    tiers = {t["quality"]: t for t in r["tiers"]}
    assert list(tiers) == ["fast", "balanced", "best"] and r["fps_of_footage"] == 12.5
    assert [tiers[q]["model"] for q in tiers] == ["fast-heavy", "big-heavy", "big-heavy"]
    assert tiers["balanced"]["e2e_fps"] == tiers["best"]["e2e_fps"]  # one engine, one run, shared
    for t in r["tiers"]:
        assert abs(t["hour_of_footage_seconds"] - 3600 * 12.5 / t["e2e_fps"]) < 0.01 * t["hour_of_footage_seconds"]
    assert tiers["fast"]["quality_db"]["gain_db"] == 0.2 and tiers["best"]["quality_db"]["gain_db"] == 0.6
    assert tiers["fast"]["preset"] == "veryfast" and not tiers["fast"]["temporal_filter"]
    assert tiers["best"]["preset"] == "medium" and tiers["best"]["temporal_filter"]
    assert vidsr("bench", "--quality", "all", "-m", "edsr", check=2).stdout == b""


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
    assert none["model"] == "edsr-baseline-x4" and "no engine within 24.8" in none["model_choice"]["reason"]
    assert plan("--quality", "fast", "--model", "edsr")["model"] == "edsr-baseline-x2"  # a named model runs as named


def test_models_says_in_which_tier_auto_runs_each_engine(tiered_engines, vidsr):
    rows = {(r["engine"], r["scale"]): r for r in map(json.loads, vidsr("models", "--json").stdout.splitlines())}
    both = ["images", "video"]
    assert rows["repnet-x2", 2]["auto_tiers"] == {"fast": both} and not rows["repnet-x2", 2]["auto"]
    assert rows["edsr-baseline-x2", 2]["auto_tiers"] == {"balanced": both, "best": both}
    # No engine at x4 is within the fast tier's cost, so its cheapest one runs there too.
    assert rows["edsr-baseline-x4", 4]["auto_tiers"] == {"fast": both, "balanced": both, "best": both}
    assert "images, video (fast)" in vidsr("models").stdout.decode()


def test_the_cost_is_counted_on_shapes_alone_and_kept_in_the_manifest(tmp_path):
    # The meta-device count (no arithmetic) must equal a real forward pass's, and a saved engine carries it, so
    # that no run counts again: counting a dozen engines for real took 14 s of every --quality fast run.
    from vidsr.models.flops import MANIFEST_FIELD, conv_flops, count_gflop_per_output_mp

    for arch, config, scale in (("edsr", {"blocks": 2, "features": 16, "res_scale": 1.0}, 3), ("repnet", TINY, 2),
                                ("repnet", TINY | {"unshuffle": 2}, 4), ("srcnn", PRESETS["srcnn"][1], 2)):
        a = ARCHITECTURES[arch]
        model = a.build(config, (scale,))
        real = a.for_inference(model).eval()
        side = 32
        h, w = a.network_size(side, side, scale)
        counted = conv_flops(real, torch.zeros(1, a.input_channels(config), h, w)) / (side * scale) ** 2 / 1e3
        assert abs(count_gflop_per_output_mp(a, config, (scale,), scale) - counted) < 1e-6 * counted
        engine = save_engine(tmp_path / arch, arch, arch, arch, arch, config, (scale,), model)
        assert engine.manifest.raw[MANIFEST_FIELD][str(scale)] == round(counted, 3)
        assert gflop_per_output_mp(engine, scale) == round(counted, 3)
