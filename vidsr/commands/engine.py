"""``vidsr engine build|list|clear``: compiled forms of the shipped engines (ONNX graphs, TensorRT plans)."""

from __future__ import annotations

import re
from typing import Any

import click

from vidsr.commands.common import emit_json
from vidsr.errors import UsageError


def parse_size(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", value.strip())
    if not m or int(m[1]) < 1 or int(m[2]) < 1:
        raise UsageError(f"bad size {value!r}; use WIDTHxHEIGHT, e.g. 1920x1080")
    return int(m[1]), int(m[2])


@click.group("engine")
def engine_group() -> None:
    """Build, list and clear compiled engines in the cache ($VIDSR_CACHE or ~/.cache/vidsr); quantise an engine to
    int8 (into its own folder, with its measurements).

    \b
    Examples:
      vidsr engine build --model edsr --scale 2 --runtime onnx
      vidsr engine build --model vdsr --scale 2 --runtime tensorrt --precision fp16 --max-size 1920x1080 --batch 2
      vidsr engine list
      vidsr engine clear --kind tensorrt
      vidsr engine quantize -m repnet-x2-heavy --data ../shared/data
    """


@engine_group.command("build")
@click.option("--model", "-m", default="auto", show_default=True,
              help="Model family or engine id; auto: the engine that measures best at the scale.")
@click.option("--scale", "-s", type=click.Choice(["2", "3", "4"]), default="2", show_default=True)
@click.option("--runtime", type=click.Choice(["onnx", "tensorrt"]), default="onnx", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "fp16"]), default="auto", show_default=True,
              help="TensorRT plan precision (auto: fp16). ONNX graphs are fp32.")
@click.option("--max-size", default="1920x1080", show_default=True,
              help="Largest source frame (WxH) a TensorRT plan takes whole; larger frames are tiled.")
@click.option("--batch", type=click.IntRange(1, 64), default=1, show_default=True, help="Largest batch of the plan.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def build(model: str, scale: str, runtime: str, precision: str, max_size: str, batch: int, as_json: bool) -> None:
    """Export the ONNX graph (checked against torch under ONNX Runtime), and for tensorrt build the plan."""
    from vidsr.models.engine import find_engine
    from vidsr.runtime.cache import ONNX_TOLERANCE
    from vidsr.runtime.onnx_rt import onnx_for
    from vidsr.runtime.select import RuntimeSpec, make_runtime

    s = int(scale)
    # The same spec and the same make_runtime as upscale: what is built here is what a run would load.
    spec = RuntimeSpec(runtime, "auto", precision, batch, parse_size(max_size)).resolve()
    engine = find_engine(model, s)
    rt, _ = make_runtime(engine, s, spec, log=lambda line: click.echo(f"vidsr: {line}", err=True))
    onnx_path, diff = onnx_for(engine, s)  # cached by make_runtime: a lookup here
    result: dict[str, Any] = {"model": engine.id, "scale": s, "onnx": str(onnx_path), "max_abs_diff": diff,
                              "tolerance": ONNX_TOLERANCE, "runtime": runtime, "precision": spec.precision}
    if runtime == "tensorrt":
        result |= {"plan": str(getattr(rt, "plan")), "built": getattr(rt, "built"),  # noqa: B009
                   "profile": getattr(rt, "profile").facts()}  # noqa: B009
    if as_json:
        emit_json(result)
        return
    click.echo(f"{engine.id} x{s}: ONNX {onnx_path} (max |torch - ONNX Runtime| = {diff:.2e}, "
               f"limit {ONNX_TOLERANCE:g})")
    if runtime == "tensorrt":
        click.echo(f"{engine.id} x{s}: TensorRT plan {result['plan']} ({'built' if result['built'] else 'cached'})")


@engine_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def list_command(as_json: bool) -> None:
    """List the cached ONNX graphs and TensorRT plans."""
    from vidsr.runtime.cache import list_artefacts

    rows = list_artefacts()
    if as_json:
        for row in rows:
            emit_json(row)
        return
    if not rows:
        click.echo("no built engines (build one with 'vidsr engine build')")
    for r in rows:
        extra = f"{r.get('precision', 'fp32')}" + (f" {r['gpu']}" if "gpu" in r else "")
        click.echo(f"{r['kind']:9} {r.get('engine', '?')} x{r.get('scale', '?')} {extra}  {r['path']}")


@engine_group.command("clear")
@click.option("--kind", type=click.Choice(["onnx", "tensorrt"]), default=None, help="Only this kind [all].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def clear_command(kind: str | None, as_json: bool) -> None:
    """Remove cached ONNX graphs and TensorRT plans (and the TensorRT timing cache)."""
    from vidsr.runtime.cache import cache_root, clear

    n = clear(kind)
    if as_json:
        emit_json({"removed": n, "cache": str(cache_root()), "kind": kind or "all"})
    else:
        click.echo(f"removed {n} file(s) from {cache_root()}", err=True)
