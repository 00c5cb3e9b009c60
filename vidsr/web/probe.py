"""What a file is, judged by its content through PyAV (never by its name), its thumbnail, and whether a browser
plays it as it is.

Uploads are probed in a child process (``python -m vidsr.web.probe FILE THUMB``): a corrupt or hostile file that
crashes or hangs FFmpeg's demuxer takes that child down, never the server.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

THUMB_WIDTH = 320
# Still-image demuxers: a file they open is an image, whatever its name says.
IMAGE_FORMATS = {"png_pipe": ".png", "jpeg_pipe": ".jpg", "bmp_pipe": ".bmp", "webp_pipe": ".webp",
                 "tiff_pipe": ".tiff", "image2": ".png"}
# The extension each container is stored under (the server's name, so that the encoders pick the right muxer).
CONTAINER_SUFFIX = {"matroska": ".mkv", "mov": ".mp4", "mp4": ".mp4", "asf": ".wmv", "avi": ".avi", "gif": ".gif",
                    "mpegts": ".ts", "flv": ".flv", "mpeg": ".mpg", "mxf": ".mxf", "yuv4mpegpipe": ".y4m",
                    "ogg": ".ogv", "nut": ".nut"}
# What Chromium, Firefox and Safari all play in <video> (or <img> for GIF), 8-bit 4:2:0 only.
BROWSER_VIDEO = {"h264", "vp8", "vp9", "av1"}
BROWSER_AUDIO = {"aac", "mp3", "opus", "vorbis"}
BROWSER_CONTAINERS = {".mp4", ".webm", ".gif"}
COLOUR_NAMES = {
    "primaries": {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020", 12: "p3"},
    "transfer": {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 8: "linear", 13: "srgb", 14: "bt2020-10",
                 15: "bt2020-12", 16: "smpte2084 (PQ)", 18: "arib-std-b67 (HLG)"},
    "matrix": {0: "gbr", 1: "bt709", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 9: "bt2020nc", 10: "bt2020c"},
    "range": {1: "tv (limited)", 2: "pc (full)"},
}


class NotMedia(ValueError):
    """The content is no video or image that FFmpeg can decode."""


@dataclass
class Probe:
    kind: str  # video | image
    suffix: str  # the extension the server stores it under
    playable: bool
    info: dict[str, Any] = field(default_factory=dict)


def _rate(stream: Any) -> float | None:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return round(float(Fraction(rate)), 3) if rate else None


def _colour(cc: Any) -> dict[str, str]:
    out = {}
    for key, attr in (("primaries", "color_primaries"), ("transfer", "color_trc"), ("matrix", "colorspace"),
                      ("range", "color_range")):
        value = int(getattr(cc, attr, 0) or 0)
        if value and not (key != "range" and value == 2):
            out[key] = COLOUR_NAMES[key].get(value, str(value))
    return out


def _stream(s: Any) -> dict[str, Any]:
    cc = s.codec_context
    out: dict[str, Any] = {"index": s.index, "type": s.type, "codec": cc.name if cc else None,
                           "language": s.metadata.get("language")}
    if s.type == "video":
        out |= {"width": cc.width, "height": cc.height, "pix_fmt": cc.pix_fmt, "fps": _rate(s),
                "frames": s.frames or None, "colour": _colour(cc)}
    elif s.type == "audio":
        out |= {"sample_rate": cc.sample_rate, "channels": cc.channels if hasattr(cc, "channels") else None,
                "layout": cc.layout.name if cc.layout else None}
    return out


def probe(path: Path) -> Probe:
    """Open ``path`` by content and decode its first video frame; raises NotMedia otherwise."""
    try:
        with av.open(str(path)) as c:
            fmt = c.format.name.split(",")[0]
            video = next((s for s in c.streams if s.type == "video"), None)
            if video is None:
                raise NotMedia("it holds no video or image stream")
            first = next(c.decode(video), None)
            if not isinstance(first, av.VideoFrame):
                raise NotMedia("not a single frame of it decodes")
            streams = [_stream(s) for s in c.streams]
            duration = float(c.duration / av.time_base) if c.duration else None
            image = fmt in IMAGE_FORMATS or (fmt != "gif" and (video.frames or 0) <= 1 and not duration
                                             and video.codec_context.name in ("png", "mjpeg", "bmp", "tiff", "webp"))
            v = streams[video.index]
            info = {"format": c.format.name, "format_long": c.format.long_name, "duration": duration,
                    "bit_rate": c.bit_rate or None, "width": first.width, "height": first.height,
                    "codec": v["codec"], "pix_fmt": v["pix_fmt"], "fps": None if image else v["fps"],
                    "frames": v["frames"], "colour": v["colour"], "streams": streams}
    except NotMedia:
        raise
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError, IndexError) as e:
        raise NotMedia(f"FFmpeg cannot read it ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    if image:
        return Probe("image", IMAGE_FORMATS.get(fmt, ".png"), True, info)
    suffix = CONTAINER_SUFFIX.get(fmt, ".mkv")
    if fmt == "mov" and "mp4" not in c.format.name:
        suffix = ".mov"
    if fmt == "matroska" and all(s["codec"] in ("vp8", "vp9", "av1", "opus", "vorbis") for s in streams
                                 if s["type"] in ("video", "audio")):
        suffix = ".webm"  # the matroska demuxer says "matroska,webm" for both
    return Probe("video", suffix, playable(suffix, streams), info)


def playable(suffix: str, streams: list[dict[str, Any]]) -> bool:
    """True when every browser plays the file as stored; else the server makes an H.264 copy to play."""
    if suffix == ".gif":
        return True
    if suffix not in BROWSER_CONTAINERS:
        return False
    for s in streams:
        if s["type"] == "video" and (s["codec"] not in BROWSER_VIDEO or s["pix_fmt"] not in ("yuv420p", "yuvj420p")):
            return False
        if s["type"] == "audio" and s["codec"] not in BROWSER_AUDIO:
            return False
    return True


def frame_at(path: Path, seconds: float = 0.0) -> np.ndarray:
    """The RGB frame shown at ``seconds`` (the first one at or after it; the last if the file ends first)."""
    for seek in (True, False):  # a seek in a single image (image2: a JPEG) finds nothing after it: read from 0
        with av.open(str(path)) as c:
            video = c.streams.video[0]  # one thread: a single frame needs no more; frame threads can hang at close
            if seek and seconds > 0 and video.time_base and int(seconds / video.time_base) > 0:
                c.seek(int(seconds / video.time_base), stream=video, backward=True)
            chosen = None
            for frame in c.decode(video):
                chosen = frame
                if frame.time is None or frame.time + 1e-6 >= seconds:
                    break
            if chosen is not None:
                return chosen.to_ndarray(format="rgb24")
    raise NotMedia("no frame decodes")


def write_thumbnail(path: Path, dst: Path, duration: float | None) -> None:
    """A JPEG ``THUMB_WIDTH`` wide of a frame a tenth of the way in (the first is often black)."""
    rgb = frame_at(path, min(duration * 0.1, 5.0) if duration else 0.0)
    height = max(1, round(rgb.shape[0] * THUMB_WIDTH / rgb.shape[1]))
    small = cv2.resize(rgb, (THUMB_WIDTH, height), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise NotMedia("its frame cannot be made a thumbnail")
    dst.write_bytes(data.tobytes())


def png_of(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def main(argv: list[str]) -> int:
    """Child entry: ``FILE THUMB``: probe FILE, write its thumbnail to THUMB, print the Probe as JSON (or
    {"error"}, exit 1). ``--frame FILE SECONDS``: that frame as PNG on stdout."""
    # No Python log callback (PyAV's default, None): with one set, a decoder thread logging while the main thread
    # frees the codec waits for the GIL that the main thread holds, and the probe hangs (seen: 1 in ~30 uploads).
    av.logging.set_level(None)
    if argv[0] == "--frame":
        try:
            sys.stdout.buffer.write(png_of(frame_at(Path(argv[1]), float(argv[2]))))
        except (NotMedia, av.error.FFmpegError) as e:
            print(json.dumps({"error": str(e)}), file=sys.stderr)
            return 1
        return 0
    src, thumb = Path(argv[0]), Path(argv[1])
    try:
        result = probe(src)
        write_thumbnail(src, thumb, result.info.get("duration"))
    except NotMedia as e:
        print(json.dumps({"error": str(e)}))
        return 1
    print(json.dumps(asdict(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
