"""reader -> [queue] -> super-resolve -> [queue] -> writer, each in its own thread.

Memory is bounded by the queue sizes, never by the length of the video. A failure in any stage, or Ctrl-C/SIGTERM,
cancels all of them; the output goes to a temporary name and is renamed only when everything succeeded, so a
failed run leaves nothing behind.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import av

from vidsr.errors import Cancelled, VidsrError
from vidsr.files import output_file
from vidsr.frames.clock import StageClock
from vidsr.frames.device_stages import DeviceFrames
from vidsr.frames.motion_filter import MotionFilter
from vidsr.frames.recurrence import Restart
from vidsr.frames.stages import FrameUpscaler
from vidsr.frames.upscaler import Upscaler
from vidsr.video.colour import tags_of, working_format
from vidsr.video.metadata import Carried, hdr10_of
from vidsr.video.nvenc import NVENC, nvenc_pix_fmt
from vidsr.video.reader import Hole, VideoReader, is_cover_art
from vidsr.video.writer import EncodeOptions, VideoWriter

_END = object()
QUEUE_MIN = 4  # frames in flight between two stages, at least: enough to hide jitter, little memory
JOIN_SECONDS = 2.0  # how long a cancelled stage may take to notice; a signal should end a run within seconds
POLL_SECONDS = 0.1  # how often a blocked queue call looks at the cancel flag


@dataclass
class Channel:
    """A bounded queue whose blocking calls give up when the run is cancelled."""

    cancel: threading.Event
    size: int
    q: queue.Queue = field(init=False)

    def __post_init__(self) -> None:
        self.q = queue.Queue(maxsize=self.size)

    def put(self, item: Any) -> None:
        while True:
            if self.cancel.is_set():
                raise Cancelled
            try:
                self.q.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                pass

    def __iter__(self) -> Iterator[Any]:
        while True:
            if self.cancel.is_set():
                raise Cancelled
            try:
                item = self.q.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if item is _END:
                return
            yield item


@dataclass
class Stats:
    frames: int = 0
    seconds: float = 0.0
    clock: StageClock = field(default_factory=StageClock)
    deinterlaced: int = 0  # frames flagged interlaced that went through the deinterlacer
    holes: list[Hole] = field(default_factory=list)  # frames a damaged input was missing
    carried: Carried = field(default_factory=Carried)  # metadata carried over, and what the output could not hold
    filtered: int = 0  # frames the temporal filter blended with the one before
    restarts: list[Restart] = field(default_factory=list)  # where a recurrent engine's state started afresh

    @property
    def frames_lost(self) -> int:
        return sum(h.frames for h in self.holes)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


def batched(items: Iterable[Any], size: int, is_frame: Callable[[Any], bool]) -> Iterator[tuple[list, list]]:
    """Groups frames into batches of ``size``; other items (copied packets) ride along after the batch they came
    with, so nothing is reordered by more than one batch."""
    frames: list = []
    others: list = []
    for item in items:
        if is_frame(item):
            frames.append(item)
            if len(frames) == size:
                yield frames, others
                frames, others = [], []
        elif frames:
            others.append(item)
        else:
            yield [], [item]
    if frames or others:
        yield frames, others


def run_threads(source: Iterable[Any], transform: Callable[[Iterable[Any]], Iterable[Any]],
                sink: Callable[[Any], None], queue_size: int = 8, cancel: threading.Event | None = None) -> None:
    """source -> transform -> sink, one thread each (the sink on the calling thread, where signals arrive).
    The first exception anywhere cancels the others and is re-raised here.

    After a failure or a signal the stages get ``JOIN_SECONDS`` to notice ``cancel``. One still inside a long
    native call (a decoder, a huge tile) is left behind: it can write nothing the caller keeps, and the CLI
    leaves with ``os._exit`` rather than wait for it, since interpreter shutdown under a live torch thread aborts."""
    cancel = cancel or threading.Event()
    q_in, q_out = Channel(cancel, queue_size), Channel(cancel, queue_size)
    errors: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Cancelled:
                pass
            except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                errors.append(e)
                cancel.set()
        return run

    def produce() -> None:
        for item in source:
            q_in.put(item)
        q_in.put(_END)

    def process() -> None:
        for item in transform(q_in):
            q_out.put(item)
        q_out.put(_END)

    threads = [threading.Thread(target=guard(f), name=n, daemon=True)
               for f, n in ((produce, "vidsr-decode"), (process, "vidsr-infer"))]
    for t in threads:
        t.start()
    try:
        for item in q_out:
            sink(item)
    except Cancelled:
        pass
    except BaseException:
        cancel.set()
        raise
    finally:
        if errors or not all(not t.is_alive() for t in threads):
            cancel.set()
        for t in threads:
            t.join(timeout=JOIN_SECONDS if cancel.is_set() else None)
    if errors:
        raise errors[0]


@dataclass
class UpscaleJob:
    src: str | BinaryIO
    dst: str | BinaryIO  # a path, or a binary stream such as stdout
    upscaler: Upscaler
    in_format: str | None = None
    out_format: str | None = None
    encode: EncodeOptions = field(default_factory=EncodeOptions)
    batch: int = 1
    start: float = 0.0
    duration: float | None = None
    copy_audio: bool = True
    copy_subtitles: bool = True
    deinterlace: str = "off"  # off | auto | yadif | bwdif
    compare: str | None = None  # side | split
    on_start: Callable[[Any], None] | None = None  # called with the SourceInfo once the input is open
    on_frame: Callable[[int], None] | None = None  # called with the running frame count
    strict: bool = False  # frames missing from the input are an error, not a warning
    # Colour work on the model's device, batches overlapped (device_stages); None: where the model runs on CUDA.
    device_colour: bool | None = None
    temporal_filter: bool = False  # motion-compensated temporal filtering of the output (vidsr.frames.motion_filter)
    replace: bool = True  # an output that appears while the run writes (another run's) is replaced; False: kept


def upscale_video(job: UpscaleJob) -> Stats:
    stats = Stats()
    t0 = time.perf_counter()
    reader = VideoReader(job.src, job.in_format, job.start, job.duration, job.copy_audio, job.copy_subtitles,
                         deinterlace=job.deinterlace)
    info = reader.info
    if job.on_start:
        job.on_start(info)
    items = reader.items()
    held: list[Any] = []  # packets demuxed before the first frame, which tells the colour tags and layout
    first = None
    try:
        for item in items:
            if isinstance(item, av.VideoFrame):
                first = item
                break
            held.append(item)
    except BaseException:
        reader.close()
        raise
    if first is None:
        reader.close()
        raise VidsrError(f"{reader.name}: no video frame could be decoded")
    for other in reader.container.streams.video:
        if other is not info.stream and not is_cover_art(other):  # cover art is no video
            cc = other.codec_context
            stats.carried.dropped.append(f"video stream #{other.index} ({cc.name} {cc.width}x{cc.height}): vidsr "
                                         "upscales the first video stream only")
    tags = tags_of(first, info.stream)
    work_fmt = working_format(first.format.name)
    out_fmt = job.encode.pix_fmt or work_fmt
    if job.encode.codec in NVENC and not job.encode.pix_fmt:
        out_fmt = nvenc_pix_fmt(job.encode.codec, work_fmt)
        if "422" in work_fmt and "422" not in out_fmt:
            stats.carried.dropped.append(f"4:2:2 chroma ({job.encode.codec} encodes 4:2:0 on most GPUs; "
                                         "--codec libx264 keeps 4:2:2)")
    sr = FrameUpscaler(job.upscaler, work_fmt, out_fmt, tags, first.width, first.height, stats.clock, job.compare,
                       MotionFilter() if job.temporal_filter else None)

    try:
        if isinstance(job.dst, str):
            with output_file(job.dst, job.replace, keep=(job.src,) if isinstance(job.src, str) else ()) as tmp:
                _stream(job, reader, sr, held, first, items, out_fmt, tags, stats, str(tmp))
                _check_holes(job, reader, stats)  # before the rename: --strict keeps no damaged output
        else:
            _stream(job, reader, sr, held, first, items, out_fmt, tags, stats, job.dst)
            _check_holes(job, reader, stats)
    finally:
        reader.close()
    stats.seconds = time.perf_counter() - t0
    stats.deinterlaced = reader.deinterlacer.deinterlaced if reader.deinterlacer else 0
    stats.filtered = sr.motion.filtered if sr.motion else 0
    stats.restarts = list(sr.recurrence.restarts) if sr.recurrence else []
    for size, count in sr.resized.items():
        stats.carried.dropped.append(f"the frame size: {count} frame(s) of {size} scaled to the first frame's "
                                     f"{sr.width}x{sr.height} before upscaling (one stream holds one size)")
    return stats


def _check_holes(job: UpscaleJob, reader: VideoReader, stats: Stats) -> None:
    stats.holes = list(reader.holes.holes)
    if job.strict and stats.holes:
        first = stats.holes[0]
        raise VidsrError(f"{reader.name}: {stats.frames_lost} frame(s) missing (first between {first.after:.2f} s "
                         f"and {first.before:.2f} s); --strict refuses a damaged input")


def _stream(job: UpscaleJob, reader: VideoReader, sr: FrameUpscaler, held: list[Any], first: av.VideoFrame,
            items: Iterator[Any], out_fmt: str, tags: Any, stats: Stats, dst: str | BinaryIO) -> None:
    """Decode, super-resolve and encode every frame into ``dst``, then flush; the writer is aborted on failure."""
    device = getattr(sr.upscaler.runtime, "device", "cpu")
    on_device = job.device_colour if job.device_colour is not None else device.startswith("cuda")
    writer = VideoWriter(dst, job.out_format, reader.info, sr.frame_w, sr.out_h, out_fmt, tags, job.encode,
                         display=job.dst if isinstance(job.dst, str) else None, source=reader.container,
                         cut=(job.start, job.duration), hdr=hdr10_of(first))
    writer.carried.dropped[:0] = stats.carried.dropped  # what the choice of pixel format already gave up
    stats.carried = writer.carried
    if reader.rotation:
        writer.carried.carried.append(f"display rotation ({reader.rotation} degrees), applied to the pictures, "
                                      "since encoders here take no display matrix")
    try:
        def source() -> Iterator[Any]:
            yield from held
            yield first
            yield from stats.clock.timed("decode", items)

        def transform(q: Iterable[Any]) -> Iterator[Any]:
            batches = batched(q, job.batch, lambda x: isinstance(x, av.VideoFrame))
            if on_device:
                yield from DeviceFrames(sr, device).run(batches)
                return
            for frames, others in batches:
                if frames:
                    yield from sr(frames)
                yield from others

        def sink(item: Any) -> None:
            if isinstance(item, av.VideoFrame):
                with stats.clock("encode"):
                    writer.write_frame(item)
                stats.frames += 1
                if job.on_frame:
                    job.on_frame(stats.frames)
            else:
                writer.write_packet(item)

        cancel = threading.Event()
        sr.upscaler.should_stop = cancel.is_set
        run_threads(source(), transform, sink, queue_size=max(QUEUE_MIN, 2 * job.batch), cancel=cancel)
        with stats.clock("encode"):
            writer.close()  # flushes the encoder's delayed frames
    except BaseException:
        writer.abort()
        raise
