"""Every bad input: one clear line on stderr, exit 1 or 2, no traceback, no output file."""

import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest
from media import make_clip, probe, scene


def audio_only(path):
    c = av.open(str(path), "w")
    a = c.add_stream("aac", rate=48000)
    a.layout = "stereo"
    for i in range(10):
        f = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        f.sample_rate, f.pts = 48000, i * 1024
        for p in a.encode(f):
            c.mux(p)
    for p in a.encode(None):
        c.mux(p)
    c.close()


def truncated(path):
    make_clip(path.with_name("full.mkv"), frames=75, w=96, h=64)
    data = path.with_name("full.mkv").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    path.with_name("full.mkv").unlink()


def truncated_mp4(path):
    # An MP4 written without faststart keeps its index (moov) at the end: a recording cut off has none.
    make_clip(path.with_name("full.mp4"), frames=75, w=96, h=64)
    data = path.with_name("full.mp4").read_bytes()
    assert data.find(b"moov") > len(data) // 2, "the index should come after the media data"
    path.write_bytes(data[: len(data) // 2])
    path.with_name("full.mp4").unlink()


CASES = {
    "missing": (lambda p: None, "in.mkv", "no such file"),
    "zero-byte": (lambda p: p.write_bytes(b""), "in.mp4", "not a media file"),
    "garbage": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(20000)), "in.mkv", "not a media file"),
    "truncated": (truncated, "in.mkv", "truncated"),
    "truncated-mp4-index-at-end": (truncated_mp4, "in.mp4", "looks truncated"),
    "audio-only": (audio_only, "in.m4a", "no video stream"),
    "text-as-mp4": (lambda p: p.write_text("this is not a video\n" * 20), "in.mp4", "not a media file"),
    "odd-size-x3-into-4:2:0": (lambda p: make_clip(p, w=33, h=25, frames=3, codec="ffv1"), "in.mkv", "odd"),
}


def check_clean_failure(p, tmp_path, inputs, expect):
    err = p.stderr.decode()
    assert p.returncode in (1, 2), err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("vidsr: error: ") and expect in err
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(inputs)  # no output, no temporary file
    assert p.stdout == b""


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(vidsr, tmp_path, case):
    make, name, expect = CASES[case]
    src = tmp_path / name
    make(src)
    scale = "3" if "x3" in case else "2"
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--scale", scale, "--model", "vdsr")
    check_clean_failure(p, tmp_path, [name] if src.exists() else [], expect)


@pytest.mark.parametrize("args,expect", [
    (["--model", "nosuchnet"], "unknown model"),
    (["--scale", "5"], "--scale"),
    (["--model", "srcnn", "--scale", "4"], "no x4 engine"),
    (["--codec", "nosuchcodec"], "unknown encoder"),
    (["--start", "abc"], "bad time"),
    (["--crf", "60"], "outside libx264's range 0-51"),
    (["--crf", "55", "--codec", "libx265"], "outside libx265's range 0-51"),
    (["--preset", "superfast2"], "is not one of libx264's: ultrafast, superfast"),
    (["--pix-fmt", "nonsense"], "unknown pixel format 'nonsense'; common ones: yuv420p"),
    (["--format", "mkvv"], "did you mean mkv"),
    (["--codec", "h265"], "--codec libx265"),
    (["--start", "100"], "--start 100 s is past the end"),
    (["--start", "0.01", "--duration", "0.01"], "no frame of"),  # between two frames: not "corrupt"
])
def test_bad_options_are_usage_errors(vidsr, tmp_path, args, expect):
    make_clip(tmp_path / "in.mkv", frames=2)
    p = vidsr("upscale", tmp_path / "in.mkv", "-o", tmp_path / "out.mkv", *args)
    assert p.returncode == 2
    check_clean_failure(p, tmp_path, ["in.mkv"], expect)


def test_debug_shows_the_traceback(vidsr, tmp_path):
    (tmp_path / "in.mp4").write_text("not a video")
    p = vidsr("--debug", "upscale", tmp_path / "in.mp4", "-o", tmp_path / "out.mkv")
    assert p.returncode == 1 and b"Traceback" in p.stderr


def test_odd_sizes_work_where_the_output_is_even(vidsr, tmp_path):
    # 33x25 at x2 is 66x50, which 4:2:0 holds: odd input is fine, only an odd 4:2:0 *output* is refused.
    make_clip(tmp_path / "in.mkv", w=33, h=25, frames=3, codec="ffv1")
    vidsr("upscale", tmp_path / "in.mkv", "-o", tmp_path / "out.mkv", check=0)
    b = probe(tmp_path / "out.mkv")
    assert (b["width"], b["height"], b["frames"]) == (66, 50, 3)


def clip_with_hole(path, missing=range(10, 18), frames=30):
    """An all-intra clip whose container lacks the packets of ``missing`` frames, as a damaged recording does."""
    c = av.open(str(path), "w")
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    v.options = {"g": "1", "bf": "0"}
    for i in range(frames):
        frame = av.VideoFrame.from_ndarray(scene(i, 64, 48), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in v.encode(frame):
            if packet.pts not in missing:
                c.mux(packet)
    for packet in v.encode(None):
        if packet.pts not in missing:
            c.mux(packet)
    c.close()
    return path


def test_a_hole_in_the_container_is_reported_and_strict_refuses_it(vidsr, tmp_path):
    src = clip_with_hole(tmp_path / "hole.mkv")
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "-m", "vdsr", "--json", check=0)
    summary = json.loads(p.stdout)
    assert summary["frames"] == 22 and summary["frames_lost"] == 8
    assert summary["holes"] == [{"after": 0.36, "before": 0.72, "frames": 8}]
    p = vidsr("upscale", src, "-o", tmp_path / "quiet.mkv", "-m", "vdsr", check=0)
    assert b"8 frame(s) missing between 0.36 s and 0.72 s" in p.stderr
    strict = vidsr("upscale", src, "-o", tmp_path / "strict.mkv", "-m", "vdsr", "--strict", check=1)
    assert b"--strict" in strict.stderr and len(strict.stderr.splitlines()) == 1
    assert not (tmp_path / "strict.mkv").exists() and list(tmp_path.glob(".strict.*")) == []
    vfr = make_clip(tmp_path / "vfr.mkv", pts=[0, 40, 80, 100, 140, 200, 260, 300, 340, 400, 433, 480])
    assert json.loads(vidsr("upscale", vfr, "-o", tmp_path / "v.mkv", "-m", "vdsr", "--json",
                            check=0).stdout)["frames_lost"] == 0
    # 30 fps for a second, then 15 fps: a change of rate, not 29 holes (as the reader once counted it)
    slower = make_clip(tmp_path / "30then15.mkv", audio=False, time_base=Fraction(1, 30),
                       pts=list(range(30)) + list(range(30, 90, 2)))
    r = json.loads(vidsr("upscale", slower, "-o", tmp_path / "s.mkv", "-m", "vdsr", "--json", "--strict",
                         check=0).stdout)
    assert r["frames"] == 60 and r["frames_lost"] == 0 and r["holes"] == []
    # and a hole at the new rate is still one
    holed = make_clip(tmp_path / "30then15hole.mkv", audio=False, time_base=Fraction(1, 30),
                      pts=list(range(30)) + list(range(30, 60, 2)) + list(range(70, 90, 2)))
    assert json.loads(vidsr("upscale", holed, "-o", tmp_path / "h.mkv", "-m", "vdsr", "--json",
                            check=0).stdout)["holes"] == [{"after": 1.933, "before": 2.333, "frames": 5}]


def test_output_names_that_cannot_work_are_refused_first_time(vidsr, tmp_path):
    make_clip(tmp_path / "in.mkv", frames=2)
    (tmp_path / "folder").mkdir()
    p = vidsr("upscale", tmp_path / "in.mkv", "-o", tmp_path / "folder", check=2)
    assert b"is a directory; -o takes a file name" in p.stderr  # not 'exists; add -y' first
    p = vidsr("upscale", tmp_path / "in.mkv", "-o", tmp_path / "x.png", check=2)
    assert b"an image name for a video input" in p.stderr and b"partial" not in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["folder", "in.mkv"]


def test_a_read_only_folder_is_a_usage_error_naming_the_folder(vidsr, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    make_clip(tmp_path / "in.mkv", frames=2)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        p = vidsr("upscale", tmp_path / "in.mkv", "-o", locked / "out.mkv", check=2)
    finally:
        locked.chmod(0o755)
    assert f"{locked}: the output folder is not writable".encode() in p.stderr and b"partial" not in p.stderr


def test_tiny_tiles_warn_and_help_says_the_unit(vidsr, tmp_path):
    make_clip(tmp_path / "in.mkv", frames=2)
    p = vidsr("upscale", tmp_path / "in.mkv", "-o", tmp_path / "out.mkv", "-m", "vdsr", "--tile", "16", check=0)
    assert b"warning: --tile 16 is tiny" in p.stderr
    assert b"network's input" in vidsr("upscale", "--help", check=0).stdout


def test_debug_works_after_the_subcommand_and_help_is_not_an_error(vidsr, tmp_path):
    (tmp_path / "in.mp4").write_text("not a video")
    p = vidsr("upscale", tmp_path / "in.mp4", "-o", tmp_path / "out.mkv", "--debug")
    assert p.returncode == 1 and b"Traceback" in p.stderr
    for args in ([], ["engine"]):
        p = vidsr(*args, check=0)
        assert b"Usage:" in p.stdout and p.stderr == b""


def test_ffmpeg_messages_show_with_debug_only(vidsr, tmp_path):
    (tmp_path / "in.mp4").write_bytes(b"")
    quiet = vidsr("upscale", tmp_path / "in.mp4", "-o", tmp_path / "out.mkv", check=1)
    assert b"moov atom not found" not in quiet.stderr and len(quiet.stderr.splitlines()) == 1
    loud = vidsr("--debug", "upscale", tmp_path / "in.mp4", "-o", tmp_path / "out.mkv", check=1)
    assert b"moov atom not found" in loud.stderr  # FFmpeg's own line, from its own (C) log callback


def test_a_failed_run_exits_however_the_decoder_threads_log(vidsr, tmp_path):
    # A decoder thread logging while the main thread freed its codec waited for the GIL the main thread held: the
    # run printed its error and hung for good (3 of 8 runs, SIGTERM ignored) while FFmpeg's log went through a
    # Python callback. Each run here must end with its one-line error well within the timeout.
    import subprocess

    # An odd x3 size cannot go into 4:2:0: the writer refuses it once the decoder's threads are running.
    clip = make_clip(tmp_path / "odd.mkv", 321, 181, frames=50, pix_fmt="yuv444p", subtitles=True)
    for i in range(6):
        try:
            p = vidsr("upscale", clip, "-o", tmp_path / f"x{i}.mp4", "--duration", "1", "--scale", "3", "-m", "edsr",
                      "--pix-fmt", "yuv420p", timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"run {i} hung after its error")
        assert p.returncode == 2 and b"odd" in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    from vidsr.logs import route_ffmpeg_log

    for debug in (False, True):
        route_ffmpeg_log(debug)
        assert av.logging.get_level() is None  # no Python callback for FFmpeg's threads to wait on


def transport_stream(path, offset: str | None) -> None:
    """1 s of 10 fps H.264 with AAC in MPEG-TS, its clock started at ``offset`` seconds (FFmpeg's
    -output_ts_offset): 95441.9 runs the 33-bit clock past its wrap after 2 s."""
    from fractions import Fraction

    with av.open(str(path), "w", format="mpegts", options={"output_ts_offset": offset} if offset else {}) as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        for i in range(10):
            f = av.VideoFrame.from_ndarray(scene(i, 64, 48), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 10)
            c.mux(v.encode(f))
        c.mux(v.encode(None))
        for t in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, t
            c.mux(a.encode(af))
        c.mux(a.encode(None))


@pytest.mark.parametrize("offset", [None, "30000", "95441.9"])
def test_a_transport_stream_keeps_its_frames_and_its_length_whatever_its_clock(vidsr, tmp_path, offset):
    # The usual 1.4 s TS offset made a 1 s clip 1.2 s long in MP4, 30000 made it 30,001 s, and past the clock's
    # wrap (FFmpeg gives negative times) every frame fell before 0 and was dropped.
    src = tmp_path / "in.ts"
    transport_stream(src, offset)
    r = json.loads(vidsr("upscale", src, "-o", tmp_path / "out.mp4", "-m", "edsr", "--json", check=0).stdout)
    assert r["frames"] == 10 and r["frames_lost"] == 0
    p = probe(tmp_path / "out.mp4")
    assert p["frames"] == 10 and p["times"][0] < 0.05 and p["times"][-1] < 1.0 and p["audio"]
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.duration / av.time_base < 1.1
    cut = json.loads(vidsr("upscale", src, "-o", tmp_path / "cut.mkv", "-m", "edsr", "--start", "0.3",
                           "--duration", "0.5", "--json", check=0).stdout)
    assert cut["frames"] == 5 and probe(tmp_path / "cut.mkv")["times"][0] < 0.05


def test_outputs_and_inputs_that_look_like_partials_and_special_files_are_safe(vidsr, env, tmp_path):
    import subprocess
    import sys
    import threading

    src = make_clip(tmp_path / "in.mkv", frames=3, audio=False)
    # glob characters in the output's name: the dead writer's partial is still found and swept
    stale = tmp_path / ".cam[1].abcd1234.partial.mkv"
    stale.write_bytes(b"left by a kill -9")
    vidsr("upscale", src, "-o", tmp_path / "cam[1].mkv", "-m", "edsr", check=0)
    assert not stale.exists() and (tmp_path / "cam[1].mkv").is_file()
    # an input named like a partial of the output is the input, not litter
    for name in (".out.mine.partial.mkv", ".out.abcd1234.partial.mkv"):
        own = tmp_path / name
        own.write_bytes(src.read_bytes())
        vidsr("upscale", own, "-o", tmp_path / "out.mkv", "-m", "edsr", "-y", check=0)
        assert own.read_bytes() == src.read_bytes()
    # -y does not replace a FIFO (or a device) with a file
    fifo = tmp_path / "pipe.mkv"
    os.mkfifo(fifo)
    p = vidsr("upscale", src, "-o", fifo, "-m", "edsr", "-y", check=2)
    assert b"FIFO" in p.stderr and len(p.stderr.splitlines()) == 1 and fifo.is_fifo()
    # a named pipe as input is read once, as a stream: the probes before the run drained it, and the run hung
    feed = tmp_path / "feed"
    os.mkfifo(feed)
    writer = threading.Thread(target=lambda: feed.write_bytes(src.read_bytes()), daemon=True)
    writer.start()
    r = json.loads(vidsr("upscale", feed, "-o", tmp_path / "fed.mkv", "-m", "edsr", "--json", timeout=60,
                         check=0).stdout)
    assert r["frames"] == 3
    bash = subprocess.run(["bash", "-c", f"{sys.executable} -m vidsr upscale <(cat {src}) -o {tmp_path}/sub.mkv "
                                         "-m edsr --json"], capture_output=True, env=env, timeout=60)
    assert bash.returncode == 0 and json.loads(bash.stdout)["frames"] == 3, bash.stderr


def test_a_run_without_y_never_replaces_an_output_another_run_wrote_meanwhile(vidsr, env, tmp_path):
    import subprocess
    import sys
    import time

    slow = make_clip(tmp_path / "slow.mkv", 320, 180, frames=75, audio=False)
    quick = make_clip(tmp_path / "quick.mkv", frames=3, audio=False)
    same = tmp_path / "same.mkv"
    first = subprocess.Popen([sys.executable, "-m", "vidsr", "upscale", str(slow), "-o", str(same), "-m", "edsr"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".same.*.partial.mkv")) and time.time() < deadline:
        time.sleep(0.1)
    vidsr("upscale", quick, "-o", same, "-m", "edsr", check=0)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 1 and b"appeared while this run wrote it" in err, err
    assert probe(same)["frames"] == 3  # the quick run's output stands
    assert not list(tmp_path.glob(".same.*"))


def test_configuration_mistakes_are_one_line_that_names_them(vidsr, env, engines, tmp_path):
    import shutil

    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    p = vidsr("upscale", src, "-o", "-", "--format", "mp4", check=2)
    assert b"pipe" in p.stderr and p.stdout == b""
    # engines: a folder that does not exist, a manifest whose scales are a number, weights that do not fit
    env["VIDSR_ENGINES"] = str(tmp_path / "nonexistent")
    p = vidsr("upscale", src, "-o", tmp_path / "a.mkv", check=2)
    assert b"VIDSR_ENGINES=" in p.stderr and b"no such folder" in p.stderr
    broken = tmp_path / "engines"
    shutil.copytree(engines, broken)
    env["VIDSR_ENGINES"] = str(broken)
    manifest = json.loads((broken / "edsr-tiny-x3" / "manifest.json").read_text())
    (broken / "edsr-tiny-x3" / "manifest.json").write_text(json.dumps(manifest | {"scales": 3}))
    p = vidsr("upscale", src, "-o", tmp_path / "b.mkv", "-m", "edsr", check=1)
    assert b'"scales" must be a list' in p.stderr and len(p.stderr.splitlines()) == 1
    (broken / "edsr-tiny-x3" / "manifest.json").write_text(json.dumps(manifest))
    manifest = json.loads((broken / "edsr-tiny-x2" / "manifest.json").read_text())
    (broken / "edsr-tiny-x2" / "manifest.json").write_text(json.dumps(manifest | {"config": manifest["config"] |
                                                                                    {"features": 16}}))
    p = vidsr("upscale", src, "-o", tmp_path / "c.mkv", "-m", "edsr-tiny-x2", "--runtime", "torch", check=1)
    assert b"do not fit the network its manifest describes" in p.stderr and len(p.stderr.splitlines()) == 1
    env.pop("VIDSR_ENGINES")
    # a cache that is a file
    (tmp_path / "cachefile").write_text("x")
    env["VIDSR_CACHE"] = str(tmp_path / "cachefile")
    p = vidsr("upscale", src, "-o", tmp_path / "d.mkv", "-m", "edsr", "--runtime", "onnx", check=2)
    assert b"VIDSR_CACHE=" in p.stderr and len(p.stderr.splitlines()) == 1


def test_tiny_frames_and_recipes_and_batches_say_what_is_wrong(vidsr, tmp_path):
    import warnings

    from vidsr.degradation.detect import video_noise_sigma

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1x1 and 2x2 frames printed numpy's RuntimeWarnings, and "sigma nan"
        assert video_noise_sigma([np.full((2, 2), 9, np.uint8)] * 3) == 0.0
        assert video_noise_sigma([np.full((1, 1), 9, np.uint8)] * 2) == 0.0
    tiny = make_clip(tmp_path / "tiny.mkv", 2, 2, frames=4, audio=False, pix_fmt="yuv444p")
    p = vidsr("upscale", tiny, "-o", tmp_path / "tiny-x2.mkv", "-m", "edsr", "--pix-fmt", "yuv444p",
              "--temporal-filter", "on", "--json", check=0)
    assert json.loads(p.stdout)["frames"] == 4 and b"Warning" not in p.stderr and b"nan" not in p.stderr
    recipe = tmp_path / "r.toml"
    for text, expect in (('id = "x"\n[model]\npreset = "edsr-baseline"\nscales = [2]\n[data]\npatch = 8\n'
                          '[trian]\nbatch = 2\nsteps = 2\n', b"unknown [trian] table; did you mean 'train'"),
                         ('id = "x"\n[model]\npreset = "edsr-baseline"\nscales = [2]\n[data]\n[train]\n'
                          'batch = 2\nsteps = 2\n', b"[data] needs patch"),
                         ('id = "x"\n[model]\npreset = "edsr-baseline"\nscales = [2]\n[data]\npach = 8\n'
                          '[train]\nbatch = 2\nsteps = 2\n', b"did you mean 'patch'")):
        recipe.write_text(text)
        p = vidsr("train", recipe, "--data", tmp_path, check=2)
        assert expect in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    folder = tmp_path / "b"
    folder.mkdir()
    make_clip(folder / "one.mkv", frames=2, audio=False)
    p = vidsr("batch", folder, "-o", folder, check=2)
    assert b"inside the output folder" in p.stderr


def encode_rgb(path, frames, codec="libx264", fmt=None, pix_fmt="yuv420p", rate=10):
    """RGB frames as one video stream of ``codec``."""
    from fractions import Fraction as F

    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream(codec, rate=rate)
        v.width, v.height, v.pix_fmt = frames[0].shape[1], frames[0].shape[0], pix_fmt
        for i, rgb in enumerate(frames):
            f = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            f.pts, f.time_base = i, F(1, rate)
            c.mux(v.encode(f))
        c.mux(v.encode(None))


def test_what_the_output_cannot_be_is_said_not_done_silently(vidsr, tmp_path):
    import cv2

    # a mid-stream change of frame size (two TS of different sizes, concatenated) is scaled and said so
    encode_rgb(tmp_path / "a.ts", [scene(i, 64, 48) for i in range(5)], fmt="mpegts")
    encode_rgb(tmp_path / "b.ts", [scene(i, 96, 64) for i in range(5)], fmt="mpegts")
    (tmp_path / "ab.ts").write_bytes((tmp_path / "a.ts").read_bytes() + (tmp_path / "b.ts").read_bytes())
    r = json.loads(vidsr("upscale", tmp_path / "ab.ts", "-o", tmp_path / "ab.mkv", "-m", "edsr", "--json",
                         check=0).stdout)
    assert r["frames"] == 10 and any("5 frame(s) of 96x64 scaled" in d for d in r["metadata"]["dropped"]), r
    # a second video stream is named as left out
    with av.open(str(tmp_path / "two.mkv"), "w") as c:
        streams = [c.add_stream("libx264", rate=10) for _ in range(2)]
        for k, v in enumerate(streams):
            v.width, v.height, v.pix_fmt = 64 + 32 * k, 48, "yuv420p"
        for i in range(4):
            for k, v in enumerate(streams):
                f = av.VideoFrame.from_ndarray(scene(i, 64 + 32 * k, 48), format="rgb24").reformat(format="yuv420p")
                f.pts = i
                c.mux(v.encode(f))
        for v in streams:
            c.mux(v.encode(None))
    r = json.loads(vidsr("upscale", tmp_path / "two.mkv", "-o", tmp_path / "two-x2.mkv", "-m", "edsr", "--json",
                         check=0).stdout)
    assert any(d.startswith("video stream #1 (h264 96x48)") for d in r["metadata"]["dropped"]), r
    # an animated PNG is a video: every frame, not the first
    encode_rgb(tmp_path / "anim.png", [scene(i, 32, 24) for i in range(6)], codec="apng", fmt="apng",
               pix_fmt="rgb24")
    r = json.loads(vidsr("upscale", tmp_path / "anim.png", "-o", tmp_path / "anim.mkv", "-m", "edsr", "--json",
                         check=0).stdout)
    assert r["frames"] == 6
    p = vidsr("upscale", tmp_path / "anim.png", "-o", tmp_path / "anim-x2.png", "-m", "edsr", check=2)
    assert b"video" in p.stderr and len(p.stderr.splitlines()) == 1
    # a 16-bit PNG written as JPEG comes out right, in 8 bits, and says so (it came out as garbage)
    deep = np.full((24, 32, 3), 64 * 257 + 128, np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    r = json.loads(vidsr("upscale", tmp_path / "deep.png", "-o", tmp_path / "deep.jpg", "-m", "edsr", "--json",
                         check=0).stdout)
    assert any("16-bit" in d for d in r["metadata"]["dropped"])
    cv2.imwrite(str(tmp_path / "shallow.png"), (deep // 257).astype(np.uint8))  # the same picture in 8 bits
    vidsr("upscale", tmp_path / "shallow.png", "-o", tmp_path / "shallow.jpg", "-m", "edsr", check=0)
    a, b = (cv2.imread(str(tmp_path / f"{n}.jpg")).astype(float) for n in ("deep", "shallow"))
    assert np.abs(a - b).mean() < 2


@pytest.mark.skipif(__import__("shutil").which("ffmpeg") is None, reason="FFmpeg's command line is not installed")
def test_cover_art_is_not_a_video(vidsr, tmp_path):
    import subprocess

    import cv2

    cv2.imwrite(str(tmp_path / "cover.png"), scene(0, 32, 32))
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=d=1", "-i", str(tmp_path / "cover.png"),
                    "-map", "0", "-map", "1", "-c:a", "libmp3lame", "-c:v", "png", "-disposition:v", "attached_pic",
                    str(tmp_path / "song.mp3")], check=True)
    p = vidsr("upscale", tmp_path / "song.mp3", "-o", tmp_path / "out.mkv", check=1)
    assert b"no video stream (found: audio, cover art)" in p.stderr and b"truncated" not in p.stderr


def test_cut_off_and_damaged_inputs_are_errors_or_reported_damage(vidsr, tmp_path):
    import cv2

    # half a JPEG: OpenCV filled the rest with grey, and the run said nothing
    cv2.imwrite(str(tmp_path / "full.jpg"), (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8))
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    p = vidsr("upscale", tmp_path / "half.jpg", "-o", tmp_path / "half.png", "-m", "edsr", check=1)
    assert b"truncated" in p.stderr and len(p.stderr.splitlines()) == 1
    # half a TS, stopping inside a packet: 17 of 30 frames and exit 0 before
    transport_stream(tmp_path / "whole.ts", None)
    data = (tmp_path / "whole.ts").read_bytes()
    (tmp_path / "half.ts").write_bytes(data[: len(data) // 2 + 100])
    p = vidsr("upscale", tmp_path / "half.ts", "-o", tmp_path / "half.mkv", "-m", "edsr", check=1)
    assert b"truncated" in p.stderr and not (tmp_path / "half.mkv").exists()
    # flipped bytes in six H.264 packets: their frames are skipped and reported, not the whole job lost
    clip = make_clip(tmp_path / "clip.mp4", 96, 64, 30, audio=False)
    data = bytearray(clip.read_bytes())
    with av.open(str(clip)) as c:
        packets = [(k.pos, k.size) for k in c.demux(video=0) if k.size]
    for pos, _ in packets[5:11]:
        for i in range(pos, pos + 3):
            data[i] ^= 0x5A
    (tmp_path / "flipped.mp4").write_bytes(bytes(data))
    r = json.loads(vidsr("upscale", tmp_path / "flipped.mp4", "-o", tmp_path / "f.mkv", "-m", "edsr", "--json",
                         check=0).stdout)
    assert r["frames"] + r["frames_lost"] == 30 and r["frames_lost"] > 0 and r["holes"][0]["damaged"]
    assert vidsr("upscale", tmp_path / "flipped.mp4", "-o", tmp_path / "g.mkv", "-m", "edsr", "--strict",
                 check=1).stdout == b""


def test_a_muxer_refusal_names_the_output_not_the_partial(vidsr, tmp_path):
    src = make_clip(tmp_path / "dup.mkv", pts=[0, 40, 80, 80, 120, 160, 200, 240], audio=False)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mp4", "-m", "edsr", check=1)
    assert b"out.mp4: mp4 refused a video packet" in p.stderr and b"partial" not in p.stderr
    assert len(p.stderr.splitlines()) == 1 and not list(tmp_path.glob(".out*"))


def test_a_legal_long_output_name_works_and_its_partials_are_swept(vidsr, tmp_path):
    from vidsr.files import is_partial_of, partial_glob

    src = make_clip(tmp_path / "in.mkv", frames=2, audio=False)
    out = tmp_path / ("n" * 246 + ".mkv")  # 250 bytes: legal, though its partial's name would not be
    vidsr("upscale", src, "-o", out, "-m", "edsr", check=0)
    assert out.is_file() and not list(tmp_path.glob(partial_glob(out)))
    stale = tmp_path / f".{'n' * 233}.abcd1234.partial.mkv"  # the longest a partial's name can be
    assert is_partial_of(stale, out) and len(stale.name) == 255


def test_an_mp4_with_its_index_at_the_end_on_a_pipe_says_why(vidsr, tmp_path):
    src = make_clip(tmp_path / "tail.mp4", 320, 180, 200)  # PyAV writes the moov box at the end
    p = vidsr("upscale", "-", "-o", tmp_path / "out.mkv", "-m", "edsr", "--duration", "0.2",
              input=src.read_bytes(), check=1)
    assert b"faststart" in p.stderr and b"corrupt" not in p.stderr and len(p.stderr.splitlines()) == 1
    p = vidsr("upscale", src, "-o", tmp_path / "y.mkv", "-m", "edsr", "--input-format", "y4m", check=2)
    assert b"not readable as --input-format" in p.stderr and b"returned 22" not in p.stderr


@pytest.mark.parametrize("name, args, words", [
    ("out.xyz", [], "no container called .xyz"),  # FFmpeg's "Could not determine output format", after an estimate
    ("out.gif", [], "GIF output is not supported"),  # 'gif' format does not support 'libx264', exit 1
    ("out.mp4", ["--start", "5"], "past the end"),  # said after the estimate line, as a second line
    ("out.webm", ["--codec", "libx265", "--no-audio"], "cannot go into webm"),  # FFmpeg's words, exit 1, mid-run
])
def test_outputs_and_windows_that_cannot_work_are_one_line_before_any_work(vidsr, tmp_path, name, args, words):
    clip = make_clip(tmp_path / "in.mp4", frames=10)
    p = vidsr("upscale", clip, "-o", tmp_path / name, "-m", "srcnn", *args, check=2)
    assert words in p.stderr.decode() and len(p.stderr.splitlines()) == 1, p.stderr
    assert sorted(f.name for f in tmp_path.iterdir()) == ["in.mp4"]


def test_webm_gets_vp9_which_it_holds(vidsr, tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=6)
    vidsr("upscale", clip, "-o", tmp_path / "out.webm", "-m", "srcnn", "--no-audio", check=0)
    with av.open(str(tmp_path / "out.webm")) as c:
        assert c.streams.video[0].codec_context.name == "vp9" and c.streams.video[0].frames in (0, 6)
        assert sum(1 for _ in c.decode(video=0)) == 6
    # AAC cannot go into WebM: one line that names the way out
    p = vidsr("upscale", clip, "-o", tmp_path / "a.webm", "-m", "srcnn", check=2)
    assert b"--no-audio" in p.stderr and len(p.stderr.splitlines()) == 1


def test_an_empty_engines_folder_is_said_not_listed_as_nothing(vidsr, env, tmp_path):
    env["VIDSR_ENGINES"] = str(tmp_path)
    p = vidsr("models", check=1)
    assert p.stdout == b"" and b"no engines in" in p.stderr and b"VIDSR_ENGINES" in p.stderr
    assert len(p.stderr.splitlines()) == 1
