"""Shell pipelines (matroska, nut, mpegts, y4m through stdin/stdout), deinterlacing and --compare views."""

import json
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import needs_ffprobe
from media import decode_planes, make_clip, probe


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("pipes") / "in.mkv", 64, 48, frames=10, audio=True)


def piped(tmp_path, fmt: str) -> bytes:
    """The clip as another tool would pipe it, written straight in container ``fmt``."""
    if fmt == "yuv4mpegpipe":
        path = make_clip(tmp_path / "in.y4m", 64, 48, frames=10, codec="rawvideo", audio=False, colour=None,
                         fmt=fmt, time_base=Fraction(1, 25))
    else:
        path = make_clip(tmp_path / f"in.{fmt}", 64, 48, frames=10, audio=True, fmt=fmt)
    return path.read_bytes()


@pytest.mark.parametrize("fmt_in,fmt_out", [("matroska", "matroska"), ("nut", "nut"), ("mpegts", "mpegts"),
                                            ("yuv4mpegpipe", "y4m"), ("matroska", "y4m")])
def test_stdin_to_stdout_in_every_pipe_format(vidsr, tmp_path, fmt_in, fmt_out):
    p = vidsr("upscale", "-", "-o", "-", "--format", fmt_out, "-m", "vdsr", "-q", input=piped(tmp_path, fmt_in),
              check=0)
    (tmp_path / "out").write_bytes(p.stdout)
    info = probe(tmp_path / "out")
    assert info["frames"] == 10 and (info["width"], info["height"]) == (128, 96)
    assert p.stdout[:4] in (b"\x1aE\xdf\xa3", b"nut/", b"YUV4") or p.stdout[0] == 0x47  # media only on stdout
    if fmt_out != "y4m" and fmt_in != "yuv4mpegpipe":
        assert len(info["audio"]) > 0  # audio rides along through the pipe


def test_a_closed_downstream_pipe_ends_quietly_with_an_error_code(env, tmp_path):
    src = make_clip(tmp_path / "long.mkv", 160, 120, frames=60, audio=True)
    producer = subprocess.Popen([sys.executable, "-m", "vidsr", "upscale", str(src), "-o", "-", "--format",
                                 "matroska", "-m", "vdsr", "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env)
    producer.stdout.read(2000)  # like `| head -c 2000`
    producer.stdout.close()
    err = producer.stderr.read()
    assert producer.wait(timeout=120) != 0
    assert b"Traceback" not in err and len(err.splitlines()) <= 1


@needs_ffprobe
def test_ffmpeg_pipeline_into_ffprobe(env, clip):
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    cmd = (f"ffmpeg -v error -i {clip} -map 0 -c copy -f matroska - | {sys.executable} -m vidsr upscale - -o - "
           "--format matroska -m vdsr -q | ffprobe -v error -count_frames -select_streams v:0 "
           "-show_entries stream=nb_read_frames,width -of json -")
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    stream = json.loads(p.stdout)["streams"][0]
    assert int(stream["nb_read_frames"]) == 10 and stream["width"] == 128


def make_interlaced(path, frames: int = 8):
    """A box moving 8 px per frame whose two fields are 4 px apart in time: combed when shown as frames."""
    from fractions import Fraction

    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        v.codec_context.time_base = Fraction(1, 25)
        v.options = {"x264-params": "interlaced=1:tff=1", "crf": "4"}
        for i in range(frames):
            img = np.full((64, 96, 3), 30, np.uint8)
            for r in range(16, 48):
                x0 = 8 * i + (4 if r % 2 else 0)
                img[r, x0:x0 + 24] = 230
            frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            for p in v.encode(frame):
                c.mux(p)
        for p in v.encode(None):
            c.mux(p)
    return path


def combing(y: np.ndarray) -> float:
    """Mean distance of each line from the mean of its neighbours: high where fields disagree."""
    y = y.astype(np.float64)
    return float(np.abs(y[1:-1] - (y[:-2] + y[2:]) / 2).mean())


@pytest.mark.parametrize("mode", ["auto", "bwdif", "yadif"])
def test_deinterlace_removes_combing_and_keeps_every_frame(vidsr, tmp_path, mode):
    src = make_interlaced(tmp_path / "i.mkv")
    plain = tmp_path / "plain.mkv"
    vidsr("upscale", src, "-o", plain, "-m", "vdsr", "-q", "--crf", "0", check=0)
    out = tmp_path / f"{mode}.mkv"
    how = ["--deinterlace"] if mode == "auto" else ["--deinterlace", mode]  # alone, it means auto
    r = json.loads(vidsr("upscale", src, "-o", out, "-m", "vdsr", *how, "--crf", "0", "--json", check=0).stdout)
    assert r["frames"] == 8 and probe(out)["times"] == probe(plain)["times"]
    if mode == "auto":
        assert r["deinterlaced_frames"] == 8  # the decoder flagged every frame interlaced
    before = np.mean([combing(p[0]) for p in decode_planes(plain)])
    after = np.mean([combing(p[0]) for p in decode_planes(out)])
    assert after < 0.6 * before, (before, after)


def test_deinterlace_auto_leaves_progressive_video_alone(vidsr, tmp_path, clip):
    a, b = tmp_path / "a.mkv", tmp_path / "b.mkv"
    vidsr("upscale", clip, "-o", a, "-m", "vdsr", "-q", check=0)
    r = json.loads(vidsr("upscale", clip, "-o", b, "-m", "vdsr", "--deinterlace", "auto", "--json", check=0).stdout)
    assert r["deinterlaced_frames"] == 0
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(decode_planes(a), decode_planes(b)))


def test_compare_views(vidsr, tmp_path, clip):
    model, side, split = tmp_path / "m.mkv", tmp_path / "side.mkv", tmp_path / "split.mkv"
    vidsr("upscale", clip, "-o", model, "-m", "edsr", "-q", "--crf", "0", check=0)
    vidsr("upscale", clip, "-o", side, "-m", "edsr", "-q", "--crf", "0", "--compare", "side", check=0)
    vidsr("upscale", clip, "-o", split, "-m", "edsr", "-q", "--crf", "0", "--compare", "split", check=0)
    assert (probe(side)["width"], probe(side)["height"]) == (256, 96)
    assert (probe(split)["width"], probe(split)["height"]) == (128, 96)
    m, s, sp = decode_planes(model)[3][0], decode_planes(side)[3][0], decode_planes(split)[3][0]
    assert np.array_equal(s[:, 128:], m)  # right half of the side view is the model's frame
    assert not np.array_equal(s[:, :128], m)  # left half is bicubic, not the model
    assert np.array_equal(sp[:, 66:], m[:, 66:]) and np.all(sp[:, 63:65] == 255)  # the seam is marked
    assert np.array_equal(sp[:, :63], s[:, :63])
