"""``vidsr bench``: how fast a model runs here, with and without the rest of the pipeline."""

from __future__ import annotations

from typing import Any

import click

from vidsr.commands.common import build_upscaler, emit_json, model_choice, model_options
from vidsr.commands.engine import parse_size
from vidsr.errors import UsageError
from vidsr.frames.motion_filter import MODES, wanted
from vidsr.models.engine import QUALITY_CAPS, Engine
from vidsr.runtime.openvino_rt import openvino_version
from vidsr.runtime.select import CPU_RUNTIMES, RUNTIMES, SUPPORTED, RuntimeSpec


@click.command()
@model_options(runtimes=(*RUNTIMES, "all"), qualities=(*QUALITY_CAPS, "all"))
@click.option("--size", default="960x540", show_default=True, help="Source frame size WxH (output is SCALE times).")
@click.option("--frames", type=click.IntRange(1, 10000), default=8, show_default=True, help="Frames to time.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Frames per inference call.")
@click.option("--codec", default="libx264", show_default=True,
              help="Encoder for the end-to-end run (h264_nvenc, hevc_nvenc, av1_nvenc on an NVIDIA GPU).")
@click.option("--preset", default="auto", show_default=True,
              help="Encoder preset for the end-to-end run (auto: veryfast with --quality fast, else medium, as "
                   "upscale).")
@click.option("--fps", "rate", type=click.FloatRange(min=0.1), default=25.0, show_default=True,
              help="Frame rate of the footage that --quality all's hour estimate is for.")
@click.option("--temporal-filter", type=click.Choice(MODES), default="auto", show_default=True,
              help="The end-to-end run filters the output along the motion as upscale does (auto: with engines "
                   "for degraded input, --degradation real or heavy).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(model: str, quality: str, scale: str, runtime: str, device: str, precision: str, tile: int, degradation: str,
          size: str, frames: int, batch: int, codec: str, preset: str, rate: float, temporal_filter: str,
          as_json: bool) -> None:
    """Inference-only fps, end-to-end fps (decode + upscale + encode), their ratio, GFLOP/s, peak RSS and time per
    stage, all from one run on a generated clip.

    \b
    Examples:
      vidsr bench --model edsr --scale 2 --size 960x540 --frames 8
      vidsr bench --model vdsr --runtime onnx --json
      vidsr bench --model edsr --runtime all --size 320x180     # every CPU runtime here, side by side
      vidsr bench --model edsr --device cuda --codec h264_nvenc --frames 96   # GPU: network alone vs end to end
      vidsr bench --degradation heavy --temporal-filter off   # the heavy engine without the temporal filter
      vidsr bench --quality all --degradation heavy --size 768x432 --fps 12.5   # the tiers, and an hour of CCTV
    """
    from vidsr.frames.bench import run_bench

    if quality == "all" and (runtime == "all" or model != "auto"):
        raise UsageError("--quality all compares auto's engine of each tier; leave out --model and --runtime all")
    if runtime == "all":
        _bench_all(model, int(scale), device, precision, tile, degradation, parse_size(size), frames, batch, codec,
                   preset, temporal_filter, as_json)
        return
    spec = RuntimeSpec(runtime, device, precision, batch)
    if quality == "all":
        _bench_tiers(int(scale), spec, tile, degradation, parse_size(size), frames, codec, preset, temporal_filter,
                     rate, as_json)
        return
    upscaler, engine = build_upscaler(model, int(scale), spec=spec, tile=tile, degradation=degradation, video=True,
                                      quality=quality)
    r = run_bench(upscaler, engine, parse_size(size), frames, batch, *_pipeline(engine, quality, codec, preset,
                                                                                temporal_filter))
    r["model_choice"] = model_choice(model, engine, int(scale), video=True, quality=quality)
    if as_json:
        emit_json(r)
        return
    click.echo(f"{r['model']} x{r['scale']} {r['size']} -> {r['output_size']}, {r['runtime']}/{r['precision']}, "
               f"{r['threads']} threads, {r['cpu']}")
    click.echo(f"  engine          {r['model_choice']['reason']}")
    click.echo(f"  inference only  {r['infer_fps']:.4f} fps ({r['seconds_per_frame_infer']:.2f} s/frame, "
               f"{r['gflops']:.1f} GFLOP/s of {r['gflop_per_frame']:.0f} GFLOP/frame)")
    steady = ", temporal filter" if r["temporal_filter"] else ""
    click.echo(f"  end to end      {r['e2e_fps']:.4f} fps (overhead ratio {r['overhead_ratio']:.3f}, {r['codec']}"
               f"{steady})")
    if "network_fps" in r:
        click.echo(f"  network alone   {r['network_fps']:.4f} fps (end to end is {r['e2e_over_network']:.2f}x of it)")
    click.echo("  stage busy time " + ", ".join(f"{k} {v:.2f} s" for k, v in r["stage_seconds"].items()))
    click.echo(f"  bounded by      the {r['bound_by']['thread']} thread ({r['bound_by']['stage']}); x264 preset "
               f"{r['preset']}")
    click.echo(f"  peak RSS        {r['peak_rss_mb']:.0f} MB")


def _pipeline(engine: Engine, quality: str, codec: str, preset: str, temporal_filter: str) -> tuple[Any, bool]:
    """The encode options and whether to filter, as upscale sets them up for ``engine`` at ``quality``."""
    from vidsr.video.options import encoder_preset
    from vidsr.video.writer import EncodeOptions

    fast = quality == "fast"
    return EncodeOptions(codec, 18, encoder_preset(preset, fast), None), wanted(temporal_filter, engine.degradation,
                                                                                fast)


def _bench_all(model: str, scale: int, device: str, precision: str, tile: int, degradation: str,
               size: tuple[int, int], frames: int, batch: int, codec: str, preset: str, temporal_filter: str,
               as_json: bool) -> None:
    """Every CPU runtime installed here on the same clip, one after another in one process, so that their ratios
    hold for this machine at this moment. Each runs its own best precision unless --precision names one."""
    from vidsr.frames.bench import run_bench

    if device == "cuda":
        raise UsageError("--runtime all measures the CPU runtimes; leave out --device cuda")
    runs = []
    for name in CPU_RUNTIMES:
        if name == "openvino" and openvino_version() is None:
            continue
        chosen = precision if precision == "auto" or precision in SUPPORTED[name] else "auto"
        upscaler, engine = build_upscaler(model, scale, spec=RuntimeSpec(name, "cpu", chosen, batch), tile=tile,
                                          degradation=degradation, video=True)
        runs.append(run_bench(upscaler, engine, size, frames, batch, *_pipeline(engine, "best", codec, preset,
                                                                                temporal_filter)))
    best = min(runs, key=lambda r: r["seconds_per_frame_infer"])
    default = RuntimeSpec("auto", "cpu").resolve().runtime
    for r in runs:
        r["vs_fastest"] = round(r["seconds_per_frame_infer"] / best["seconds_per_frame_infer"], 3)
    if as_json:
        emit_json({"runs": runs, "fastest": best["runtime"], "auto": default})
        return
    first = runs[0]
    click.echo(f"{first['model']} x{first['scale']} {first['size']} -> {first['output_size']}, {first['threads']} "
               f"threads, {first['cpu']}; auto runs {default}")
    click.echo(f"  {'runtime':<18}{'infer s/frame':>14}{'e2e fps':>10}{'e2e/infer':>11}{'vs fastest':>12}")
    for r in runs:
        click.echo(f"  {r['runtime'] + '/' + r['precision']:<18}{r['seconds_per_frame_infer']:>14.3f}"
                   f"{r['e2e_fps']:>10.3f}{r['overhead_ratio']:>11.3f}{r['vs_fastest']:>11.2f}x")


def _bench_tiers(scale: int, spec: RuntimeSpec, tile: int, degradation: str, size: tuple[int, int], frames: int,
                 codec: str, preset: str, temporal_filter: str, rate: float, as_json: bool) -> None:
    """``--quality all``: auto's engine of each tier on the same clip, one after another in one process, with its
    measured quality under degradation and how long an hour of ``size`` footage at ``rate`` fps would take."""
    from vidsr.frames.bench import run_bench
    from vidsr.runtime.speed import duration_text

    runs, seen = [], {}
    for tier in QUALITY_CAPS:
        upscaler, engine = build_upscaler("auto", scale, spec=spec, tile=tile, degradation=degradation, video=True,
                                          quality=tier)
        key = (engine.id, tier == "fast")  # two tiers that run one engine the same way share its run
        if key not in seen:
            seen[key] = run_bench(upscaler, engine, size, frames, 1, *_pipeline(engine, tier, codec, preset,
                                                                                temporal_filter))
        hour = 3600 * rate / seen[key]["e2e_fps"]
        runs.append(seen[key] | {"quality": tier, "quality_db": quality_of(engine, scale),
                                       "hour_of_footage_seconds": round(hour, 1)})
    if as_json:
        emit_json({"tiers": runs, "fps_of_footage": rate})
        return
    first = runs[0]
    click.echo(f"x{scale} {first['size']} -> {first['output_size']}, {first['threads']} threads, {first['cpu']}; "
               f"one hour at {rate:g} fps = {round(3600 * rate):,} frames")
    click.echo(f"  {'tier':<9}{'engine':<28}{'runtime':<15}{'e2e fps':>9}{'infer fps':>10}{'an hour takes':>15}"
               "   Set14 dB over bicubic")
    for r in runs:
        q = r["quality_db"]
        said = f"{q['gain_db']:+.3f} ({q['under']})" if q else "not measured"
        click.echo(f"  {r['quality']:<9}{r['model']:<28}{r['runtime'] + '/' + r['precision']:<15}{r['e2e_fps']:>9.3f}"
                   f"{r['infer_fps']:>10.3f}{duration_text(r['hour_of_footage_seconds']):>15}   {said}")


def quality_of(engine: Engine, scale: int) -> dict[str, Any] | None:
    """The engine's measured Set14 gain over bicubic at ``scale``: under its own degradation (the manifest's eval
    under the curve's spec) for engines made for degraded input, on clean bicubic input otherwise."""
    raw = engine.manifest.raw
    tables = raw.get("eval_degraded", {}) if engine.degradation != "clean" else {"clean": raw.get("eval", {})}
    for under, table in tables.items():
        row = table.get("Set14", {}).get(str(scale))
        if row and row.get("bicubic_psnr") is not None:
            return {"dataset": "Set14", "under": under, "gain_db": round(row["psnr"] - row["bicubic_psnr"], 3)}
    return None
