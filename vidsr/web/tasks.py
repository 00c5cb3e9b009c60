"""The server's own jobs besides upscaling: cut, extract, merge and the browser copy, each run in a child process
(``python -m vidsr.web.tasks ACTION SRC DST OPTIONS_JSON``) as ``vidsr upscale`` is.

Every output is H.264 (8-bit 4:2:0) and AAC in MP4 with the index up front, so that any browser plays it and can
seek before it has it all; frames go in a zip of PNGs. Outputs are written to a locked partial and renamed on
success (vidsr.files.output_file). Progress goes to stderr as JSON lines, the result to stdout as one JSON line.
"""

from __future__ import annotations

import json
import signal
import sys
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from av.video.frame import PictureType

from vidsr.files import output_file
from vidsr.progress import JsonProgress

MAX_COPY = (1920, 1080)  # a browser copy of anything larger is scaled to fit: it is for watching, not for work


@dataclass(frozen=True)
class Encode:
    crf: int = 18
    preset: str = "veryfast"


def _even_fit(width: int, height: int, box: tuple[int, int] | None) -> tuple[int, int]:
    if box and (width > box[0] or height > box[1]):
        f = min(box[0] / width, box[1] / height)
        width, height = int(width * f), int(height * f)
    return max(2, width - width % 2), max(2, height - height % 2)


class Mp4Writer:
    """H.264 + AAC in MP4 with +faststart. Video frames arrive with their own times in ``time_base``; audio
    frames are resampled to AAC's format and numbered here by their samples (the encoder leaves them unnumbered,
    which MP4 refuses)."""

    def __init__(self, path: Path, size: tuple[int, int], rate: Fraction, time_base: Fraction, enc: Encode,
                 audio_rate: int | None = None, stereo: bool = True):
        self.out = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.video = self.out.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = size
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = self.video.codec_context.time_base = self.time_base = time_base
        self.video.codec_context.framerate = rate
        self.video.options = {"crf": str(enc.crf), "preset": enc.preset}
        self.audio = self.resampler = None
        self.samples = 0
        if audio_rate:
            layout = "stereo" if stereo else "mono"
            self.audio = self.out.add_stream("aac", rate=audio_rate)
            self.audio.layout = layout
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=audio_rate)
        # Open every encoder and write the header now: were the first packet audio, the muxer would fix the video
        # stream's time base (MP4 picks its own) before x264 opened, and x264 would count in the wrong units.
        self.out.start_encoding()

    def add_video(self, frame: av.VideoFrame, pts: int) -> None:
        frame = frame.reformat(width=self.video.width, height=self.video.height, format="yuv420p")
        frame.pts, frame.time_base = pts, self.time_base  # the encoder's: the muxer has changed the stream's
        frame.pict_type = PictureType.NONE  # a decoded frame's I/P/B type would otherwise force x264's choice
        self.out.mux(self.video.encode(frame))

    def add_audio(self, frame: av.AudioFrame) -> None:
        assert self.resampler is not None and self.audio is not None
        for f in self.resampler.resample(frame):
            self._audio(f)

    def _audio(self, f: av.AudioFrame | None) -> None:
        assert self.audio is not None
        if f is not None:
            f.pts, f.time_base = self.samples, Fraction(1, self.audio.codec_context.sample_rate)
            self.samples += f.samples
        self.out.mux(self.audio.encode(f))

    def close(self) -> None:
        self.out.mux(self.video.encode())
        if self.audio is not None and self.resampler is not None:
            for f in self.resampler.resample(None):
                self._audio(f)
            self._audio(None)
        self.out.close()


def _audio_shape(audio: Any) -> tuple[int | None, bool]:
    """The AAC stream that carries ``audio``: its sample rate (None: no audio) and whether it is stereo."""
    if audio is None:
        return None, True
    return audio.codec_context.sample_rate or 48000, (audio.codec_context.channels or 2) >= 2


def _open_video(src: Path) -> tuple[Any, Any, Any]:
    c = av.open(str(src))
    video = c.streams.video[0]
    video.thread_type = "AUTO"
    audio = c.streams.audio[0] if c.streams.audio else None
    return c, video, audio


def _expected_frames(video: Any, duration: float | None, container_duration: float | None) -> int:
    rate = float(video.average_rate or video.guessed_rate or 25)
    span = duration if duration is not None else container_duration
    return int(span * rate + 1e-6) if span else (video.frames or 0)  # the last frame lasts to the end


def transcode(src: Path, dst: Path, start: float = 0.0, duration: float | None = None, enc: Encode = Encode(),
              box: tuple[int, int] | None = None) -> dict[str, Any]:
    """The frames shown from ``start`` for ``duration`` seconds (all when None), with the audio of that span,
    as playable MP4. Cut and the browser copy both are this."""
    c, video, audio = _open_video(src)
    progress = JsonProgress()
    with c, output_file(dst) as tmp:
        end = start + duration if duration is not None else float("inf")
        total = _expected_frames(video, duration, c.duration / av.time_base if c.duration else None)
        progress.start(total)
        if start > 0:
            c.seek(int(start / av.time_base), backward=True)
        size = _even_fit(video.codec_context.width, video.codec_context.height, box)
        out = Mp4Writer(tmp, size, video.average_rate or Fraction(25), video.time_base, enc, *_audio_shape(audio))
        first_pts, n = None, 0
        for packet in c.demux(*(s for s in (video, audio) if s is not None)):
            for frame in packet.decode():
                t = frame.time
                if t is None or t + 1e-6 < start or t >= end - 1e-6:
                    continue
                if isinstance(frame, av.VideoFrame) and frame.pts is not None:
                    first_pts = frame.pts if first_pts is None else first_pts
                    out.add_video(frame, frame.pts - first_pts)
                    n += 1
                    progress.frame(n)
                elif out.audio is not None:
                    out.add_audio(frame)
        out.close()
        if n == 0:
            raise ValueError(f"no frames between {start:g} s and {end:g} s")
        progress.stop()
    return {"frames": n, "width": size[0], "height": size[1]}


def extract(src: Path, dst: Path, every: int = 1) -> dict[str, Any]:
    """Every ``every``-th frame as PNG (frame_000001.png, ...) in a zip; PNG is compressed already, so stored."""
    c, video, _ = _open_video(src)
    progress = JsonProgress()
    rate = video.average_rate or Fraction(25)
    with c, output_file(dst) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        total = _expected_frames(video, None, c.duration / av.time_base if c.duration else None)
        progress.start(total)
        kept = 0
        for i, frame in enumerate(c.decode(video)):
            progress.frame(i + 1)
            if i % every:
                continue
            kept += 1
            ok, png = cv2.imencode(".png", cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2BGR))
            z.writestr(f"frame_{kept:06d}.png", png.tobytes())
        progress.stop()
        if kept == 0:
            raise ValueError("the video has no frames to extract")
    return {"frames": kept, "fps": round(float(rate) / every, 6), "every": every}


def _frames_of(zip_path: Path) -> tuple[list[str], zipfile.ZipFile]:
    z = zipfile.ZipFile(zip_path)
    names = sorted(n for n in z.namelist() if n.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))
    if not names:
        raise ValueError("the frame set holds no images")
    return names, z


def _decoded(z: zipfile.ZipFile, names: list[str]) -> Iterator[np.ndarray]:
    for name in names:
        bgr = cv2.imdecode(np.frombuffer(z.read(name), np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{name} in the frame set does not decode")
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _audio_frames(audio_src: Path | None) -> Iterable[av.AudioFrame]:
    if audio_src is None:
        return
    with av.open(str(audio_src)) as c:
        if not c.streams.audio:
            return
        yield from c.decode(c.streams.audio[0])


def merge(src: Path, dst: Path, fps: float, audio_src: Path | None, enc: Encode = Encode()) -> dict[str, Any]:
    """The images of a frame set (a zip), in name order, as a video at ``fps``, with the audio of ``audio_src``
    (the video they came from) for as long as the frames last."""
    names, z = _frames_of(src)
    rate = Fraction(fps).limit_denominator(1001)
    progress = JsonProgress()
    audio_rate, stereo = None, True
    if audio_src is not None:
        with av.open(str(audio_src)) as c:
            audio_rate, stereo = _audio_shape(c.streams.audio[0] if c.streams.audio else None)
    with z, output_file(dst) as tmp:
        out: Mp4Writer | None = None
        audio = iter(_audio_frames(audio_src if audio_rate else None))
        pending: av.AudioFrame | None = None
        progress.start(len(names))
        for i, rgb in enumerate(_decoded(z, names)):
            if out is None:
                size = _even_fit(rgb.shape[1], rgb.shape[0], None)
                # A time base of 1/numerator (not 1/rate, which may be 2/25): encoders and MP4 want a unit fraction.
                out = Mp4Writer(tmp, size, rate, Fraction(1, rate.numerator), enc, audio_rate, stereo)
            out.add_video(av.VideoFrame.from_ndarray(rgb, format="rgb24"), i * rate.denominator)
            until = (i + 1) / float(rate)
            while out.audio is not None:  # interleaved as it goes: the muxer never queues a whole track
                pending = pending or next(audio, None)
                if pending is None or (pending.time or 0.0) >= until:
                    break
                out.add_audio(pending)
                pending = None
            progress.frame(i + 1)
        assert out is not None
        out.close()
        progress.stop()
    return {"frames": len(names), "fps": float(rate), "audio": audio_rate is not None,
            "width": out.video.width, "height": out.video.height}


def _stop(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # so that output_file removes the partial on the way out


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGTERM, _stop)
    av.logging.set_level(None)  # no Python log callback: see vidsr.web.probe (FFmpeg's own messages go to stderr)
    action, src, dst, options = argv[0], Path(argv[1]), Path(argv[2]), json.loads(argv[3])
    enc = Encode(int(options.get("crf", 18)), str(options.get("preset", "veryfast")))
    try:
        if action == "cut":
            result = transcode(src, dst, float(options.get("start", 0)), float(options.get("duration", 30)), enc)
        elif action == "proxy":
            result = transcode(src, dst, enc=Encode(23, "veryfast"), box=MAX_COPY)
        elif action == "extract":
            result = extract(src, dst, int(options.get("every", 1)))
        elif action == "merge":
            audio = options.get("audio_from")
            result = merge(src, dst, float(options["fps"]), Path(audio) if audio else None, enc)
        else:
            raise ValueError(f"unknown action {action!r}")
    except (ValueError, av.error.FFmpegError, zipfile.BadZipFile, OSError) as e:
        print(json.dumps({"error": getattr(e, "strerror", None) or str(e) or type(e).__name__}))
        return 1
    except KeyboardInterrupt:
        return 143
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
