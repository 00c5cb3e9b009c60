"""Encode the upscaled video, copy audio/subtitle packets untouched, and mux: to a temporary name that is renamed
only on success, or to a stream (stdout)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO

import av

from vidsr.errors import UsageError, VidsrError
from vidsr.video.colour import ColourTags
from vidsr.video.formats import VIDEO_ONLY, add_video_stream
from vidsr.video.metadata import Carried, Hdr10, copy_container, copy_stream_tags
from vidsr.video.nvenc import NVENC, nvenc_options
from vidsr.video.reader import SourceInfo

# Encoders whose quality knob is -crf and speed knob -preset.
_CRF_ENCODERS = {"libx264", "libx265", "libsvtav1", "libaom-av1", "libvpx-vp9"}
_PRESET_ENCODERS = {"libx264", "libx265", "libsvtav1"}
# Text subtitle codecs FFmpeg decodes to text that its mov_text encoder takes, and the muxers whose text is mov_text.
TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "text", "mov_text", "microdvd", "subviewer", "jacosub"}
# FFmpeg's default styles (what its SubRip decoder gives), for a track that carries none of its own.
DEFAULT_ASS_HEADER = (b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\n"
                      b"Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, "
                      b"Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, "
                      b"Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\n"
                      b"Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,1\n\n"
                      b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")
MOV_TEXT_MUXERS = {"mp4", "mov", "ipod", "3gp", "3g2", "ismv", "psp", "f4v"}


@dataclass
class EncodeOptions:
    codec: str = "libx264"
    crf: int | None = 18
    preset: str | None = "medium"
    pix_fmt: str | None = None  # None: the source's working format


def add_copy(out: av.container.OutputContainer, s: av.stream.Stream, retimed: set[int],
             carried: Carried) -> av.stream.Stream:
    """An output stream in ``out`` for the copied input stream ``s``: its packets as they are, or, for text
    subtitles the container cannot hold as they are (SRT, ASS or WebVTT into MP4), the same text as mov_text
    (``s.index`` goes into ``retimed``). A stream the container cannot hold at all is a usage error."""
    try:
        return out.add_stream_from_template(s)
    except (ValueError, av.error.FFmpegError) as e:
        why = e
    name = s.codec_context.name
    if s.type == "subtitle" and name in TEXT_SUBTITLES and out.format.name in MOV_TEXT_MUXERS:
        text: Any = out.add_stream("mov_text")  # a SubtitleStream, which the stubs do not type
        text.time_base = s.time_base
        decoder: Any = s.codec_context
        if not decoder.is_open:
            decoder.open()
        # mov_text's encoder needs the decoder's styles before the header is written, at the first packet.
        text.codec_context.subtitle_header = decoder.subtitle_header or DEFAULT_ASS_HEADER
        retimed.add(s.index)
        carried.carried.append(f"subtitles #{s.index} ({name}) as mov_text, the text subtitles {out.format.name} "
                               "holds")
        return text
    kind = "bitmap subtitles" if s.type == "subtitle" else f"{s.type}"
    raise UsageError(f"cannot copy {kind} stream #{s.index} ({name}) into {out.format.name}: {why}; choose another "
                     f"container (MKV holds it) or --no-{'audio' if s.type == 'audio' else 'subtitles'}") from None


def check_copies(muxer: str, streams: list[av.stream.Stream]) -> None:
    """The streams a run will copy, tried in a throwaway ``muxer`` container before any work: a stream it cannot
    hold is the same usage error the writer would raise after the first frame."""
    with av.open(io.BytesIO(), mode="w", format=muxer) as scratch:
        for s in streams:
            add_copy(scratch, s, set(), Carried())


class VideoWriter:
    def __init__(self, dst: str | BinaryIO, fmt: str | None, src: SourceInfo, width: int, height: int,
                 pix_fmt: str, tags: ColourTags, options: EncodeOptions, display: str | None = None,
                 source: av.container.InputContainer | None = None, cut: tuple[float, float | None] = (0.0, None),
                 hdr: Hdr10 | None = None):
        """``source`` is the input container, whose tags, chapters (cut to ``cut``: start, duration) and
        attachments are carried over; ``hdr`` the source's HDR10 metadata, handed to the encoder."""
        self.carried = Carried()
        # Messages name the output the user asked for, not the hidden partial it is written to first.
        name = display or (dst if isinstance(dst, str) else "<stdout>")
        self.name = name
        try:
            self.container = av.open(dst, mode="w", format=fmt)
        except ValueError as e:
            raise UsageError(f"{name}: unknown output format ({e})") from None
        except av.error.FFmpegError as e:
            raise VidsrError(f"{name}: cannot create output: {e}") from None
        try:
            self._add_video(src, width, height, pix_fmt, tags, options, hdr)
            muxer = self.container.format.name
            if src.stream is not None:
                copy_stream_tags(src.stream, self.video, muxer, self.carried)
            self.copies: dict[int, av.stream.Stream] = {}
            self.retimed: set[int] = set()  # text subtitles re-encoded as mov_text, the one text MP4 holds
            for s in src.copied:
                self.copies[s.index] = add_copy(self.container, s, self.retimed, self.carried)
                copy_stream_tags(s, self.copies[s.index], muxer, self.carried)
            if source is not None and muxer not in VIDEO_ONLY:
                copy_container(source, self.container, cut[0], cut[1], self.carried)
        except BaseException:
            self.container.close()
            raise

    def _add_video(self, src: SourceInfo, width: int, height: int, pix_fmt: str, tags: ColourTags,
                   o: EncodeOptions, hdr: Hdr10 | None = None) -> None:
        try:
            codec = av.codec.Codec(o.codec, "w")
        except (av.error.FFmpegError, ValueError):
            raise UsageError(f"unknown encoder {o.codec!r}") from None
        if codec.type != "video":
            raise UsageError(f"{o.codec!r} is not a video encoder")
        supported = [f.name for f in (codec.video_formats or [])]
        if supported and pix_fmt not in supported:
            raise UsageError(f"encoder {o.codec} cannot take pixel format {pix_fmt} (it takes: "
                             f"{', '.join(supported[:12])}); choose --pix-fmt or --codec")
        if pix_fmt.startswith(("yuv420", "yuv422", "nv12")) and (width % 2 or (pix_fmt.startswith("yuv420")
                                                                               and height % 2)):
            raise UsageError(f"output size {width}x{height} is odd, which {pix_fmt} cannot hold; use "
                             "--pix-fmt yuv444p or an input with even sides")
        rate = src.rate or Fraction(25)
        stream = add_video_stream(self.container, o.codec, rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # The source's time base, so that every frame keeps its exact presentation time (VFR stays VFR).
        stream.time_base = src.time_base
        cc = stream.codec_context
        cc.time_base = src.time_base
        cc.framerate = rate
        cc.color_range = tags.range
        cc.colorspace = tags.matrix
        cc.color_primaries = tags.primaries
        cc.color_trc = tags.transfer
        opts: dict[str, object] = {}
        if o.crf is not None and o.codec in _CRF_ENCODERS:
            opts["crf"] = str(o.crf)
        if o.preset and o.codec in _PRESET_ENCODERS:
            opts["preset"] = o.preset
        if o.codec == "libvpx-vp9":  # constant quality at --crf (b 0), and the speed of x264's medium, near enough
            opts |= {"b": "0", "row-mt": "1", "cpu-used": "4"}
        if o.codec in NVENC:
            opts |= nvenc_options(o.crf, o.preset)
        if o.codec == "libx265":
            # log-level: x265 otherwise prints its banner on stderr per run; hdr10: the master's ST 2086 and CLL.
            opts["x265-params"] = "log-level=error" + (f":{hdr.x265_params()}" if hdr else "")
        if hdr:
            (self.carried.carried if o.codec == "libx265" else self.carried.dropped).append(
                "HDR10 mastering display and light level" + ("" if o.codec == "libx265" else
                                                              f" ({o.codec} is not given them; use libx265)"))
        stream.options = opts
        self.video = stream
        self.tags = tags

    def write_frame(self, frame: av.VideoFrame) -> None:
        t = self.tags
        frame.color_range, frame.colorspace = t.range, t.matrix
        frame.color_primaries, frame.color_trc = t.primaries, t.transfer
        for packet in self.video.encode(frame):
            self._mux(packet)

    def write_packet(self, packet: av.Packet) -> None:
        out = self.copies.get(packet.stream.index)
        if out is None:
            return
        if packet.stream.index in self.retimed:
            self._mux_as_text(packet, out)
            return
        packet.stream = out
        self._mux(packet)

    def _mux_as_text(self, packet: av.Packet, out: Any) -> None:
        """A text subtitle packet decoded and encoded again as mov_text, at its own time and length."""
        decoder = packet.stream.codec_context
        try:
            subtitle = decoder.decode2(packet)
        except av.error.FFmpegError:
            return  # a damaged cue is dropped, as a damaged frame is; the rest of the track goes on
        if subtitle is None:
            return
        text = out.codec_context.encode_subtitle(subtitle)
        if text is None:
            return
        text.pts, text.dts, text.duration = packet.pts, packet.pts, packet.duration
        text.stream = out
        self._mux(text)

    def close(self) -> None:
        """Flush the encoder and finish the container (writes the index/trailer)."""
        for packet in self.video.encode(None):
            self._mux(packet)
        self.container.close()

    def _mux(self, packet: av.Packet) -> None:
        """Mux ``packet``; FFmpeg's refusal names the hidden partial and an errno: ours names the output and why."""
        try:
            self.container.mux(packet)
        except av.error.FFmpegError as e:
            kind = packet.stream.type
            t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
            at = f" at {t:.3f} s" if t is not None else ""
            why = e.strerror or e
            raise VidsrError(f"{self.name}: {self.container.format.name} refused a {kind} packet{at} ({why}): the "
                             f"input's {kind} timestamps repeat or go back (damaged?), or the container cannot hold "
                             f"this {kind}") from None

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - already failing; the temporary file is removed by the caller
            pass
