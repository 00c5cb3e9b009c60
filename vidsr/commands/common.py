"""What several commands share: choosing an engine and a runtime, and printing JSON."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from vidsr.errors import UsageError
from vidsr.frames.upscaler import Upscaler
from vidsr.models.engine import DEFAULT_QUALITY, DEGRADATIONS, QUALITY_CAPS, Engine, find_engine, tier_cap
from vidsr.models.flops import gflop_per_output_mp
from vidsr.runtime.select import DEVICES, PRECISIONS, RUNTIMES, RuntimeSpec, make_runtime

DEFAULT_MODEL = "auto"
DEFAULT_SPEC = RuntimeSpec()  # every choice auto


def model_options(fn=None, *, runtimes: tuple[str, ...] = RUNTIMES, qualities: tuple[str, ...] = tuple(QUALITY_CAPS)):
    """--model/--scale/--device/--precision/--tile, the same on every command that runs a model. ``runtimes`` and
    ``qualities``: the --runtime and --quality choices (``vidsr bench`` adds ``all`` to both)."""
    if fn is None:
        return lambda f: model_options(f, runtimes=runtimes, qualities=qualities)
    for option in reversed([
        click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True,
                     help="Model family (edsr, vdsr, srcnn, mdsr) or engine id; see 'vidsr models'. auto: the "
                          "shipped engine that measures best at the scale (marked there)."),
        click.option("--quality", type=click.Choice(qualities), default=DEFAULT_QUALITY, show_default=True,
                     help="What auto trades for speed: fast (a tenth of EDSR-baseline's cost or less: batches of "
                          "footage), balanced (the 16-block engines), best (whatever measures best). A tier "
                          "without an engine at the scale runs the cheapest engine there." + (
                              " all: each tier's engine side by side, with the time for an hour of footage."
                              if "all" in qualities else "")),
        click.option("--scale", "-s", type=click.Choice(["2", "3", "4"]), default="2", show_default=True,
                     help="Upscaling factor."),
        click.option("--runtime", type=click.Choice(runtimes), default="auto", show_default=True,
                     help="auto: tensorrt on a CUDA GPU with tensorrt installed, then torch on CUDA; on a CPU "
                          "openvino (the fastest measured), else torch." + (
                              " all: every runtime this machine has, side by side." if "all" in runtimes else "")),
        click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
                     help="auto: CUDA when available."),
        click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
                     help="auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; int8 (OpenVINO) where the "
                          "engine ships an int8 graph that measured at least 1.5x as fast on this CPU kind and "
                          "within 0.1 dB ('int8 here' in vidsr models)."),
        click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Tile side in pixels of the network's input (the output size for VDSR/SRCNN, the input "
                          "size for EDSR/MDSR; 0: whole frames, tiled by itself when memory demands). Bounds "
                          "memory; below 64 it gets very slow."),
        click.option("--degradation", type=click.Choice(("auto", *DEGRADATIONS)), default="auto",
                     show_default=True,
                     help="Which engines: clean (sharp, lossless sources), real (trained on compressed, "
                          "slightly noisy footage) or heavy (heavily compressed, noisy footage such as CCTV "
                          "recorders'; the real engine where a scale has no heavy one). auto: upscale measures the "
                          "input (H.264 QP, JPEG quality or bits per pixel, and noise) and picks; eval measures "
                          "each input once degraded; bench uses clean."),
    ]):
        fn = option(fn)
    return fn


def processing_options(fn):
    """What ``upscale`` and ``batch`` both take about the work on each video."""
    from vidsr.frames.motion_filter import MODES as TEMPORAL_MODES
    from vidsr.video.compare import MODES as COMPARE_MODES
    from vidsr.video.deinterlace import MODES as DEINTERLACE_MODES

    for option in reversed([
        click.option("--ensemble", is_flag=True, help="Geometric self-ensemble (8 flips/rotations): better, 8x "
                                                      "slower."),
        click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Frames per inference call."),
        click.option("--codec", default=None,
                     help="Video encoder: libx264, libx265 (10-bit/HDR sources), ffv1, rawvideo (y4m), "
                          "h264_nvenc, hevc_nvenc, av1_nvenc, ... [auto: NVENC when the model runs on CUDA and "
                          "NVENC starts, else libx264 (libx265 for 10-bit/HDR)]."),
        click.option("--crf", type=click.IntRange(0, 63), default=18, show_default=True,
                     help="Quality for x264/x265/AV1; NVENC's constant-quality level (cq) the same."),
        click.option("--preset", default="auto", show_default=True,
                     help="Encoder speed preset (x264's names; NVENC maps them to p1-p7 or takes p1-p7). auto: "
                          "veryfast with --quality fast, whose engines medium cannot keep up with; else medium."),
        click.option("--pix-fmt", default=None, help="Output pixel format [as the input: yuv420p, yuv420p10le, "
                                                     "...]."),
        click.option("--format", "fmt", default=None,
                     help="Output container: matroska, nut, mpegts, y4m, mp4, ... (needed for -o -)."),
        click.option("--start", default=None, help="Start at this time (seconds or HH:MM:SS)."),
        click.option("--duration", default=None, help="Process only this long."),
        click.option("--no-audio", is_flag=True, help="Drop audio streams (they are copied untouched otherwise)."),
        click.option("--no-subtitles", is_flag=True, help="Drop subtitle streams."),
        click.option("--deinterlace", type=click.Choice(DEINTERLACE_MODES), default="off", show_default=True,
                     is_flag=False, flag_value="auto",
                     help="Alone or auto: bwdif on frames flagged interlaced; yadif/bwdif: on every frame."),
        click.option("--strict", is_flag=True,
                     help="Frames missing from a damaged input (a hole in the container) are an error, and no "
                          "output is kept; by default each hole is reported and the run goes on."),
        click.option("--temporal-filter", type=click.Choice(TEMPORAL_MODES), default="auto", show_default=True,
                     help="Blend each output frame with the last along the input's motion where the motion "
                          "explains the picture: steadier, less codec noise. auto: on for engines made for "
                          "degraded input (real, heavy), off for clean ones and with --quality fast (the filter "
                          "costs more than a fast engine)."),
        click.option("--compare", type=click.Choice(COMPARE_MODES), default=None,
                     help="Write a QA view instead: bicubic | model side by side, or split at the middle."),
    ]):
        fn = option(fn)
    return fn


def build_upscaler(model: str, scale: int, *, spec: RuntimeSpec = DEFAULT_SPEC, tile: int = 0,
                   ensemble: bool = False, degradation: str = "clean", video: bool = False,
                   quality: str = DEFAULT_QUALITY) -> tuple[Upscaler, Engine]:
    """The engine for ``model`` at ``scale`` (of the ``degradation`` kind; ``video``: for a video, where auto may
    run a recurrent engine; ``quality``: auto's tier) on the backend ``spec`` resolves to."""
    engine = find_engine(model, scale, degradation="clean" if degradation == "auto" else degradation,
                         video=video and not ensemble, quality=quality)
    if ensemble and engine.arch.recurrent:
        raise UsageError(f"--ensemble: {engine.id} carries its state from frame to frame, which flipped and "
                         "rotated copies of a frame cannot share; leave --ensemble off or pick a single-frame model")
    rt, max_input = make_runtime(engine, scale, spec, log=lambda line: click.echo(f"vidsr: {line}", err=True))
    return Upscaler(engine.arch, scale, rt, tile=tile, features=engine.features, ensemble=ensemble,
                    max_input=max_input), engine


def model_choice(model: str, engine: Engine, scale: int, video: bool,
                 quality: str = DEFAULT_QUALITY) -> dict[str, Any]:
    """Which engine ran and why, for --json: auto's reasoning for a video (multi-frame or single-frame), else what
    was asked for; a tier other than best is named."""
    from vidsr.models.engine import AUTO, in_tier, list_engines, video_choice

    if model != AUTO:
        return {"engine": engine.id, "multi_frame": engine.arch.recurrent, "reason": f"--model {model}"}
    tier = in_tier(list_engines(), scale, quality)
    if not video:
        why = "the best-measured single-frame engine for this input (images keep single-frame engines)"
    elif engine.arch.recurrent:
        single = find_engine(AUTO, scale, degradation=engine.degradation, quality=quality)
        why = video_choice(tier, scale, single)[1]
    else:
        why = video_choice(tier, scale, engine)[1]
    cap = tier_cap(quality, scale)
    if cap is not None:
        within = gflop_per_output_mp(engine, scale) <= cap
        why += (f"; --quality {quality}: engines of {cap:g} GFLOP per output MP or less" if within else
                f"; --quality {quality}: no engine within {cap:g} GFLOP per output MP at x{scale}, so the cheapest")
    return {"engine": engine.id, "multi_frame": engine.arch.recurrent, "reason": why, "quality": quality}


def emit_json(obj: dict[str, Any], to_stderr: bool = False) -> None:
    """One JSON object on one line; on stderr when stdout carries media."""
    stream = sys.stderr if to_stderr else sys.stdout
    stream.write(json.dumps(obj) + "\n")
    stream.flush()
