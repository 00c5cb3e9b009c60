"""What an archive file carries besides its pictures and sound, carried into the output: stream languages,
titles and dispositions, the container's tags and chapters, attachments (fonts, cover art), and HDR10 mastering
metadata. Whatever the output container cannot hold is named in a ``Carried`` record, said once on stderr and
reported in ``--json``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av

# Tags FFmpeg computes for the file it reads (Matroska statistics, muxer names): wrong once we re-encode.
_STALE = {"duration", "bps", "number_of_frames", "number_of_bytes", "encoder", "_statistics_writing_app",
          "_statistics_writing_date_utc", "_statistics_tags", "major_brand", "minor_version", "compatible_brands",
          "creation_time", "handler_name", "vendor_id"}
CHAPTERS = {"matroska", "webm", "mp4", "mov", "ipod", "nut", "ogg"}
ATTACHMENTS = {"matroska"}
CONTAINER_TAGS = {"matroska", "webm", "mp4", "mov", "ipod", "nut", "ogg", "mpegts", "avi", "asf"}
HDR_CODECS = {"libx265": "x265-params"}


@dataclass
class Carried:
    """What came through and what the output could not hold, by name ("chapters", "attachment font.ttf", ...)."""

    carried: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"carried": self.carried, "dropped": self.dropped}


def fresh_tags(tags: dict[str, str]) -> dict[str, str]:
    """A stream's or container's tags without the ones FFmpeg computed for the old encode."""
    return {k: v for k, v in tags.items() if k.lower() not in _STALE and not k.lower().startswith("_statistics")}


def copy_stream_tags(src: av.stream.Stream, dst: av.stream.Stream, muxer: str, carried: Carried) -> None:
    """Language, title and other tags, and the dispositions (default, forced, hearing impaired, comment...)."""
    tags = fresh_tags(dict(src.metadata))
    dst.metadata.update(tags)
    if src.disposition:
        dst.disposition = src.disposition
    what = ", ".join(f"{k}={v}" for k, v in tags.items() if k in ("language", "title"))
    label = f"{src.type} #{src.index}" + (f" ({what})" if what else "")
    if tags or src.disposition:
        (carried.dropped if muxer == "yuv4mpegpipe" else carried.carried).append(f"tags of {label}")


def copy_container(src: av.container.InputContainer, dst: av.container.OutputContainer, start: float,
                   duration: float | None, carried: Carried) -> None:
    """The container's tags and chapters (shifted and cut to --start/--duration), and its attachments."""
    muxer = dst.format.name.split(",")[0]
    tags = fresh_tags(dict(src.metadata))
    if tags:
        if muxer in CONTAINER_TAGS:
            dst.metadata.update(tags)
            carried.carried.append("container tags (" + ", ".join(sorted(tags)) + ")")
        else:
            carried.dropped.append(f"container tags ({muxer} holds none)")
    chapters = _cut_chapters(src.chapters(), start, duration)
    if chapters:
        if muxer in CHAPTERS:
            dst.set_chapters(chapters)
            carried.carried.append(f"{len(chapters)} chapters")
        else:
            carried.dropped.append(f"{len(chapters)} chapters ({muxer} holds none)")
    for s in src.streams:
        if s.type != "attachment":
            continue
        name = getattr(s, "name", None) or s.metadata.get("filename", f"attachment{s.index}")
        if muxer in ATTACHMENTS:
            mimetype = getattr(s, "mimetype", None) or s.metadata.get("mimetype", "application/octet-stream")
            dst.add_attachment(name=name, mimetype=mimetype, data=bytes(getattr(s, "data", b"") or b""))
            carried.carried.append(f"attachment {name}")
        else:
            carried.dropped.append(f"attachment {name} ({muxer} holds no attachments)")


def _cut_chapters(chapters: list[Any], start: float, duration: float | None) -> list[Any]:
    end = start + duration if duration is not None else None
    out = []
    for ch in chapters:
        tb = ch["time_base"]
        a, b = float(ch["start"] * tb), float(ch["end"] * tb)
        if b <= start or (end is not None and a >= end):
            continue
        a, b = max(a, start) - start, (min(b, end) if end is not None else b) - start
        ms = Fraction(1, 1000)
        out.append({"id": ch["id"], "start": int(round(a * 1000)), "end": int(round(b * 1000)), "time_base": ms,
                    "metadata": dict(ch.get("metadata", {}))})
    return out


@dataclass(frozen=True)
class Hdr10:
    """SMPTE ST 2086 mastering display (primaries and white point in 0.00002 units, luminance in 0.0001 cd/m2,
    as x265 takes them) and the content light level (MaxCLL, MaxFALL in cd/m2)."""

    primaries: tuple[int, int, int, int, int, int] | None = None  # G, B, R (x, y) as x265 orders them
    white: tuple[int, int] | None = None
    luminance: tuple[int, int] | None = None  # (max, min)
    max_cll: tuple[int, int] | None = None

    def x265_params(self) -> str:
        parts = ["hdr10=1", "repeat-headers=1"]
        if self.primaries and self.white and self.luminance:
            g, b, r = self.primaries[0:2], self.primaries[2:4], self.primaries[4:6]
            parts.append(f"master-display=G({g[0]},{g[1]})B({b[0]},{b[1]})R({r[0]},{r[1]})"
                         f"WP({self.white[0]},{self.white[1]})L({self.luminance[0]},{self.luminance[1]})")
        if self.max_cll:
            parts.append(f"max-cll={self.max_cll[0]},{self.max_cll[1]}")
        return ":".join(parts)


def hdr10_of(frame: av.VideoFrame) -> Hdr10 | None:
    """HDR10 metadata of a decoded frame's side data (FFmpeg's AVMasteringDisplayMetadata and
    AVContentLightMetadata structs), or None when it carries neither."""
    mastering = cll = None
    entries: list[Any] = list(frame.side_data)  # iterating yields the SideData entries themselves
    for sd in entries:
        name = getattr(sd.type, "name", str(sd.type))
        raw = bytes(sd)
        if name == "MASTERING_DISPLAY_METADATA" and len(raw) >= 88:
            v = struct.unpack("<20i2i", raw[:88])
            q = [Fraction(v[i], v[i + 1]) if v[i + 1] else Fraction(0) for i in range(0, 20, 2)]
            has_primaries, has_luminance = v[20], v[21]
            if has_primaries and has_luminance:
                # FFmpeg stores R, G, B; x265 wants G, B, R, in units of 0.00002; luminance in 0.0001 cd/m2.
                (rx, ry), (gx, gy), (bx, by) = (q[0], q[1]), (q[2], q[3]), (q[4], q[5])
                c = [round(float(x) * 50000) for x in (gx, gy, bx, by, rx, ry)]
                mastering = (tuple(c), (round(float(q[6]) * 50000), round(float(q[7]) * 50000)),
                             (round(float(q[9]) * 10000), round(float(q[8]) * 10000)))
        elif name == "CONTENT_LIGHT_LEVEL" and len(raw) >= 8:
            cll = struct.unpack("<2I", raw[:8])
    if mastering is None and cll is None:
        return None
    return Hdr10(mastering[0] if mastering else None, mastering[1] if mastering else None,  # type: ignore[arg-type]
                 mastering[2] if mastering else None, cll)
