"""NVENC: the choice --codec auto makes, the fallback and the error when NVENC cannot start (here: no GPU, so the
real encoder really fails to open), and a real NVENC encode where a GPU with NVENC is present."""

import json

import pytest
from media import make_clip, probe

from vidsr.video.nvenc import choose_encoder, nvenc_error, nvenc_options, nvenc_pix_fmt

NO_NVENC = nvenc_error("h264_nvenc") is not None


@pytest.mark.skipif(not NO_NVENC, reason="NVENC starts on this machine; the no-GPU behaviour cannot be seen")
def test_auto_on_cuda_falls_back_to_x264_with_a_note_when_nvenc_cannot_start():
    choice = choose_encoder(None, "libx264", "cuda", False, False)
    assert choice.codec == "libx264" and "h264_nvenc cannot start" in choice.note
    deep = choose_encoder(None, "libx265", "cuda", True, False)  # 10-bit or HDR: HEVC, as on the CPU
    assert deep.codec == "libx265" and "hevc_nvenc cannot start" in deep.note
    assert choose_encoder(None, "libx264", "cpu", False, False) == choose_encoder(None, "libx264", "cpu", True, False)
    assert choose_encoder(None, "libx264", "cpu", False, False).note is None  # a CPU run: x264, nothing to say


@pytest.mark.skipif(not NO_NVENC, reason="NVENC starts on this machine")
def test_asking_for_nvenc_without_a_gpu_is_one_clear_line(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--codec", "hevc_nvenc", check=1)
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "hevc_nvenc" in err and "NVENC cannot start" in err and "--codec libx264" in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.mkv"]  # nothing written


def test_nvenc_options_are_checked_before_work(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    p = vidsr("upscale", src, "-o", tmp_path / "a.mkv", "--codec", "h264_nvenc", "--crf", "0", check=2)
    assert b"1-51" in p.stderr  # cq 0 would mean "automatic", not lossless
    p = vidsr("upscale", src, "-o", tmp_path / "b.mkv", "--codec", "av1_nvenc", "--preset", "p9", check=2)
    assert b"p7" in p.stderr and b"medium" in p.stderr


def test_cpu_runs_report_their_encoder_choice(vidsr, tmp_path):
    src = make_clip(tmp_path / "in.mkv", frames=3)
    p = vidsr("upscale", src, "-o", tmp_path / "out.mkv", "--json", "--device", "cpu", check=0)
    summary = json.loads(p.stdout)
    assert summary["codec"] == "libx264" and summary["codec_choice"]["codec"] == "libx264"
    assert "CPU" in summary["codec_choice"]["reason"]


def test_nvenc_formats_and_quality_mapping():
    assert nvenc_pix_fmt("hevc_nvenc", "yuv420p10le") == "p010le"  # NVENC reads 10-bit semi-planar
    assert nvenc_pix_fmt("h264_nvenc", "yuv420p") == "yuv420p"
    assert nvenc_pix_fmt("hevc_nvenc", "yuv422p10le") == "p010le"  # 4:2:2 -> 4:2:0, depth kept
    assert nvenc_pix_fmt("h264_nvenc", "yuv444p") == "yuv444p"
    opts = nvenc_options(20, "slow")
    assert opts["cq"] == "20" and opts["rc"] == "vbr" and opts["b"] == "0"  # constant quality, no rate cap
    assert [nvenc_options(20, p)["preset"] for p in ("ultrafast", "medium", "veryslow", "p3")] == ["p1", "p5", "p7",
                                                                                                  "p3"]


@pytest.mark.skipif(NO_NVENC, reason="no NVENC here (it needs an NVIDIA GPU and driver)")
@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_encodes_every_frame(vidsr, tmp_path, codec):
    src = make_clip(tmp_path / "in.mp4", 320, 240, frames=12)
    vidsr("upscale", src, "-o", tmp_path / "out.mp4", "--codec", codec, "--crf", "23", check=0)
    a, b = probe(src), probe(tmp_path / "out.mp4")
    assert b["frames"] == a["frames"] == 12 and (b["width"], b["height"]) == (640, 480)
    assert b["times"] == a["times"]
