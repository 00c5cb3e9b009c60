"""`vidsr upscale` end to end: real PyAV clips with real audio and subtitles, real models, the real CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest
import torch
from conftest import needs_ffprobe
from media import decode_planes, make_clip, probe

from vidsr.frames.pipeline import UpscaleJob, upscale_video
from vidsr.frames.stages import FrameUpscaler
from vidsr.frames.upscaler import Upscaler, bicubic_up
from vidsr.models.engine import find_engine, save_engine
from vidsr.models.registry import ARCHITECTURES
from vidsr.runtime.select import RuntimeSpec
from vidsr.runtime.torch_rt import TorchRuntime
from vidsr.video.colour import ColourTags, frame_from_planes, planes_of, resize_plane, rgb_to_yuv, yuv_to_rgb

VFR = [0, 40, 80, 100, 140, 200, 260, 300, 340, 400, 433, 480]


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_mkv_keeps_frames_times_audio_subtitles_and_colour(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", pts=VFR, subtitles=True)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--scale", "2", "--model", "edsr", check=0)
    assert p.stdout == b""  # stdout carries data only
    a, b = probe(src), probe(tmp_path / "out.mkv")
    assert (b["width"], b["height"]) == (2 * a["width"], 2 * a["height"])
    assert b["frames"] == a["frames"] == len(VFR)
    assert b["times"] == a["times"] == [t / 1000 for t in VFR]  # variable frame rate kept
    assert b["audio"] == a["audio"] and len(a["audio"]) > 10  # copied packet for packet
    assert b["subtitle"] == a["subtitle"] and len(a["subtitle"]) == 2
    assert b["colour"] == a["colour"] == (1, 1, 1, 1)  # BT.709, tv range
    assert leftovers(tmp_path, {"in.mkv", "out.mkv"}) == []


@needs_ffprobe
def test_ffprobe_agrees(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", pts=VFR, subtitles=True)
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--model", "vdsr", check=0)

    def ffprobe(path, *args):
        return subprocess.run(["ffprobe", "-v", "error", *args, str(path)], capture_output=True, text=True,
                              check=True).stdout

    times = "-select_streams v -show_entries frame=pts_time -of csv=p=0".split()
    assert ffprobe(src, *times) == ffprobe(tmp_path / "out.mkv", *times)
    tags = "-select_streams v -show_entries stream=width,height,color_space,color_range,color_primaries," \
           "color_transfer -of json".split()
    a, b = json.loads(ffprobe(src, *tags))["streams"][0], json.loads(ffprobe(tmp_path / "out.mkv", *tags))["streams"][0]
    assert (b["width"], b["height"]) == (2 * a["width"], 2 * a["height"])
    assert {k: v for k, v in a.items() if k.startswith("color")} == {k: v for k, v in b.items() if
                                                                      k.startswith("color")}
    audio = "-select_streams a -show_packets -show_data -of compact".split()
    strip = [line.split("|data=")[1] for line in ffprobe(src, *audio).splitlines()]
    assert strip == [line.split("|data=")[1] for line in ffprobe(tmp_path / "out.mkv", *audio).splitlines()]


def test_mp4_in_and_out(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mp4", frames=10)
    vidsr("upscale", src, "-o", tmp_path / "out.mp4", "--model", "vdsr", "--scale", "3", check=0)
    a, b = probe(src), probe(tmp_path / "out.mp4")
    assert (b["width"], b["height"]) == (3 * a["width"], 3 * a["height"])
    assert b["times"] == a["times"] and b["audio"] == a["audio"]


def test_pipe_stdin_to_stdout(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", pts=VFR)
    p = vidsr("upscale", "-", "-o", "-", "--format", "matroska", "--json", input=src.read_bytes(), check=0)
    (tmp_path / "out.mkv").write_bytes(p.stdout)
    a, b = probe(src), probe(tmp_path / "out.mkv")
    assert b["frames"] == a["frames"] and b["times"] == a["times"] and b["audio"] == a["audio"]
    assert json.loads(p.stderr.decode().strip().splitlines()[-1])["frames"] == len(VFR)  # JSON goes to stderr


def identity_vdsr(folder):
    """A VDSR whose residual branch outputs zero: the model is then exactly MATLAB bicubic on Y."""
    m = ARCHITECTURES["vdsr"].build({"depth": 3, "features": 4}, (2, 3, 4))
    torch.nn.init.zeros_(m.body[-1].weight)
    torch.nn.init.zeros_(m.body[-1].bias)
    return save_engine(folder / "vdsr-identity", "vdsr-identity", "vdsr", "vdsr", "vdsr", {"depth": 3, "features": 4},
                       (2, 3, 4), m)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le"])
def test_y_models_work_on_the_decoded_y_plane(vidsr, tmp_path, engines, pix_fmt):
    identity_vdsr(engines)
    src = make_clip(tmp_path / "in.mkv", w=40, h=32, frames=3, codec="ffv1", pix_fmt=pix_fmt, audio=False)
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--model", "vdsr-identity", "--codec", "ffv1", check=0)
    assert probe(tmp_path / "out.mkv")["pix_fmt"] == pix_fmt  # 10-bit stays 10-bit
    scale = 255.0 * (4 if pix_fmt.endswith("10le") else 1)
    for (y, u, v), (y2, u2, v2) in zip(decode_planes(src), decode_planes(tmp_path / "out.mkv")):
        x = torch.from_numpy(y.astype(np.float32))[None, None] / scale
        expected = (bicubic_up(x, 2).clamp(0, 1) * scale).round()[0, 0].numpy()
        # No RGB round trip: the output Y is the bicubic of the decoded Y, to the code value.
        assert np.abs(y2.astype(np.float64) - expected).max() <= 1
        # Chroma is upscaled bicubic from the decoded planes, nothing else touches it.
        for c, c2 in ((u, u2), (v, v2)):
            assert np.array_equal(c2, resize_plane(c, c.shape[1] * 2, c.shape[0] * 2))


class Recorder(torch.nn.Module):
    """A real (parameter-free) network, nearest-neighbour x2, that remembers what it was fed."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append(x.clone())
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")


@pytest.mark.parametrize("matrix", [1, 6, 9])
@pytest.mark.parametrize("bits", [8, 10])
def test_rgb_models_convert_with_the_streams_matrix(matrix, bits):
    fmt = "yuv444p" if bits == 8 else "yuv444p10le"
    dtype = np.uint8 if bits == 8 else np.uint16
    colour = rgb_to_yuv(torch.tensor([0.7, 0.35, 0.2]).view(1, 3, 1, 1), matrix, 1, bits)  # inside the gamut
    planes = [np.full((8, 8), round(c.item()), dtype) for c in colour]
    frame = frame_from_planes(planes, fmt)
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    net = Recorder()
    up = Upscaler(ARCHITECTURES["edsr"], 2, TorchRuntime(net, "cpu", "fp32"))
    out = FrameUpscaler(up, fmt, fmt, ColourTags(matrix=matrix, range=1), 8, 8)([frame])[0]
    t = [torch.from_numpy(p.astype(np.float32))[None] for p in planes]
    assert torch.allclose(net.seen[0], yuv_to_rgb(*t, matrix, 1, bits), atol=1e-6)
    # Converted back with the same matrix: a colour the net leaves alone comes out as it went in.
    for a, b in zip(planes, planes_of(out, fmt)):
        assert np.abs(b.astype(int) - int(a[0, 0])).max() <= 1


def test_ten_bit_rgb_path_with_x264(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=4, pix_fmt="yuv420p10le", colour=(9, 1, 9, 16))
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--model", "edsr", check=0)
    b = probe(tmp_path / "out.mkv")
    assert b["pix_fmt"] == "yuv420p10le" and b["colour"] == (9, 1, 9, 16) and b["frames"] == 4


def test_image_in_image_out(vidsr, tmp_path):
    import cv2
    from media import scene

    cv2.imwrite(str(tmp_path / "in.png"), scene(0, 30, 20))
    for model in ("edsr", "vdsr"):
        vidsr("upscale", tmp_path / "in.png", "-o", tmp_path / f"{model}.png", "--model", model, check=0)
        assert cv2.imread(str(tmp_path / f"{model}.png")).shape == (40, 60, 3)


def test_start_and_duration_cut_and_keep_sync(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=25)
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--start", "0.4", "--duration", "0.4", check=0)
    b = probe(tmp_path / "out.mkv")
    assert b["frames"] == 10 and b["times"][0] == 0.0
    assert 0 < len(b["audio"]) < len(probe(src)["audio"])


def test_json_summary_and_refusals(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--json", check=0)
    summary = json.loads(p.stdout)
    assert summary["frames"] == 3 and summary["model"] == "edsr-tiny-x2"
    assert summary["runtime"] == RuntimeSpec("auto", "cpu").resolve().runtime
    assert {"seconds", "fps", "output"} <= set(summary)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", check=2)
    assert b"exists" in p.stderr and b"-y" in p.stderr
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "-y", check=0)
    p = vidsr("upscale", src, "-o", src, "-y", check=2)
    assert b"overwrite the input" in p.stderr


def test_failure_mid_stream_leaves_no_output(tmp_path, engines):
    class Breaks(torch.nn.Module):
        calls = 0

        def forward(self, x):
            Breaks.calls += 1
            if Breaks.calls > 3:
                raise RuntimeError("boom in frame 4")
            return torch.nn.functional.interpolate(x, scale_factor=2)

    src = make_clip(tmp_path / "in.mkv", frames=12)
    up = Upscaler(ARCHITECTURES["edsr"], 2, TorchRuntime(Breaks(), "cpu", "fp32"))
    with pytest.raises(RuntimeError, match="boom"):
        upscale_video(UpscaleJob(str(src), str(tmp_path / "out.mkv"), up))
    assert leftovers(tmp_path, {"in.mkv"}) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_stop_cleanly(env, tmp_path, sig):
    src = make_clip(tmp_path / "in.mkv", w=160, h=120, frames=400, audio=False)
    p = subprocess.Popen([sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(tmp_path / "out.mkv"),
                          "--model", "vdsr"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         # A shell's background job (nohup ... &) starts with SIGINT ignored, and Python then keeps
                         # it ignored: give the child the default disposition a terminal user has.
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not any(".partial" in n for n in os.listdir(tmp_path)) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert b"Traceback" not in err
    assert leftovers(tmp_path, {"in.mkv"}) == []


def test_help_has_examples(vidsr):
    for cmd in ([], ["upscale"], ["eval"], ["train"], ["models"]):
        p = vidsr(*cmd, "--help", check=0)
        assert b"Example" in p.stdout, cmd


def test_engine_lookup_is_what_the_cli_uses(engines):
    assert find_engine("mdsr", 3, engines).load(3).scale == 3


@pytest.mark.parametrize("arch", ["vdsr", "edsr"])
def test_tiles_agree_with_whole_frames(engines, arch):
    engine = find_engine(arch, 2, engines)
    rt = TorchRuntime(engine.load(2), "cpu", "fp32")
    x = torch.rand(1, engine.arch.channels, 45, 70)
    whole = Upscaler(engine.arch, 2, rt)(x)
    # The tiny nets see only a few pixels around each output, less than the overlap: tiles are exact.
    tiled = Upscaler(engine.arch, 2, rt, tile=32, overlap=8)(x)
    assert torch.allclose(whole, tiled, atol=1e-5)
    auto = Upscaler(engine.arch, 2, rt, features=8, memory_budget=3 * 4 * 8 * 40 * 40)
    assert 0 < auto.auto_tile(1, 140, 90) and torch.allclose(auto(x), whole, atol=1e-5)


def test_no_audio_drops_only_audio(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=4, subtitles=True)
    vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--no-audio", check=0)
    assert probe(tmp_path / "out.mkv")["streams"] == ["video", "subtitle"]


def test_self_ensemble_is_the_mean_of_the_eight_transforms(engines):
    engine = find_engine("edsr", 2, engines)
    rt = TorchRuntime(engine.load(2), "cpu", "fp32")
    x = torch.rand(1, 3, 12, 17)
    plain = Upscaler(engine.arch, 2, rt)
    ens = Upscaler(engine.arch, 2, rt, ensemble=True)(x)
    assert ens.shape == (1, 3, 24, 34) and not torch.allclose(ens, plain(x), atol=1e-4)
    outs = []
    for k in range(8):  # each of the 8 dihedral transforms, undone on the output
        t = torch.rot90(x.flip(-1) if k & 4 else x, k & 3, dims=(-2, -1))
        y = torch.rot90(plain(t), -(k & 3), dims=(-2, -1))
        outs.append(y.flip(-1) if k & 4 else y)
    assert torch.allclose(ens, torch.stack(outs).mean(0), atol=1e-6)
    assert len({round(o.sum().item(), 3) for o in outs}) > 1  # the transforms really differ


def test_ensemble_flag_reaches_the_pipeline(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--ensemble", "--json", check=0)
    assert json.loads(p.stdout)["ensemble"] is True and probe(tmp_path / "out.mkv")["frames"] == 2


def test_a_rerun_sweeps_the_partial_that_kill_9_left(env, tmp_path):
    src = make_clip(tmp_path / "long.mkv", 320, 240, frames=200, audio=False)
    cmd = [sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "vdsr", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, partials = time.time() + 60, []
    while time.time() < deadline and not partials:
        partials = list(tmp_path.glob(".out.*.partial.mkv"))
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert partials and partials[0].exists(), "kill -9 leaves its partial"
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not partials[0].exists() and list(tmp_path.glob(".out.*")) == []
    assert (tmp_path / "out.mkv").is_file()


def test_sigterm_during_a_4k_frames_inference_exits_143_within_seconds(env, tmp_path):
    # A 4K frame in 64-pixel tiles takes tens of seconds; the signal must not wait for it (it used to wait 30 s
    # for the inference thread, then abort with SIGABRT, exit 134).
    src = make_clip(tmp_path / "uhd.mkv", 3840, 2160, frames=2, audio=False)
    cmd = [sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "vdsr",
           "--tile", "64", "-q"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.*.partial.mkv")):
        time.sleep(0.05)
    time.sleep(1.0)  # inside the first frame's tiles
    assert proc.poll() is None, "the run ended before the signal"
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=30)[1]
    assert proc.returncode == 143, err
    assert time.time() - sent < 5
    assert list(tmp_path.glob(".out.*")) == [] and not (tmp_path / "out.mkv").exists()


@pytest.mark.parametrize("arch,fmt", [("edsr", "yuv420p"), ("vdsr", "yuv420p"), ("edsr", "yuv444p"),
                                      ("mdsr", "yuv420p10le")])
def test_large_frames_tile_by_tile_match_whole_frames(engines, monkeypatch, arch, fmt):
    import vidsr.frames.stages as stages

    engine = find_engine(arch, 2, engines)
    up = Upscaler(engine.arch, 2, TorchRuntime(engine.load(2), "cpu", "fp32"))
    rng = np.random.default_rng(0)
    h, w = 70, 102
    bits = 10 if "10" in fmt else 8
    cw, ch = (w // 2, h // 2) if "420" in fmt else (w, h)
    planes = [rng.integers(16 << (bits - 8), 235 << (bits - 8), size=s).astype(np.uint16 if bits > 8 else np.uint8)
              for s in ((h, w), (ch, cw), (ch, cw))]
    frame = frame_from_planes(planes, fmt)
    frame.pts, frame.time_base = 0, Fraction(1, 25)
    whole = planes_of(FrameUpscaler(up, fmt, fmt, ColourTags(1, 1, 1, 1), w, h)([frame])[0], fmt)
    monkeypatch.setattr(stages, "LARGE_OUTPUT", 0)
    monkeypatch.setattr(stages, "LARGE_TILE", 32)
    tiled = planes_of(FrameUpscaler(up, fmt, fmt, ColourTags(1, 1, 1, 1), w, h)([frame])[0], fmt)
    for a, b in zip(whole, tiled):
        assert a.shape == b.shape
        # The tiny engines see less than the 16-pixel overlap, so tiles agree with the whole frame to one code.
        assert np.abs(a.astype(np.int32) - b.astype(np.int32)).max() <= 1


def test_4k_to_8k_stays_under_3_gb(vidsr, tmp_path):
    src = make_clip(tmp_path / "uhd.mkv", 3840, 2160, frames=2, audio=False)
    p = vidsr("upscale", src, "-o", tmp_path / "8k.mkv", "-m", "mdsr", "--preset", "ultrafast", "--json",
              check=0, timeout=600)
    r = json.loads(p.stdout)
    assert r["frames"] == 2 and probe(tmp_path / "8k.mkv")["width"] == 7680
    # Measured 970 MB; whole-frame float copies peaked at 3.1 GB with the same tiny engine.
    assert r["peak_rss_mb"] < 3000, r["peak_rss_mb"]


def test_a_large_image_goes_through_in_pieces_that_join_seamlessly(vidsr, tmp_path, engines, monkeypatch):
    import cv2

    import vidsr.frames.image as image
    from vidsr.commands.common import build_upscaler
    from vidsr.runtime.select import RuntimeSpec

    monkeypatch.setenv("VIDSR_ENGINES", str(engines))
    src = tmp_path / "big.png"
    rng = np.random.default_rng(0)
    cv2.imwrite(str(src), cv2.GaussianBlur(rng.integers(0, 256, (300, 420, 3)).astype(np.uint8), (0, 0), 1.5))
    for model in ("edsr", "vdsr"):
        up, _ = build_upscaler(model, 2, spec=RuntimeSpec("torch", "cpu", "fp32"))
        outs = []
        for tile in (128, 100_000):  # pieces, and the whole image at once
            monkeypatch.setattr(image, "TILE", tile)
            image.upscale_image(str(src), str(tmp_path / f"{model}{tile}.png"), up)
            outs.append(cv2.imread(str(tmp_path / f"{model}{tile}.png")).astype(int))
        assert np.abs(outs[0] - outs[1]).max() <= 1, model  # the seams do not show
    # and memory stays near the integer output's size: a 2500x2500 PNG at x2 held gigabytes whole
    big = tmp_path / "huge.png"
    cv2.imwrite(str(big), np.full((2500, 2500, 3), 128, np.uint8))
    r = json.loads(vidsr("upscale", big, "-o", tmp_path / "huge-x2.png", "-m", "edsr", "--json", check=0).stdout)
    assert r["width"] == 5000 and r["peak_rss_mb"] < 1200, r["peak_rss_mb"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_is_one_line(env, tmp_path, sig):
    # Start-up spends about 2.5 s importing torch, PyAV and OpenVINO before main() runs; a Ctrl-C there printed a
    # traceback from inside an import. Whether the signal lands there or just after, it is one line and 128+sig.
    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    p = subprocess.Popen([sys.executable, "-m", "vidsr", "upscale", str(src), "-o", str(tmp_path / "out.mkv")],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.6)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig and b"Traceback" not in err and len(err.splitlines()) == 1, err
    assert leftovers(tmp_path, {"in.mkv"}) == []


def test_a_signal_after_the_output_is_complete_says_it_is_kept(tmp_path, engines, monkeypatch, capsys):
    import vidsr.cli as cli
    import vidsr.frames.pipeline as pipeline

    monkeypatch.setenv("VIDSR_ENGINES", str(engines))
    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    real = pipeline.upscale_video

    def then_ctrl_c(job):  # the run completes and renames its output; the signal comes just after
        real(job)
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "upscale_video", then_ctrl_c)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            cli.main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "-m", "edsr"])
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
    assert done.value.code == 130
    err = capsys.readouterr().err
    assert "out.mkv was complete; it is kept" in err and "no output was written" not in err
    assert probe(tmp_path / "out.mkv")["frames"] == 2
