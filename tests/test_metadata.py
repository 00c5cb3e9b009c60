"""Nothing lost for archives: languages, dispositions, titles, chapters, attachments and HDR10, read back with
PyAV (and ffprobe where it is installed), for the containers that can hold each."""

import json
import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import needs_ffprobe
from media import scene

from vidsr.video.metadata import hdr10_of

FONT = b"\x00\x01\x00\x00fake-font-bytes" * 64
MASTER = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"


def make_archive(path, fmt=None):
    """Two audio tracks (eng, kor; the second default), ASS subtitles with their font attached, two chapters
    and a title: the archive reel of the issue."""
    c = av.open(str(path), "w", format=fmt)
    v = c.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    v.metadata["title"] = "Reel 7 picture"
    audio = []
    for lang, default in (("eng", False), ("kor", True)):
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        a.metadata["language"] = lang
        a.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
        audio.append(a)
    c.metadata["title"] = "Archive reel 7"
    if (fmt or path.suffix) in (".mkv", "matroska"):
        s = c.add_stream("ass")
        s.codec_context.time_base = s.time_base = Fraction(1, 1000)
        s.metadata["language"] = "eng"
        c.add_attachment(name="DejaVuSans.ttf", mimetype="application/x-truetype-font", data=FONT)
    ms = Fraction(1, 1000)
    c.set_chapters([{"id": 1, "start": 0, "end": 500, "time_base": ms, "metadata": {"title": "One"}},
                    {"id": 2, "start": 500, "end": 1000, "time_base": ms, "metadata": {"title": "Two"}}])
    for i in range(25):
        f = av.VideoFrame.from_ndarray(scene(i, 64, 48), format="rgb24").reformat(format="yuv420p")
        f.pts = i
        c.mux(v.encode(f))
    c.mux(v.encode(None))
    for a in audio:
        for k in range(0, 48000, 1024):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 48000, k
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    c.close()
    return path


def facts(path):
    with av.open(str(path)) as c:
        return {"title": c.metadata.get("title"),
                "chapters": [(ch["metadata"].get("title"), round(float(ch["start"] * ch["time_base"]), 3))
                             for ch in c.chapters()],
                "audio": [(s.metadata.get("language"), bool(s.disposition & av.stream.Disposition.default))
                          for s in c.streams.audio],
                "subtitle": [s.metadata.get("language") for s in c.streams.subtitles],
                "attachments": [(s.metadata.get("filename"), bytes(getattr(s, "data", b"") or b""))
                                for s in c.streams if s.type == "attachment"]}


@pytest.mark.parametrize("ext", [".mkv", ".mp4", ".ts"])
def test_archive_metadata_comes_through_where_the_container_holds_it(vidsr, tmp_path, ext):
    src = make_archive(tmp_path / "reel.mkv")
    want = facts(src)
    assert want["audio"] == [("eng", False), ("kor", True)] and len(want["chapters"]) == 2
    out = tmp_path / f"out{ext}"
    # MP4 takes the ASS subtitles as mov_text, its own text format (MPEG-TS takes none: --no-subtitles there).
    p = vidsr("upscale", src, "-o", out, "-m", "vdsr", "--json", *(["--no-subtitles"] if ext == ".ts" else []),
              check=0)
    got, report = facts(out), json.loads(p.stdout)["metadata"]
    assert [lang for lang, _ in got["audio"]] == ["eng", "kor"]  # every container here holds languages
    if ext == ".mkv":
        assert got == want and report["dropped"] == []
        assert got["attachments"] == [("DejaVuSans.ttf", FONT)] and got["chapters"] == [("One", 0.0), ("Two", 0.5)]
    if ext == ".mp4":  # MP4 holds the title, chapters, the default flag and text subtitles, but no attachments
        assert got["audio"] == want["audio"] and got["title"] == want["title"]
        assert got["subtitle"] == want["subtitle"] and any("as mov_text" in c for c in report["carried"])
        assert got["chapters"] == want["chapters"]
        assert report["dropped"] == ["attachment DejaVuSans.ttf (mp4 holds no attachments)"]
    if ext == ".ts":  # MPEG-TS holds no chapters and no attachments: both named, once, on stderr
        assert got["chapters"] == [] and got["attachments"] == []
        assert {d.split(" (")[0] for d in report["dropped"]} >= {"2 chapters", "attachment DejaVuSans.ttf"}
        again = vidsr("upscale", src, "-o", tmp_path / "again.ts", "-m", "vdsr", "--no-subtitles",
                      check=0).stderr.decode()
        assert again.count("cannot hold") == 1 and "chapters" in again


def test_the_video_streams_own_tags_and_a_cut_keep_chapters_in_range(vidsr, tmp_path):
    src = make_archive(tmp_path / "reel.mkv")
    out = tmp_path / "cut.mkv"
    vidsr("upscale", src, "-o", out, "-m", "vdsr", "--start", "0.6", check=0)
    assert facts(out)["chapters"] == [("Two", 0.0)]
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("title") == "Reel 7 picture"


def test_the_pipe_and_batch_keep_the_same(vidsr, tmp_path):
    src = make_archive(tmp_path / "reel.mkv")
    want = facts(src)
    p = vidsr("upscale", "-", "-o", "-", "--format", "matroska", "-m", "vdsr", input=src.read_bytes(), check=0)
    (tmp_path / "piped.mkv").write_bytes(p.stdout)
    piped = facts(tmp_path / "piped.mkv")
    assert piped["audio"] == want["audio"] and piped["chapters"] == want["chapters"]
    assert piped["attachments"] == want["attachments"] and piped["title"] == want["title"]
    (tmp_path / "in").mkdir()
    shutil.copy(src, tmp_path / "in" / "reel.mkv")
    vidsr("batch", tmp_path / "in", "-o", tmp_path / "out", "--no-estimate", "-m", "vdsr", "-q", check=0)
    assert facts(tmp_path / "out" / "reel.mkv") == want


def make_hdr10(path):
    c = av.open(str(path), "w")
    v = c.add_stream("libx265", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p10le"
    cc = v.codec_context
    cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = 9, 16, 9, 1
    v.options = {"crf": "28", "x265-params": f"log-level=error:hdr10=1:repeat-headers=1:master-display={MASTER}:"
                                             "max-cll=1000,400"}
    for i in range(5):
        f = av.VideoFrame.from_ndarray(scene(i, 64, 48), format="rgb24").reformat(format="yuv420p10le")
        f.pts = i
        c.mux(v.encode(f))
    c.mux(v.encode(None))
    c.close()
    return path


def test_hdr10_gets_hevc_main10_with_its_mastering_metadata(vidsr, tmp_path):
    src = make_hdr10(tmp_path / "hdr.mkv")
    out = tmp_path / "hdr-x2.mkv"
    r = json.loads(vidsr("upscale", src, "-o", out, "-m", "vdsr", "--json", check=0).stdout)
    assert r["codec"] == "libx265" and any("HDR10" in c for c in r["metadata"]["carried"])
    with av.open(str(out)) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.name, cc.format.name, int(cc.color_trc), int(cc.color_primaries)) == ("hevc", "yuv420p10le", 16, 9)
        with av.open(str(src)) as s:
            assert hdr10_of(next(c.decode(video=0))) == hdr10_of(next(s.decode(video=0)))
    h = hdr10_of(next(av.open(str(out)).decode(video=0)))
    assert h is not None and h.max_cll == (1000, 400) and h.luminance == (10000000, 50)


def test_an_sdr_8bit_source_keeps_h264(vidsr, tmp_path):
    src = make_archive(tmp_path / "sdr.mkv")
    assert json.loads(vidsr("upscale", src, "-o", tmp_path / "o.mkv", "-m", "vdsr", "--json",
                            check=0).stdout)["codec"] == "libx264"


@needs_ffprobe
def test_ffprobe_sees_the_same_fields(vidsr, tmp_path):
    src, out = make_archive(tmp_path / "reel.mkv"), tmp_path / "out.mkv"
    vidsr("upscale", src, "-o", out, "-m", "vdsr", check=0)

    def probe(path):
        raw = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-show_format", "-show_streams", "-of",
                              "json", str(path)], capture_output=True, check=True).stdout
        d = json.loads(raw)
        streams = [(s["codec_type"], s.get("tags", {}).get("language"), s.get("disposition", {}).get("default"),
                    s.get("tags", {}).get("filename")) for s in d["streams"] if s["codec_type"] != "video"]
        return streams, [c["tags"]["title"] for c in d["chapters"]], d["format"]["tags"].get("title")

    assert probe(out) == probe(src)
    hdr_src, hdr_out = make_hdr10(tmp_path / "hdr.mkv"), tmp_path / "hdr-out.mkv"
    vidsr("upscale", hdr_src, "-o", hdr_out, "-m", "vdsr", check=0)
    frames = json.loads(subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-read_intervals", "%+#1",
                                        "-show_frames", "-of", "json", str(hdr_out)], capture_output=True,
                                       check=True).stdout)["frames"][0]
    kinds = {sd["side_data_type"] for sd in frames.get("side_data_list", [])}
    assert {"Mastering display metadata", "Content light level metadata"} <= kinds


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="FFmpeg's CLI is needed to tag a rotation")
def test_a_display_rotation_is_applied_as_ffmpeg_shows_it(vidsr, tmp_path):
    from media import make_clip

    flat = make_clip(tmp_path / "flat.mp4", 64, 48, frames=5, audio=False)
    turned = tmp_path / "phone.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(flat), "-c", "copy", "-metadata:s:v:0", "rotate=90",
                    str(turned)], check=True)
    shown = tmp_path / "shown.png"  # FFmpeg's own autorotate: what a player shows
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(turned), "-frames:v", "1", str(shown)], check=True)
    r = json.loads(vidsr("upscale", turned, "-o", tmp_path / "up.mp4", "-m", "vdsr", "--json", check=0).stdout)
    assert any("display rotation" in c for c in r["metadata"]["carried"])
    with av.open(str(tmp_path / "up.mp4")) as c:
        frame = next(c.decode(video=0))
    assert (frame.width, frame.height) == (96, 128)
    import cv2

    want = cv2.cvtColor(cv2.imread(str(shown)), cv2.COLOR_BGR2RGB).astype(int)
    got = cv2.resize(frame.to_ndarray(format="rgb24"), (48, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(got - want).mean() < 8  # the same picture, upright (a wrong turn differs by ~130)


def test_srt_subtitles_go_into_mp4_as_its_own_text_at_their_times(vidsr, tmp_path):
    # The web page's default Convert (MP4) failed on any MKV with SRT subtitles: MP4 holds text only as mov_text.
    srt = tmp_path / "cues.srt"
    srt.write_text("1\n00:00:00,100 --> 00:00:00,300\nhello there\n\n2\n00:00:00,300 --> 00:00:00,450\nsecond cue\n")
    src = tmp_path / "in.mkv"
    with av.open(str(srt)) as s, av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        text = out.add_stream_from_template(s.streams[0])
        for packet in s.demux():
            if packet.dts is not None:
                packet.stream = text
                out.mux(packet)
        for i in range(12):
            out.mux(video.encode(av.VideoFrame.from_ndarray(scene(i, 64, 48), format="rgb24")))
        out.mux(video.encode(None))
    p = vidsr("upscale", src, "-o", tmp_path / "out.mp4", "-m", "srcnn", "--json", check=0)
    assert any("as mov_text" in c for c in json.loads(p.stdout)["metadata"]["carried"])
    cues = []
    with av.open(str(tmp_path / "out.mp4")) as c:
        track = c.streams.subtitles[0]
        assert track.codec_context.name == "mov_text"
        for packet in c.demux(track):
            if packet.dts is not None and (subtitle := track.codec_context.decode2(packet)) is not None:
                text = subtitle[0].ass.decode() if hasattr(subtitle[0], "ass") else str(subtitle[0])
                cues.append((round(float(packet.pts * packet.time_base), 2), text.rsplit(",", 1)[-1]))
    assert cues == [(0.1, "hello there"), (0.3, "second cue")]
