"""``vidsr bench``: how fast a model runs here, with and without the rest of the pipeline."""

from __future__ import annotations

import click

from vidsr.commands.common import build_upscaler, emit_json, model_options
from vidsr.commands.engine import parse_size
from vidsr.runtime.select import RuntimeSpec


@click.command()
@model_options
@click.option("--size", default="960x540", show_default=True, help="Source frame size WxH (output is SCALE times).")
@click.option("--frames", type=click.IntRange(1, 10000), default=8, show_default=True, help="Frames to time.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Frames per inference call.")
@click.option("--codec", default="libx264", show_default=True, help="Encoder for the end-to-end run.")
@click.option("--preset", default="medium", show_default=True, help="Encoder preset for the end-to-end run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(model: str, scale: str, runtime: str, device: str, precision: str, tile: int, degradation: str,
          size: str, frames: int,
          batch: int, codec: str, preset: str, as_json: bool) -> None:
    """Inference-only fps, end-to-end fps (decode + upscale + encode), their ratio, GFLOP/s, peak RSS and time per
    stage, all from one run on a generated clip.

    \b
    Examples:
      vidsr bench --model edsr --scale 2 --size 960x540 --frames 8
      vidsr bench --model vdsr --runtime onnx --json
    """
    from vidsr.bench import run_bench
    from vidsr.video.writer import EncodeOptions

    upscaler, engine = build_upscaler(model, int(scale), spec=RuntimeSpec(runtime, device, precision, batch),
                                      tile=tile, degradation=degradation)
    r = run_bench(upscaler, engine, parse_size(size), frames, batch, EncodeOptions(codec, 18, preset, None))
    if as_json:
        emit_json(r)
        return
    click.echo(f"{r['model']} x{r['scale']} {r['size']} -> {r['output_size']}, {r['runtime']}/{r['precision']}, "
               f"{r['threads']} threads, {r['cpu']}")
    click.echo(f"  inference only  {r['infer_fps']:.4f} fps ({r['seconds_per_frame_infer']:.2f} s/frame, "
               f"{r['gflops']:.1f} GFLOP/s of {r['gflop_per_frame']:.0f} GFLOP/frame)")
    click.echo(f"  end to end      {r['e2e_fps']:.4f} fps (overhead ratio {r['overhead_ratio']:.3f})")
    click.echo("  stage busy time " + ", ".join(f"{k} {v:.2f} s" for k, v in r["stage_seconds"].items()))
    click.echo(f"  peak RSS        {r['peak_rss_mb']:.0f} MB")
