"""Engines that see the video (RVSR): the model, its state through the streaming pipeline and every backend, where
the state starts afresh (start, scene cut, hole, --start), and training on clips."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import torch
from media import TINY, make_clip, scene

from vidsr.frames.recurrence import Recurrence
from vidsr.frames.upscaler import Upscaler
from vidsr.models.edsr import EDSR
from vidsr.models.engine import find_engine
from vidsr.models.registry import ARCHITECTURES
from vidsr.models.rvsr import RVSR, split_output, warp
from vidsr.runtime.torch_rt import TorchRuntime
from vidsr.train.clips import dihedral_flow, dis_flows
from vidsr.train.data import dihedral

MODEL = "rvsr-tiny-x2"
EXACT = ("--runtime", "torch", "--precision", "fp32")


def texture(i: int, w: int, h: int, seed: int = 1) -> np.ndarray:
    """Another shot: coloured blobs drifting right, nothing like ``scene``'s gradients."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 64, 3)).astype(np.float32), (0, 0), 3)
    base = (base - base.min()) / (base.max() - base.min()) * 255
    return np.ascontiguousarray(base[:, 2 * i:2 * i + w]).astype(np.uint8)


def lossless_clip(path: Path, frames: list[np.ndarray], rate: int = 25, pts: list[int] | None = None,
                  pix_fmt: str = "yuv420p") -> Path:
    """RGB frames as FFV1 (lossless), so that two clips holding the same frames decode to the same planes."""
    with av.open(str(path), "w") as c:
        v = c.add_stream("ffv1", rate=rate)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        v.time_base = Fraction(1, 1000)
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            f.pts, f.time_base = (pts[i] if pts else round(i * 1000 / rate)), Fraction(1, 1000)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
    return path


def planes(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray().astype(np.int32) for f in c.decode(video=0)]


def upscale_json(vidsr, src: Path, out: Path, *args: str) -> dict:
    return json.loads(vidsr("upscale", src, "-o", out, "-m", MODEL, "--codec", "ffv1", "--json", "-q", *args,
                            check=0).stdout)


def test_a_warm_start_from_edsr_is_that_engine_until_it_learns():
    torch.manual_seed(0)
    edsr, rvsr = EDSR(2, blocks=2, features=16).eval(), RVSR(2, blocks=2, features=16).eval()
    rvsr.load_state_dict(edsr.state_dict(), strict=False)
    x = torch.rand(1, 3, 20, 24)
    state = torch.cat([x, torch.rand(1, 16, 20, 24), torch.rand(1, 3, 20, 24)], 1)  # any state: fuse ignores it
    with torch.no_grad():
        y, hidden = split_output(rvsr(state), 3, 2)
        assert torch.allclose(y, edsr(x), atol=1e-6)
    assert hidden.shape == (1, 16, 20, 24)
    with pytest.raises(ValueError, match="multiple of 9"):
        RVSR(3, features=16)


def test_flipped_and_turned_flows_still_line_the_frames_up():
    rng = np.random.default_rng(0)
    first = cv2.GaussianBlur(rng.random((40, 50)).astype(np.float32), (0, 0), 2)
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    flow = np.stack([1.5 + 0.05 * xx, -0.7 + 0.03 * yy], -1)
    second = cv2.remap(first, xx + flow[..., 0], yy + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    for k in range(8):
        a, b, f = (np.ascontiguousarray(t) for t in (dihedral(first, k), dihedral(second, k), dihedral_flow(flow, k)))
        moved = warp(torch.from_numpy(a)[None, None], torch.from_numpy(f).permute(2, 0, 1)[None])[0, 0].numpy()
        assert np.abs(moved - b)[5:-5, 5:-5].max() < 1e-5, k
        if k and a.shape == first.shape:  # and a flow left as it was would not
            wrong = warp(torch.from_numpy(a)[None, None], torch.from_numpy(flow.copy()).permute(2, 0, 1)[None])
            assert np.abs(wrong[0, 0].numpy() - b)[5:-5, 5:-5].max() > 1e-3, k


def test_streaming_computes_what_training_unrolls():
    # The pipeline's Recurrence (flow per frame, state kept between calls) against RVSR.sequence on the same frames
    # with the flows the training clips get: the same numbers, so what training teaches is what runs.
    torch.manual_seed(0)
    model = RVSR(2, blocks=1, features=8).eval()
    torch.nn.init.normal_(model.fuse.weight, std=0.1)
    rgb = [scene(i, 64, 48) for i in range(6)]
    lumas = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]
    x = torch.from_numpy(np.stack(rgb).transpose(0, 3, 1, 2).astype(np.float32) / 255)
    flows = torch.from_numpy(dis_flows(lumas).transpose(0, 3, 1, 2))
    rec = Recurrence(2, 8)
    up = Upscaler(ARCHITECTURES["rvsr"], 2, TorchRuntime(model, "cpu", "fp32"), tile=32)  # tiles, clamps as upscale
    with torch.no_grad():
        unrolled = model.sequence(x[None], flows[None])[0]
        streamed = torch.cat([rec.keep(up(rec.packed(x[t:t + 1], lumas[t], 8)), x[t:t + 1]) for t in range(6)])
        alone = split_output(model(torch.cat([x, torch.zeros(6, 8, 48, 64), x], 1)), 3, 2)[0]
    assert [r.reason for r in rec.restarts] == ["start"]
    assert torch.allclose(streamed.clamp(0, 1), unrolled.clamp(0, 1), atol=1e-5)
    assert (streamed[1:] - alone[1:]).abs().max() > 1e-3  # the state does change the frames after the first


def test_the_held_out_score_can_say_what_the_memory_adds():
    # score_clips(fresh=True) runs the same weights one frame at a time: level with the stream while the memory's
    # weights are still zero (a warm start), apart once they are not.
    from vidsr.train.clips import ValClip, score_clips

    torch.manual_seed(0)
    model = RVSR(2, blocks=1, features=8).eval()
    rgb = np.stack([scene(i, 64, 48) for i in range(5)])
    lr = np.stack([cv2.resize(f, (32, 24), interpolation=cv2.INTER_AREA) for f in rgb])
    clip = ValClip("pan", lr, dis_flows([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in lr]),
                   np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb]).astype(np.float64))
    stream, alone = (score_clips(model, [clip], 2, fresh=f)["psnr"] for f in (False, True))
    assert stream == alone
    torch.nn.init.normal_(model.fuse.weight, std=0.1)
    stream, alone = (score_clips(model, [clip], 2, fresh=f)["psnr"] for f in (False, True))
    assert abs(stream - alone) > 1e-3


def test_a_scene_cut_starts_the_state_afresh_with_no_ghost(vidsr, tmp_path):
    shot_a = [scene(i, 64, 48) for i in range(6)]
    shot_b = [texture(i, 64, 48) for i in range(6)]
    both = lossless_clip(tmp_path / "ab.mkv", shot_a + shot_b)
    alone = lossless_clip(tmp_path / "b.mkv", shot_b)
    r = upscale_json(vidsr, both, tmp_path / "ab-x2.mkv", *EXACT)
    assert r["recurrent"]["restarts"] == [{"frame": 0, "reason": "start"}, {"frame": 6, "reason": "cut"}]
    assert upscale_json(vidsr, alone, tmp_path / "b-x2.mkv", *EXACT)["frames"] == 6
    after_cut, fresh = planes(tmp_path / "ab-x2.mkv")[6:], planes(tmp_path / "b-x2.mkv")
    assert all(np.array_equal(a, b) for a, b in zip(after_cut, fresh))  # nothing of shot A reaches shot B


def test_a_hole_and_start_restart_the_state(vidsr, tmp_path):
    frames = [scene(i, 64, 48) for i in range(12)]
    pts = [40 * i for i in range(6)] + [40 * i for i in range(9, 15)]  # frames 6-8 missing: a hole
    holed = lossless_clip(tmp_path / "holed.mkv", frames, pts=pts)
    r = upscale_json(vidsr, holed, tmp_path / "holed-x2.mkv", *EXACT)
    assert r["frames_lost"] == 3
    assert r["recurrent"]["restarts"] == [{"frame": 0, "reason": "start"}, {"frame": 6, "reason": "hole"}]

    whole = lossless_clip(tmp_path / "whole.mkv", frames)
    tail = lossless_clip(tmp_path / "tail.mkv", frames[5:])
    r = upscale_json(vidsr, whole, tmp_path / "cut-x2.mkv", "--start", "0.2", *EXACT)
    assert r["frames"] == 7 and r["recurrent"]["restarts"] == [{"frame": 0, "reason": "start"}]
    upscale_json(vidsr, tail, tmp_path / "tail-x2.mkv", *EXACT)
    assert np.array_equal(planes(tmp_path / "cut-x2.mkv")[0], planes(tmp_path / "tail-x2.mkv")[0])
    # and without --start, frame 5 carries the state of frames 0-4, so it differs from a fresh start there
    upscale_json(vidsr, whole, tmp_path / "whole-x2.mkv", *EXACT)
    assert not np.array_equal(planes(tmp_path / "whole-x2.mkv")[5], planes(tmp_path / "tail-x2.mkv")[0])


def test_openvino_onnx_and_torch_agree_on_every_frame_of_a_stream(vidsr, tmp_path):
    src = lossless_clip(tmp_path / "in.mkv", [scene(i, 64, 48) for i in range(10)])
    outs = {}
    for runtime in ("torch", "openvino", "onnx"):
        upscale_json(vidsr, src, tmp_path / f"{runtime}.mkv", "--runtime", runtime, "--precision", "fp32")
        outs[runtime] = planes(tmp_path / f"{runtime}.mkv")
    for runtime in ("openvino", "onnx"):
        assert len(outs[runtime]) == 10
        # within one code value on every frame, the last included: the state agrees all along the stream
        assert max(np.abs(a - b).max() for a, b in zip(outs[runtime], outs["torch"])) <= 1, runtime


def test_tiles_and_the_device_path_give_the_whole_frame_result(env, engines, tmp_path):
    from vidsr.commands.common import build_upscaler
    from vidsr.frames.pipeline import UpscaleJob, upscale_video
    from vidsr.runtime.select import RuntimeSpec
    from vidsr.video.writer import EncodeOptions

    src = lossless_clip(tmp_path / "in.mkv", [scene(i, 96, 64) for i in range(6)])
    results = {}
    for name, tile, device_colour in (("whole", 0, False), ("tiled", 32, False), ("device", 0, True)):
        up, _ = build_upscaler(MODEL, 2, spec=RuntimeSpec("torch", "cpu", "fp32"), tile=tile)
        out = tmp_path / f"{name}.mkv"
        upscale_video(UpscaleJob(str(src), str(out), up, encode=EncodeOptions("ffv1", None, None, "yuv420p"),
                                 device_colour=device_colour, batch=3))
        results[name] = planes(out)
    for name in ("tiled", "device"):
        assert max(np.abs(a - b).max() for a, b in zip(results[name], results["whole"])) <= 1, name


def test_pipes_ten_bit_and_images(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", 64, 48, 8)
    p = vidsr("upscale", "-", "-o", "-", "--format", "matroska", "-m", MODEL, input=src.read_bytes(), check=0)
    out = tmp_path / "piped.mkv"
    out.write_bytes(p.stdout)
    assert len(planes(out)) == 8
    deep = make_clip(tmp_path / "deep.mkv", 64, 48, 6, pix_fmt="yuv420p10le", codec="libx265", audio=False)
    r = upscale_json(vidsr, deep, tmp_path / "deep-x2.mkv", "--pix-fmt", "yuv420p10le")
    assert r["frames"] == 6 and len(r["recurrent"]["restarts"]) == 1
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), scene(0, 32, 24))
    p = vidsr("upscale", image, "-o", tmp_path / "b.png", "-m", MODEL, check=2)
    assert b"upscale videos" in p.stderr and len(p.stderr.splitlines()) == 1
    assert vidsr("upscale", src, "-o", tmp_path / "e.mkv", "-m", MODEL, "--ensemble", check=2).stdout == b""


def test_batch_runs_a_recurrent_engine(vidsr, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    make_clip(src / "a.mp4", 64, 48, frames=5)
    make_clip(src / "b.mkv", 64, 48, frames=4)
    vidsr("batch", src, "-o", out, "--no-estimate", "-m", MODEL, "--preset", "ultrafast", check=0)
    assert sorted(len(planes(p)) for p in out.iterdir() if p.suffix in (".mp4", ".mkv")) == [4, 5]


def test_auto_keeps_single_frame_engines_for_images(engines):
    assert not find_engine("auto", 2, engines).arch.recurrent
    assert find_engine("rvsr", 2, engines).id == MODEL
    assert TINY["rvsr"]["features"] % 4 == 0


CLIP_RECIPE = """
id = "rvsr-test"
[model]
preset = "rvsr"
scales = [2]
config = {{blocks = 1, features = 8}}
[data]
clips = ["video"]
val_clips = ["video/held"]
window = 4
frames = 3
val_frames = 4
val_side = 64
patch = 16
{degradation}
[train]
seed = 1
batch = 2
steps = 4
eval_every = 2
checkpoint_every = 2
"""
H264 = """[degradation]
variants = 1
noise = [1.0, 2.0]
codecs = {h264 = 1.0}
h264_crf = [28, 32]
val = "kernel=area,noise=2,h264:crf=30"
"""


@pytest.fixture()
def clip_tree(tmp_path, monkeypatch):
    """Two training sequences and one held out, as folders of PNG frames named as BasketballPass's (im1, im2, ...
    im10: they must sort by number)."""
    monkeypatch.setenv("VIDSR_CACHE", str(tmp_path / "cache"))
    for seq, shot in (("a", scene), ("b", texture), ("held", scene)):
        folder = tmp_path / "data" / "video" / seq
        folder.mkdir(parents=True)
        for i in range(10):
            cv2.imwrite(str(folder / f"im{i + 1}.png"), shot(i, 72, 56)[..., ::-1])
    return tmp_path / "data"


@pytest.mark.parametrize("degradation", ["", H264])
def test_training_on_clips_resumes_and_scores_the_held_out_clip(tmp_path, clip_tree, degradation):
    from vidsr.train.clips import frame_files, train_sequences
    from vidsr.train.loop import train
    from vidsr.train.recipe import load_recipe

    assert [p.name for p in frame_files(clip_tree / "video" / "a")][:3] == ["im1.png", "im2.png", "im3.png"]
    recipe_path = tmp_path / "r.toml"
    recipe_path.write_text(CLIP_RECIPE.format(degradation=degradation))
    recipe = load_recipe(recipe_path)
    assert [p.name for p in train_sequences(clip_tree, recipe.clips, recipe.val_clips)] == ["a", "b"]
    out, whole = tmp_path / "rvsr-test", tmp_path / "whole"
    train(recipe, clip_tree, out, max_steps=2, log=lambda _: None)
    state = train(recipe, clip_tree, out, resume=True, log=lambda _: None)
    train(recipe, clip_tree, whole, log=lambda _: None)
    assert state.step == 4
    manifest = json.loads((out / "manifest.json").read_text())
    table = next(iter(manifest["eval_clips"].values()))
    assert set(table) == {"held"} and table["held"]["2"]["bicubic_psnr"] > 20
    held = table["held"]["2"]  # the same weights one frame at a time, beside it: 4 steps teach the memory little
    assert abs(held["fresh_state_psnr"] - held["psnr"]) < 0.5
    assert find_engine("rvsr-test", 2, tmp_path).degradation == ("real" if degradation else "clean")
    assert [p["step"] for p in manifest["curve"]] == [2, 4] and "x2_bicubic" in manifest["curve"][0]
    assert all(np.array_equal(a, b) for a, b in zip(_weights(out), _weights(whole)))  # chunks = one run


def _weights(folder: Path) -> list[np.ndarray]:
    from safetensors.numpy import load_file

    w = load_file(str(folder / "model.safetensors"))
    return [w[k] for k in sorted(w)]


def test_clip_recipes_are_checked(tmp_path):
    from vidsr.train.recipe import load_recipe

    bad = tmp_path / "bad.toml"
    bad.write_text(CLIP_RECIPE.format(degradation="").replace('preset = "rvsr"', 'preset = "edsr-baseline"')
                   .replace("config = {blocks = 1, features = 8}", ""))
    with pytest.raises(ValueError, match="recurrent"):
        load_recipe(bad)
    bad.write_text(CLIP_RECIPE.format(degradation="").replace('val_clips = ["video/held"]', 'val_clips = ["video"]'))
    with pytest.raises(ValueError, match="held out"):
        load_recipe(bad)
    bad.write_text(CLIP_RECIPE.format(degradation="").replace("frames = 3", "frames = 9"))
    with pytest.raises(ValueError, match="at most window"):
        load_recipe(bad)


def test_memory_stays_flat_over_a_clip_four_times_longer(vidsr, tmp_path):
    # The state is one frame's (hidden features and the last frame): a longer clip must not grow the peak. Allocator
    # noise between runs of the pipeline is up to about 40 MB (tests/test_bench.py); a state kept per frame (8
    # features of 320x180 in float32, 1.8 MB) would add 165 MB over the 90 extra frames, so 100 MB separates them.
    rss = {}
    for n in (30, 120):
        src = make_clip(tmp_path / f"in{n}.mkv", 320, 180, frames=n, audio=False)
        r = json.loads(vidsr("upscale", src, "-o", tmp_path / f"out{n}.mkv", "-m", MODEL, "--preset", "ultrafast",
                             "--json", "-q", check=0).stdout)
        assert r["frames"] == n and r["recurrent"]["restarts"][0] == {"frame": 0, "reason": "start"}
        rss[n] = r["peak_rss_mb"]
    assert rss[120] - rss[30] < 100, rss


@pytest.fixture()
def measured_video(tmp_path, engines, monkeypatch):
    """The tiny engines, the recurrent one carrying a measured gain over the single-frame engine auto picks."""
    import shutil

    root = tmp_path / "engines"
    shutil.copytree(engines, root)
    single = find_engine("auto", 2, root).id

    def record(gains: list[float]) -> None:
        path = root / MODEL / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest["video_vs_single"] = {"2": [{"against": single, "spec": spec, "gain_db": g, "clips": 5}
                                             for spec, g in zip(("kernel=area,noise=3,h264:crf=30", "clean"), gains)]}
        path.write_text(json.dumps(manifest))

    monkeypatch.setenv("VIDSR_ENGINES", str(root))
    return root, single, record


def test_auto_runs_the_multi_frame_engine_on_video_where_it_measured_better(vidsr, env, tmp_path, measured_video):
    root, single, record = measured_video
    env["VIDSR_ENGINES"] = str(root)
    clip = make_clip(tmp_path / "in.mkv", 64, 48, 4, codec="ffv1", audio=False)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), scene(0, 32, 24))

    def auto(src: Path, out: str) -> dict:
        return json.loads(vidsr("upscale", src, "-o", tmp_path / out, "--json", "-y", check=0).stdout)

    record([0.5, 0.2])
    r = auto(clip, "v.mkv")
    assert r["model"] == MODEL and r["model_choice"]["multi_frame"] is True
    assert "+0.50 dB under kernel=area,noise=3,h264:crf=30" in r["model_choice"]["reason"] and single in \
        r["model_choice"]["reason"]
    assert auto(image, "b.png")["model"] == single  # images keep single-frame engines
    rows = [json.loads(line) for line in vidsr("models", "--json", check=0).stdout.splitlines()]
    row = next(x for x in rows if x["engine"] == MODEL)
    assert row["auto_video"] and not row["auto"] and row["vs_single_db"] == 0.2 and row["multi_frame"]
    assert next(x for x in rows if x["engine"] == single and x["scale"] == 2)["auto"]
    record([0.5, -0.1])  # worse under one of the degradations measured: not chosen
    r = auto(clip, "w.mkv")
    assert r["model"] == single and "no multi-frame engine measured better" in r["model_choice"]["reason"]


def test_a_new_layer_can_learn_faster_and_the_moments_keep_their_order():
    from vidsr.train.loop import parameter_groups

    model = RVSR(2, blocks=1, features=8)
    groups = parameter_groups(model, {"fuse": 10.0})
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0, 1.0]
    assert [p for g in groups for p in g["params"]] == list(model.parameters())  # the optimizer's numbering
    assert len(parameter_groups(model, {})) == 1
