"""Demux and decode with PyAV. Video comes out as decoded frames; audio and subtitles as their original packets,
so that the writer can copy them bit for bit."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import av

from vidsr.errors import UsageError, VidsrError
from vidsr.video.deinterlace import Deinterlacer, FrameFilter, rotation_chain

HEADER_DURATION = {"matroska", "webm", "mov", "mp4", "avi", "mxf", "asf", "flv"}
# Transport and program streams: their clock is a broadcast's, not the programme's (a usual 1.4 s offset, any offset
# a recorder started at, a wrap of the 33-bit clock that FFmpeg turns into negative times). Their timeline is read
# from the container's start, as `ffmpeg -c copy` does, so that an MP4 of a 1 s TS lasts 1 s and no frame before a
# wrap falls before 0.
TRANSPORT = {"mpegts", "mpeg", "mpegvideo"}
# FFmpeg's seek in a transport stream lands on a keyframe after the target as often as before it; seeking this far
# ahead of a cut's start (and not at all for a nearer one) leaves the decoder a keyframe to start from.
TS_PREROLL = 10.0


@dataclass
class SourceInfo:
    """What the writer and the progress bar need of the source (the decoder is the authority on the rest)."""

    time_base: Fraction
    rate: Fraction | None
    frames: int  # 0 when the container does not say
    copied: list[av.stream.Stream] = field(default_factory=list)
    stream: av.video.stream.VideoStream | None = None


AFTER_HOLE = "after_hole"  # the key set in the ``opaque`` dict of the first frame after a hole


@dataclass(frozen=True)
class Hole:
    """Frames missing from a constant-rate stream: ``frames`` of them between ``after`` and ``before`` seconds."""

    after: float
    before: float
    frames: int
    damaged: bool = False  # the decoder refused their packets (flipped bytes), rather than the file lacking them


@dataclass
class HoleFinder:
    """Finds frames a damaged container dropped, from the timestamps alone: once ``STEADY`` intervals in a row were
    the same, a gap of two or more of them followed by that interval again is a hole. A gap the stream goes on at
    is a change of frame rate (variable-rate footage: 30 fps, then 15), not damage; streams that never settle are
    never judged (their gaps are the stream's own timing)."""

    STEADY = 5
    interval: float | None = None
    steady: int = 0
    last: float | None = None
    holes: list[Hole] = field(default_factory=list)
    pending: Hole | None = None  # a gap not yet told from a change of rate: the next interval decides

    def see(self, t: float) -> bool:
        """Take the next frame's time; True when frames may have gone missing just before it (a gap; whether it
        was a hole is known at the next frame, or at ``finish``)."""
        found = False
        if self.last is not None:
            gap = t - self.last
            back = self.interval is not None and abs(gap - self.interval) <= 0.1 * self.interval
            if self.pending is not None:
                if back:  # the old rate resumed: frames were lost
                    self.holes.append(self.pending)
                else:  # the stream goes on at another rate
                    self.interval, self.steady = gap, 1
                self.pending = None
            elif self.steady >= self.STEADY and self.interval and gap > 1.5 * self.interval:
                self.pending = Hole(self.last, t, int(round(gap / self.interval)) - 1)
                found = True
            elif back:
                self.steady += 1
            elif self.steady < self.STEADY:
                self.interval, self.steady = gap, 1
        self.last = t
        return found

    def damage(self, t: float, frames: int) -> bool:
        """``frames`` damaged packets were skipped before the frame at ``t``: a hole of their own, and the gap they
        leave is not judged again from the timestamps."""
        self.holes.append(Hole(self.last if self.last is not None else t, t, frames, damaged=True))
        self.pending, self.last = None, t
        return True

    def finish(self) -> None:
        """The stream ended: a gap before its last frame counts as a hole (nothing came to say otherwise)."""
        if self.pending is not None:
            self.holes.append(self.pending)
            self.pending = None

    @property
    def lost(self) -> int:
        return sum(h.frames for h in self.holes)


@dataclass
class Splices:
    """Transport streams cut together (`cat a.ts b.ts`) start their clocks again at the join, and a muxer refuses
    times that go back ("pts < dts"). Each stream's times are moved on past where they stood, so that they keep
    increasing. Frames come out of the decoder in presentation order and packets in decoding order, so a step back of
    more than half a frame (or packet) starts a new shift for that stream."""

    last: dict[int, float] = field(default_factory=dict)
    shift: dict[int, float] = field(default_factory=dict)  # seconds added to each stream's times
    joins: int = 0  # splices found in the video stream

    def moved(self, stream: int, t: float, step: float, video: bool = False) -> float:
        """``t`` (seconds) of ``stream`` on the spliced timeline; ``step``: one frame or packet's duration."""
        shift, last = self.shift.get(stream, 0.0), self.last.get(stream)
        if last is not None and t + shift < last - max(step / 2, 1e-3):
            shift = self.shift[stream] = last + step - t
            self.joins += video
        self.last[stream] = t + shift if last is None else max(last, t + shift)
        return t + shift


def is_cover_art(stream: av.stream.Stream) -> bool:
    """A still picture attached to a file (an MP3's or M4A's cover), which demuxes as a one-frame video stream."""
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


def open_input(src: str | BinaryIO, fmt: str | None = None) -> av.container.InputContainer:
    """Open a file path or a binary stream; PyAV and FFmpeg errors become one clear sentence."""
    name = src if isinstance(src, str) else "<stdin>"
    try:
        return av.open(src, mode="r", format=fmt)
    except FileNotFoundError:
        raise UsageError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory") from None
    except PermissionError:
        raise UsageError(f"{name}: permission denied") from None
    except av.error.InvalidDataError:
        if isinstance(src, str) and _mp4_without_index(src):
            raise VidsrError(f"{name}: looks truncated: an MP4/MOV file whose index (moov box) is missing, as when "
                             "a recording is cut off before it is finalised") from None
        raise VidsrError(f"{name}: not a media file FFmpeg can read (invalid data)") from None
    except av.error.EOFError:
        raise VidsrError(f"{name}: empty or truncated before any stream header") from None
    except (av.error.FFmpegError, ValueError) as e:
        if fmt:  # the format named does not read this input
            raise UsageError(f"{name}: not readable as --input-format {fmt} ({getattr(e, 'strerror', None) or e}); "
                             "leave --input-format out for a file, FFmpeg tells its format itself") from None
        raise VidsrError(f"{name}: cannot open: {e}") from None


def _video_frames(frames: Iterable[object]) -> Iterator[av.VideoFrame]:
    """A video packet decodes to video frames; this says so to the type checker."""
    for frame in frames:
        assert isinstance(frame, av.VideoFrame)
        yield frame


def _mp4_without_index(path: str) -> bool:
    """An ISO-BMFF file (it starts with an ftyp box) whose top-level boxes hold no moov: cut off before the
    index a non-faststart MP4 writes at its end."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8 or head[4:8] != b"ftyp":
                return False
            f.seek(0)
            size_total, offset = os.fstat(f.fileno()).st_size, 0
            while offset + 8 <= size_total:
                f.seek(offset)
                box = f.read(16)
                size, kind = int.from_bytes(box[:4], "big"), box[4:8]
                if kind == b"moov":
                    return False
                if size == 1 and len(box) == 16:
                    size = int.from_bytes(box[8:16], "big")
                if size < 8:
                    break
                offset += size
            return True
    except OSError:
        return False


def video_duration(stream: av.video.stream.VideoStream) -> float | None:
    """The video stream's own duration in seconds: from the stream, or Matroska's DURATION tag."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:
        try:
            h, m, sec = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(sec)
        except ValueError:
            return None
    return None


class VideoReader:
    """Yields the video stream's decoded frames and the other streams' packets, in demux order.

    ``start``/``duration`` (seconds) cut the input; timestamps are shifted so that the cut starts at 0, for frames
    and copied packets alike, which keeps audio in sync.
    """

    def __init__(self, src: str | BinaryIO, fmt: str | None = None, start: float = 0.0,
                 duration: float | None = None, copy_audio: bool = True, copy_subtitles: bool = True,
                 threads: int = 0, deinterlace: str = "off"):
        self.name = src if isinstance(src, str) else getattr(src, "name", "<stdin>")
        self.name = self.name if isinstance(self.name, str) else "<stdin>"
        self.piped = not isinstance(src, str)
        self.container = open_input(src, fmt)
        videos = [s for s in self.container.streams.video if not is_cover_art(s)]
        if not videos:
            found = sorted({"cover art" if s.type == "video" else str(s.type) for s in self.container.streams})
            self.container.close()
            raise VidsrError(f"{self.name}: has no video stream (found: {', '.join(found or ['no streams'])})")
        self.stream = videos[0]
        cc = self.stream.codec_context
        if threads:
            cc.thread_count = threads
        cc.thread_type = "AUTO"
        kinds = (("audio",) if copy_audio else ()) + (("subtitle",) if copy_subtitles else ())
        self.copied = [s for s in self.container.streams if s.type in kinds]
        self.start, self.duration = start, duration
        formats = set(self.container.format.name.split(","))
        first = self.container.start_time
        # Seconds subtracted from every timestamp before the cut (the container's start for transport streams).
        self.transport = bool(formats & TRANSPORT)
        self.base = first / av.time_base if self.transport and first is not None else 0.0
        self.holes = HoleFinder()
        self.splices = Splices()
        self.damaged = 0  # video packets the decoder refused, skipped
        self.deinterlacer = Deinterlacer(self.stream, deinterlace) if deinterlace != "off" else None
        self.rotation: int | None = None  # degrees the display matrix turns the pictures; known at the first frame
        self.rotator: FrameFilter | None = None
        if not cc.width or not cc.height:
            raise VidsrError(f"{self.name}: video stream has no frame size (corrupt header?)")
        rate = self.stream.average_rate or self.stream.guessed_rate
        frames = int(self.stream.frames or 0)
        dur = video_duration(self.stream)
        # What the header promises for the video stream itself, to tell a truncated file from a short one.
        self.declared_end = dur
        # The whole file's duration, against which the last timestamp of any stream is checked at the end.
        # Only containers that store it in their header: elsewhere FFmpeg guesses it from the bitrate.
        trusted = bool(HEADER_DURATION & set(self.container.format.name.split(",")))
        self.container_end = (self.container.duration / av.time_base
                              if self.container.duration and trusted else None)
        if dur is None and self.container_end and not self.copied:
            dur = self.container_end
        if not frames and dur and rate:
            frames = int(round(dur * float(rate)))
        length = dur or self.container_end
        if start and length and start >= length:  # said before any work (or an estimate of it) starts
            raise UsageError(f"--start {start:g} s is past the end of {self.name} ({length:.2f} s long)")
        if frames and start and rate:  # the count (the progress bar's total, the estimate) is of what will run
            frames = max(1, frames - int(round(start * float(rate))))
        if duration is not None and rate:
            frames = min(frames or 1 << 30, int(round(duration * float(rate))))
        self.info = SourceInfo(self.stream.time_base or Fraction(1, 1000), rate, frames, self.copied, self.stream)

    def _spliced(self, stream: int, t: float, step: float, video: bool = False) -> float:
        """``t`` on the spliced timeline, for transport streams (``Splices``); as it is for other containers."""
        return self.splices.moved(stream, t, step, video) if self.transport else t

    def _offset(self, stream: av.stream.Stream) -> int:
        """Ticks of ``stream`` taken off its timestamps: the cut's start on the input's own timeline."""
        shift = self.start + self.base
        return int(round(shift / stream.time_base)) if shift and stream.time_base else 0

    def items(self) -> Iterator[av.VideoFrame | av.Packet]:
        """Decoded video frames (with pts set) interleaved with the copied streams' packets."""
        target = self.start - (TS_PREROLL if self.base or self.transport else 0.0)
        if target > 0:
            try:
                self.container.seek(int((target + self.base) * av.time_base), backward=True, any_frame=False)
            except av.error.FFmpegError:
                pass  # not seekable (a pipe): we decode from the start and drop what comes before
        end = self.start + self.duration if self.duration is not None else None
        vtb = self.stream.time_base or Fraction(1, 1000)
        voff = self._offset(self.stream)
        index, last_t, counted = 0, 0.0, 0
        self.last_any = 0.0  # the latest time any demuxed stream reached
        rate = self.info.rate or Fraction(25)
        try:
            for item in self._demuxed():
                if not isinstance(item, av.VideoFrame):
                    packet = item
                    if packet.pts is None and packet.dts is None:
                        continue  # an empty flush packet
                    tb = packet.time_base or Fraction(1, 1000)
                    raw = float(int(packet.pts if packet.pts is not None else packet.dts or 0) * tb) - self.base
                    t = self._spliced(packet.stream.index, raw, float((packet.duration or 0) * tb))
                    self.last_any = max(self.last_any, t + float((packet.duration or 0) * tb))
                    # Without --start, keep everything: AAC's priming packet has a negative timestamp.
                    if (self.start and t < self.start - 1e-6) or (end is not None and t >= end):
                        continue
                    off = self._offset(packet.stream) - int(round((t - raw) / tb))
                    if off:
                        packet.pts = None if packet.pts is None else packet.pts - off
                        packet.dts = None if packet.dts is None else packet.dts - off
                    yield packet
                    continue
                frame = item
                assert frame.pts is not None  # _demuxed numbers frames that come without one
                raw = float(frame.pts * vtb) - self.base
                t = self._spliced(self.stream.index, raw, 1 / float(rate), video=True)
                if t < self.start - 1e-6:
                    continue
                if end is not None and t >= end - 1e-6:
                    if index == 0:
                        gap = f" (its frames are {1 / float(rate):.3f} s apart)" if rate else ""
                        raise UsageError(f"no frame of {self.name} lies between {self.start:g} s and {end:g} s"
                                         f"{gap}; give a longer --duration")
                    break
                last_t = t
                lost, counted = self.damaged - counted, self.damaged
                if self.holes.damage(t, lost) if lost else self.holes.see(t):
                    frame.opaque = {AFTER_HOLE: True}  # a recurrent engine's state must not bridge the gap
                frame.pts -= voff - int(round((t - raw) / vtb))
                frame.time_base = vtb
                index += 1
                yield frame
        except av.error.InvalidDataError as e:
            if index == 0 and self.piped and "mp4" in self.container.format.name:
                raise VidsrError(f"{self.name}: an MP4 on a pipe needs its index (moov) before the media, and this "
                                 "one has it at the end: remux it with ffmpeg -movflags +faststart, or send "
                                 "Matroska or MPEG-TS") from None
            raise VidsrError(f"{self.name}: corrupt or truncated data after {index} frames ({e})") from None
        if index == 0 and self.start:
            length = self.declared_end or self.container_end
            raise UsageError(f"--start {self.start:g} s is past the end of {self.name}"
                             + (f" ({length:.2f} s long)" if length else ""))
        if index == 0:
            raise VidsrError(f"{self.name}: no video frame could be decoded (corrupt or truncated file?)")
        self.holes.finish()
        self._check_complete(last_t, index, rate, end)

    def _demuxed(self) -> Iterator[av.VideoFrame | av.Packet]:
        """Copied packets as they are, video as decoded (and deinterlaced) frames with a pts each."""
        vtb = self.stream.time_base or Fraction(1, 1000)
        rate = self.info.rate or Fraction(25)
        decoded = 0

        def numbered(frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
            nonlocal decoded
            for frame in frames:
                if frame.pts is None:
                    # Raw streams carry no timestamps: number the frames at the stream's rate.
                    frame.pts = int(round(decoded / rate / vtb))
                decoded += 1
                yield frame

        for packet in self.container.demux([self.stream, *self.copied]):
            if packet.stream.type != "video":
                yield packet
                continue
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                # A damaged packet (flipped bytes) costs its own frames, not the run: the decoder conceals what it
                # can from the next, and the frames missing show as a hole (frames_lost), as ffmpeg skips them.
                self.damaged += 1
                continue
            if self.deinterlacer is None:
                yield from self._upright(numbered(_video_frames(frames)))
            else:
                yield from self._upright(self.deinterlacer(numbered(_video_frames(frames))))
        if self.deinterlacer is not None:
            yield from self._upright(self.deinterlacer.flush())
        if self.rotator is not None:
            yield from self.rotator.flush()

    def _upright(self, frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        """Frames turned as their display matrix says (phones record sideways), decided on the first frame."""
        for frame in frames:
            if self.rotation is None:
                chain, self.rotation = rotation_chain(frame)
                self.rotator = FrameFilter(self.stream, chain) if chain else None
            if self.rotator is None:
                yield frame
            else:
                yield from self.rotator([frame])

    def _check_complete(self, last_t: float, frames: int, rate: Fraction, end: float | None) -> None:
        """FFmpeg decodes a cut-off file without complaint; compare what we got with what the header promised."""
        if end is not None:
            return
        if "mpegts" in self.container.format.name and os.path.isfile(self.name):
            size = os.path.getsize(self.name)
            if size % 188 and size % 192:  # TS packets are 188 bytes (192 in M2TS): it stops inside one
                raise VidsrError(f"{self.name}: truncated: it stops inside a transport packet ({size} bytes), "
                                 f"after {frames} frames")
        frame_time = 1 / float(rate) if rate else 0.04
        got = last_t + frame_time
        slack = max(0.5, 3 * frame_time)
        if self.declared_end is not None and got < self.declared_end - slack:
            raise VidsrError(f"{self.name}: truncated: decoded {got:.2f} s ({frames} frames) of the "
                             f"{self.declared_end:.2f} s its header declares")
        # With no duration of its own for the video, a cut-off file still shows: every stream stops well
        # before the container's declared end (a valid file with longer audio has audio up to that end).
        reached = max(got, self.last_any)
        if self.container_end is not None and reached < self.container_end - max(slack, 0.1 * self.container_end):
            raise VidsrError(f"{self.name}: truncated: its streams end at {reached:.2f} s of the "
                             f"{self.container_end:.2f} s its header declares")

    def close(self) -> None:
        self.container.close()
