"""``vidsr upscale``: the main job."""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import click

from vidsr.commands.common import build_upscaler, emit_json, model_choice, model_options, processing_options
from vidsr.commands.estimate import expect
from vidsr.errors import UsageError
from vidsr.files import is_special
from vidsr.frames.image import check_complete, is_image, upscale_image
from vidsr.logs import quiet_ffmpeg
from vidsr.models.engine import Engine
from vidsr.progress import JsonProgress
from vidsr.runtime.select import RuntimeSpec
from vidsr.runtime.speed import SpeedKey, record_run
from vidsr.video.formats import (
    check_video_output,
    container,
    default_codec,
    holds_side_streams,
    is_deep_or_hdr,
    muxer_for,
)
from vidsr.video.nvenc import choose_encoder
from vidsr.video.options import check_codec_in, check_encode, encoder_preset
from vidsr.video.work import Work, work_of_file, work_of_stream
from vidsr.video.writer import EncodeOptions, check_copies


def parse_time(value: str | None) -> float | None:
    """Seconds, or [[HH:]MM:]SS(.fff)."""
    if value is None:
        return None
    try:
        parts = [float(p) for p in value.split(":")]
    except ValueError:
        raise UsageError(f"bad time {value!r}; use seconds or HH:MM:SS") from None
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + p
    if not math.isfinite(seconds):
        raise UsageError(f"bad time {value!r}; use seconds or HH:MM:SS")
    if seconds < 0:
        raise UsageError(f"bad time {value!r}: negative")
    return seconds


def assess_input(input_path: str, degradation: str):
    """--degradation auto on a file: measure it (codec, bits per pixel, noise) and say which engines suit it.
    A pipe cannot be probed ahead of the pipeline, so it gets the clean engines unless told otherwise."""
    from vidsr.degradation.detect import InputCondition, assess_image, assess_video

    if degradation != "auto":
        return None
    if is_pipe(input_path):
        return InputCondition("unknown", False, None, 0.0, "clean", "a pipe is not probed; --degradation real "
                                                                   "or heavy for compressed or noisy input")
    try:
        return assess_image(input_path) if is_image(input_path) else assess_video(input_path)
    except (av.error.FFmpegError, ValueError, IndexError):
        return None  # the pipeline reports an unreadable input with its own clear message


SEEKING_MUXERS = {"mp4", "mov", "ipod", "3gp", "3g2", "ismv", "f4v", "psp"}  # they seek back to write the index
LARGE_IMAGE = 4_000_000  # output pixels above which an image's run is long enough to announce an estimate
MIN_SENSIBLE_TILE = 64  # below this, tile overlap and per-call overhead dominate: 8 ran 50x slower


def check_output(input_path: str, output: str, codec: str, crf: int, preset: str, pix_fmt: str | None,
                 muxer: str | None, tile: int, quiet: bool) -> None:
    """Options that would only fail mid-run, with FFmpeg's words, refused up front with ours."""
    if not is_pipe(input_path) and not is_image(input_path) and output != "-" and is_image(output):
        raise UsageError(f"{output}: an image name for a video input; give a video name (.mkv, .mp4) or use "
                         "--compare/--duration on a video output")
    if not (not is_pipe(input_path) and is_image(input_path)):
        if muxer is None and output != "-" and not is_image(output):
            check_video_output(output)
        check_encode(codec, crf, preset, pix_fmt, muxer)
        check_codec_in(codec, muxer or (muxer_for(None, output) if output != "-" else None))
    if 0 < tile < MIN_SENSIBLE_TILE and not quiet:
        click.echo(f"vidsr: warning: --tile {tile} is tiny (pixels of the network's input); each tile pays for "
                   f"its overlap and a call, so this runs many times slower than --tile {MIN_SENSIBLE_TILE} or more",
                   err=True)


def is_pipe(path: str) -> bool:
    """``-`` (stdin), or a named pipe, a device or a process substitution (``<(cat x.mkv)``): read once, as a
    stream, never probed first (a probe would drain it)."""
    return path == "-" or is_special(path)


def check_paths(src: str, dst: str, overwrite: bool) -> None:
    if src != "-" and not Path(src).exists():
        raise UsageError(f"{src}: no such file")
    if src != "-" and Path(src).is_dir():
        raise UsageError(f"{src}: is a directory (use 'vidsr batch' for folders)")
    if dst == "-":
        return
    out = Path(dst)
    if out.is_dir():
        raise UsageError(f"{dst} is a directory; -o takes a file name, such as {out / 'out.mkv'}")
    if is_special(out):
        raise UsageError(f"{dst} is a device or FIFO, not a file, and -y would replace it; to write into it use "
                         f"-o - with --format and redirect: > {dst}")
    if src != "-" and (out.resolve() == Path(src).resolve() or (out.exists() and out.samefile(src))):
        raise UsageError("the output would overwrite the input; choose another -o")
    if out.exists() and not overwrite:
        raise UsageError(f"{dst} exists; add -y to overwrite it")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: output folder does not exist")


class Progress:
    """A rich progress bar on stderr, only when stderr is a terminal and --quiet is off; or, with --progress-json,
    JSON lines on stderr (vidsr.progress) for a parent that shows them."""

    def __init__(self, enabled: bool, label: str, as_json: bool = False):
        self.bar: Any = None
        self.label = label
        self.json = JsonProgress() if as_json else None
        if enabled and not as_json and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[fps]:.2f} fps"), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
        self.task: Any = None

    def start(self, info: Any) -> None:
        if self.json:
            self.json.start(info.frames or 0)
        if self.bar:
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=info.frames or None, fps=0.0)

    def frame(self, n: int) -> None:
        if self.json:
            self.json.frame(n)
        if self.bar and self.task is not None:
            task = self.bar.tasks[0]
            fps = n / task.elapsed if task.elapsed else 0.0
            self.bar.update(self.task, completed=n, fps=fps)

    def stop(self) -> None:
        if self.json:
            self.json.stop()
        if self.bar:
            self.bar.stop()


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option("-o", "--output", required=True, help="Output file, or - for stdout (then give --format).")
@model_options
@processing_options
@click.option("--input-format", default=None, help="Container of INPUT when FFmpeg cannot tell (y4m, nut).")
@click.option("-y", "--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary (to stderr when -o is -).")
@click.option("--progress-json", is_flag=True,
              help='Progress as JSON lines on stderr ({"frame", "frames", "fps"}), for scripts and the web server.')
@click.option("--dry-run", is_flag=True,
              help="Say which engine would run, on what, and about how long it would take; write nothing.")
def upscale(**params: Any) -> None:
    """Super-resolve a video (or an image) INPUT into OUTPUT.

    Audio and subtitles are copied packet for packet; every frame keeps its timestamp; colour tags are kept.
    INPUT and OUTPUT may be - for stdin/stdout. An image INPUT (png, jpg, bmp) gives an image OUTPUT.

    \b
    Examples:
      vidsr upscale samples/sample.mkv -o sample-x2.mkv
      vidsr upscale in.mp4 -o out.mp4 --model vdsr --scale 3 --crf 16
      cat in.mkv | vidsr upscale - -o - --format matroska > out.mkv
      ffmpeg -i in.mp4 -f yuv4mpegpipe - | vidsr upscale - -o - --format y4m | ffmpeg -i - out.mp4
      vidsr upscale archive.mxf -o archive-x2.mkv --deinterlace auto --codec ffv1
      vidsr upscale cctv.mp4 -o cctv-x2.mp4 --degradation heavy     # noisy, heavily compressed footage
      vidsr upscale cctv.mp4 -o raw-x2.mp4 --temporal-filter off    # each frame alone, no blending along motion
      vidsr upscale clip.mp4 -o qa.mp4 --compare split
      vidsr upscale in.mp4 -o out.mp4 --device cuda --codec hevc_nvenc --crf 20   # NVIDIA GPU: hardware encode
      vidsr upscale photo.png -o photo-x2.png
      vidsr upscale long.mp4 -o long-x2.mp4 --dry-run     # which engine, how many frames, about how long
    """
    a = UpscaleArgs(**params)
    if a.quiet:
        quiet_ffmpeg()
    muxer, _, deep = _check(a)
    condition = assess_input(a.input_path, a.degradation)
    chosen = condition.choice if condition else a.degradation
    spec = RuntimeSpec(a.runtime, a.device, a.precision, a.batch)
    video = is_pipe(a.input_path) or not is_image(a.input_path)
    upscaler, engine = build_upscaler(a.model, int(a.scale), spec=spec, tile=a.tile, ensemble=a.ensemble,
                                      degradation=chosen, video=video, quality=a.quality)
    summary: dict[str, Any] = {"input": a.input_path, "output": a.output, "model": engine.id, "scale": int(a.scale),
                               "model_choice": model_choice(a.model, engine, int(a.scale), video, a.quality),
                               "degradation": engine.degradation,
                               "degradation_choice": condition.as_dict() if condition else {"choice": chosen,
                                                                                            "reason": "asked for"},
                               "runtime": upscaler.runtime.name, "precision": upscaler.runtime.precision,
                               "device": getattr(upscaler.runtime, "device", "cpu"), "ensemble": a.ensemble}
    why = f"; input {condition.reason}: {engine.degradation} engine" if condition else ""
    image = not is_pipe(a.input_path) and is_image(a.input_path)
    if not image:
        choice = choose_encoder(a.codec, default_codec(muxer, deep), summary["device"], deep,
                                not holds_side_streams(muxer))
        if choice.note and not a.quiet:
            click.echo(f"vidsr: note: {choice.note}", err=True)
        summary["codec_choice"] = {"codec": choice.codec, "reason": choice.reason}
    if a.dry_run:
        _dry_run(a, upscaler, engine, image, summary, why)
    elif image:
        summary |= _run_image(a, upscaler, engine)
        _report(a, summary, why)
    else:
        summary |= _run_video(a, upscaler, engine, muxer, choice.codec)
        _report(a, summary, why)


@dataclass(frozen=True)
class UpscaleArgs:
    """The command line of one upscale, as click parsed it."""

    input_path: str
    output: str
    model: str
    quality: str
    scale: str
    runtime: str
    device: str
    precision: str
    tile: int
    degradation: str
    ensemble: bool
    batch: int
    codec: str | None
    crf: int
    preset: str
    pix_fmt: str | None
    fmt: str | None
    start: str | None
    duration: str | None
    no_audio: bool
    no_subtitles: bool
    deinterlace: str
    strict: bool
    temporal_filter: str
    compare: str | None
    input_format: str | None
    overwrite: bool
    quiet: bool
    as_json: bool
    progress_json: bool
    dry_run: bool


def _check(a: UpscaleArgs) -> tuple[str | None, str, bool]:
    """Every usage error that can be found before work starts; returns the muxer, the encoder asked for (or the
    CPU default) and whether the source is 10-bit or HDR."""
    check_paths(a.input_path, a.output, a.overwrite or a.dry_run)  # a dry run writes nothing: no clash
    if a.output == "-" and not a.fmt:
        raise UsageError("writing to stdout needs --format (e.g. --format matroska)")
    if a.output != "-" and not a.fmt and not Path(a.output).suffix:
        raise UsageError(f"{a.output}: no file extension to tell the container; add one or give --format")
    muxer = container(a.fmt, a.output)
    if a.output == "-" and muxer in SEEKING_MUXERS:
        raise UsageError(f"--format {a.fmt} writes its index after the media, which a pipe cannot take back; on "
                         "stdout use --format matroska, mpegts or nut")
    deep = not is_pipe(a.input_path) and not is_image(a.input_path) and is_deep_or_hdr(a.input_path)
    codec = a.codec or default_codec(muxer, deep)
    check_output(a.input_path, a.output, codec, a.crf, a.preset, a.pix_fmt, muxer, a.tile, a.quiet)
    if not is_pipe(a.input_path) and is_image(a.input_path):
        check_complete(a.input_path)  # before any probe reads it (libjpeg warns on stderr for a cut-off one)
        if a.output == "-" or not is_image(a.output):
            raise UsageError("an image INPUT needs an image OUTPUT (.png, .jpg, .bmp, ...)")
        if a.deinterlace != "off" or a.compare or a.temporal_filter == "on":
            raise UsageError("--deinterlace, --compare and --temporal-filter apply to videos, not images")
    duration = parse_time(a.duration)
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive")
    parse_time(a.start)
    return muxer, codec, deep


def _dry_run(a: UpscaleArgs, upscaler: Any, engine: Engine, image: bool, summary: dict[str, Any],
             why: str) -> None:
    """--dry-run: the engine, the work and the estimate, as --json or as lines on stderr; nothing is written."""
    if is_pipe(a.input_path):
        raise UsageError("--dry-run reads the input ahead of the run, which a pipe cannot give twice; give a file")
    work = work_of_file(a.input_path, int(a.scale), image, parse_time(a.start) or 0.0, parse_time(a.duration),
                        container(a.input_format))
    pipeline = "" if image else _pipeline(a, engine, summary["codec_choice"]["codec"])[2]
    expected, _ = expect(upscaler, engine, work, pipeline)
    summary |= {"dry_run": True, "width": work.width * work.scale, "height": work.height * work.scale,
                "estimate": expected.as_dict()}
    if a.as_json:
        emit_json(summary)
        return
    runtime = f"{summary['runtime']}/{summary['precision']}"
    click.echo(f"vidsr: would run {engine.id} x{a.scale} on {runtime}: {summary['model_choice']['reason']}{why}",
               err=True)
    click.echo(f"vidsr: {work.width}x{work.height} -> {summary['width']}x{summary['height']}, "
               f"{expected.line(engine.id, summary['runtime'], summary['precision'])}", err=True)


def _pipeline(a: UpscaleArgs, engine: Engine, codec: str) -> tuple[str | None, bool, str]:
    """The encoder preset and whether the temporal filter runs, as the options and the tier set them, and the two
    in words for the speed cache's key."""
    from vidsr.frames.motion_filter import wanted

    fast = a.quality == "fast"
    preset, steady = encoder_preset(a.preset, fast), wanted(a.temporal_filter, engine.degradation, fast)
    return preset, steady, f"{codec} {preset}, filter {'on' if steady else 'off'}"


def _announce(a: UpscaleArgs, upscaler: Any, engine: Engine, work: Work,
              pipeline: str = "") -> tuple[dict[str, Any], SpeedKey]:
    """The estimate, said on a terminal's stderr before the work starts where the run is long enough to be worth a
    line (above the progress bar, which a terminal shows too); --json and logs have it always as data."""
    expected, key = expect(upscaler, engine, work, pipeline)
    if not a.quiet and expected.worth_saying and sys.stderr.isatty():
        click.echo(f"vidsr: {expected.line(engine.id, upscaler.runtime.name, upscaler.runtime.precision)}", err=True)
    return expected.as_dict(), key


def _run_image(a: UpscaleArgs, upscaler: Any, engine: Engine) -> dict[str, Any]:
    work = work_of_file(a.input_path, int(a.scale), True, 0.0, None, None)
    expected = _announce(a, upscaler, engine, work)[0] if work.output_pixels > LARGE_IMAGE else {}
    t = time.perf_counter()
    width, height, dropped = upscale_image(a.input_path, a.output, upscaler, replace=a.overwrite)
    seconds = time.perf_counter() - t
    if dropped and not a.quiet:
        click.echo(f"vidsr: note: {a.output} cannot hold: {'; '.join(dropped)}", err=True)
    return {"frames": 1, "seconds": round(seconds, 3), "fps": round(1 / seconds, 3), "width": width,
            "height": height, "metadata": {"carried": [], "dropped": dropped}} | ({"estimate": expected}
                                                                                 if expected else {})


def _run_video(a: UpscaleArgs, upscaler: Any, engine: Engine, muxer: str | None, codec: str) -> dict[str, Any]:
    from vidsr.frames.pipeline import UpscaleJob, upscale_video

    side_streams = holds_side_streams(muxer)
    if not side_streams and not (a.no_audio and a.no_subtitles) and not a.quiet:
        click.echo(f"vidsr: note: {muxer} holds video only; audio and subtitles are left out", err=True)
    preset, steady, pipeline = _pipeline(a, engine, codec)
    progress = Progress(not a.quiet, f"{engine.id} x{a.scale} {upscaler.runtime.name}/{upscaler.runtime.precision}"
                                     f" -> {codec}", as_json=a.progress_json)
    announced: dict[str, Any] = {}

    def on_start(info: Any) -> None:
        if (copied_into := muxer_for(a.fmt, a.output)) and info.copied:
            check_copies(copied_into, info.copied)  # a stream the output cannot hold: said before any work
        announced["work"] = work_of_stream(info, int(a.scale))
        announced["estimate"], announced["key"] = _announce(a, upscaler, engine, announced["work"], pipeline)
        progress.start(info)

    src: Any = sys.stdin.buffer if a.input_path == "-" else open(a.input_path, "rb") if is_pipe(a.input_path) \
        else a.input_path  # a pipe is opened once here and read once by the run
    job = UpscaleJob(src=src,
                     dst=sys.stdout.buffer if a.output == "-" else a.output, upscaler=upscaler,
                     in_format=container(a.input_format), out_format=muxer,
                     encode=EncodeOptions(codec, a.crf, preset, a.pix_fmt), batch=a.batch,
                     start=parse_time(a.start) or 0.0, duration=parse_time(a.duration),
                     copy_audio=side_streams and not a.no_audio, copy_subtitles=side_streams and not a.no_subtitles,
                     deinterlace=a.deinterlace, compare=a.compare, on_start=on_start, on_frame=progress.frame,
                     strict=a.strict, temporal_filter=steady, replace=a.overwrite)
    try:
        stats = upscale_video(job)
    finally:
        progress.stop()
    if a.output == "-":
        sys.stdout.buffer.flush()
    if "key" in announced and not a.compare:
        record_run(announced["key"], stats.seconds, stats.frames, announced["work"].output_pixels)
    if not a.quiet and stats.carried.dropped:
        click.echo(f"vidsr: note: {a.output} cannot hold: {'; '.join(stats.carried.dropped)}", err=True)
    if not a.quiet:
        for h in stats.holes:
            what = "damaged beyond decoding, skipped" if h.damaged else "missing"
            click.echo(f"vidsr: warning: {a.input_path}: {h.frames} frame(s) {what} between {h.after:.2f} s and "
                       f"{h.before:.2f} s ({'corrupt data' if h.damaged else 'a hole in the file'}); --strict makes "
                       "this an error", err=True)
    recurrent: dict[str, Any] = {"recurrent": {"latency_frames": 0, "restarts": [{"frame": r.frame, "reason": r.reason}
                                                                  for r in stats.restarts]}} \
        if engine.arch.recurrent else {}
    recurrent["estimate"] = announced.get("estimate")
    return recurrent | {"frames": stats.frames, "seconds": round(stats.seconds, 3), "fps": round(stats.fps, 3),
            "stage_seconds": stats.clock.rounded(), "deinterlace": a.deinterlace,
            "deinterlaced_frames": stats.deinterlaced, "compare": a.compare, "frames_lost": stats.frames_lost,
            "codec": codec, "preset": preset, "bound_by": stats.clock.bound_by(), "metadata": stats.carried.as_dict(),
            "temporal_filter": {"mode": a.temporal_filter, "on": steady, "frames_filtered": stats.filtered},
            "holes": [{"after": round(h.after, 3), "before": round(h.before, 3), "frames": h.frames}
                    | ({"damaged": True} if h.damaged else {}) for h in stats.holes]}


def _report(a: UpscaleArgs, summary: dict[str, Any], why: str) -> None:
    """--json: the summary as data (stderr when stdout carries media); otherwise one line for people."""
    if a.as_json:
        from vidsr.frames.bench import peak_rss_mb

        summary["peak_rss_mb"] = round(peak_rss_mb(), 1)
        emit_json(summary, to_stderr=a.output == "-")
    elif not a.quiet and os.environ.get("VIDSR_SUMMARY", "1") != "0":
        codec = f", {summary['codec']}" if "codec" in summary else ""
        click.echo(f"vidsr: {summary['frames']} frames -> {a.output} in {summary['seconds']:.1f} s "
                   f"({summary['fps']:.2f} fps, {summary['model']} x{a.scale}, {summary['runtime']}/"
                   f"{summary['precision']}{codec}{why})", err=True)
