"""``vidsr engine quantize``: an engine's int8 graph, calibrated on our training data, measured, and recorded.

It writes ``int8-x<S>.xml`` and ``.bin`` into the engine folder and the manifest's ``int8`` record: how the graph
was calibrated, int8 against fp32 on each evaluation set (clean and under the engine's degradation) and its speed
against the precision auto otherwise runs on this CPU kind. ``--measure-only`` adds this CPU kind's speed to a
graph made elsewhere. The runtime reads the record (``vidsr.runtime.int8``) and runs int8 only where it passes.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from vidsr.commands.common import emit_json
from vidsr.commands.engine import engine_group, parse_size
from vidsr.errors import UsageError, VidsrError

CALIBRATION_PATCHES = 300  # NNCF's default subset size
CALIBRATION_SIDE = 64  # LR pixels, as the x2 engines train
PATCH_HR_SIDE = 192  # the most HR pixels a side a patch may take: validation's 96 LR at x2; 48 LR at x4, as x4 trains
CALIBRATION_SET = "T91"  # the ranges come from these images' patches...
VALIDATION_SET = "BSD200"  # ...and the accuracy control judges on these, so that neither Set5 nor Set14 is used
VALIDATION_PATCHES = 40  # 96x96 LR each at x2, half clean and half degraded
VALIDATION_SIDE = 96
MAX_DROP_DB = 0.02  # on the validation patches; at 0.05 the fast engine lost 0.12 dB on Set5, at 0.02 at most 0.02


@engine_group.command("quantize")
@click.option("--model", "-m", required=True, help="Engine id (an RGB engine: EDSR, RepNet).")
@click.option("--scale", "-s", type=click.Choice(["2", "3", "4"]), default="2", show_default=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=Path("../shared/data"),
              show_default=True, help="Folder with train/ (calibration: T91, BSD200) and test/ (Set5, Set14).")
@click.option("--patches", type=click.IntRange(8, 5000), default=CALIBRATION_PATCHES, show_default=True,
              help="Calibration patches (64x64 LR of T91, degraded as the engine's evaluation degrades).")
@click.option("--max-drop", type=click.FloatRange(0.0, 1.0), default=MAX_DROP_DB, show_default=True,
              help="dB of PSNR the int8 graph may lose on BSD200 patches before layers go back to float.")
@click.option("--size", default="960x540", show_default=True, help="Frame size (WxH) the speed is measured at.")
@click.option("--measure-only", is_flag=True, help="Keep the shipped int8 graph; add this CPU kind's speed.")
@click.option("--json", "as_json", is_flag=True, help="Print the record as one JSON object.")
def quantize_command(model: str, scale: str, data: Path, patches: int, max_drop: float, size: str,
                     measure_only: bool, as_json: bool) -> None:
    """Quantise an engine to int8 with NNCF, check it, and record its cost in dB and its speed here.

    \b
    Examples:
      vidsr engine quantize -m repnet-x2-heavy --data ../shared/data
      vidsr engine quantize -m edsr-baseline-x2-real --measure-only    # another CPU kind, the same graph
    """
    from vidsr.models.engine import find_engine, write_manifest
    from vidsr.runtime.int8 import FIELD, Int8Record, cpu_kind

    s = int(scale)
    engine = find_engine(model, s)
    if engine.arch.colour != "RGB" or engine.arch.input_space != "LR" or engine.arch.recurrent:
        raise UsageError(f"int8 covers the single-frame RGB engines (EDSR, RepNet), not {engine.id}")
    record = Int8Record.of(engine, s)
    if measure_only and record is None:
        raise UsageError(f"{engine.id} has no int8 graph at x{s} to measure; leave out --measure-only")
    raw = dict(engine.manifest.raw)
    entry = dict(raw.get(FIELD, {}).get(str(s), {}))
    if not measure_only:
        entry = _make_graph(engine, s, data, patches, max_drop) | {"speed": {}}
        entry["quality_db"] = _quality(engine, s, data)
    entry["speed"] = dict(entry.get("speed", {})) | {cpu_kind(): _speed(engine, s, parse_size(size))}
    raw[FIELD] = dict(raw.get(FIELD, {})) | {str(s): entry}
    write_manifest(engine.path, raw)
    ok, why = Int8Record.of(find_engine(engine.id, s), s).verdict(cpu_kind())  # type: ignore[union-attr]
    if as_json:
        emit_json({"engine": engine.id, "scale": s, "int8": entry, "used": ok, "reason": why})
        return
    click.echo(f"{engine.id} x{s} int8: {'used' if ok else 'refused'} on {cpu_kind()}: {why}")
    for where, delta in entry["quality_db"].items():
        click.echo(f"  {where:<48} {delta:+.3f} dB against fp32")


def _make_graph(engine: Any, scale: int, data: Path, patches: int, max_drop: float) -> dict[str, Any]:
    """Quantise, save beside the weights (through temporary names), check against torch; the record's facts."""
    from vidsr.hashing import sha256_file
    from vidsr.runtime.int8 import agreement_db, files, nncf_version, quantize
    from vidsr.runtime.onnx_rt import onnx_for
    from vidsr.runtime.openvino_rt import OpenVinoRuntime, import_openvino, openvino_version

    onnx_path, _ = onnx_for(engine, scale)
    t = time.perf_counter()
    side = patch_side(CALIBRATION_SIDE, scale)
    inputs = [lr for lr, _ in patches_of(engine, scale, data / "train" / CALIBRATION_SET, patches, side)]
    validation = patches_of(engine, scale, data / "train" / VALIDATION_SET, VALIDATION_PATCHES,
                            patch_side(VALIDATION_SIDE, scale), mixed=True)
    quantized, in_float = quantize(onnx_path, inputs, validation, validation_psnr, max_drop)
    convolutions = sum(op.get_type_name() == "Convolution" for op in quantized.get_ordered_ops())
    if len(in_float) == convolutions:
        raise VidsrError(f"{engine.id}: NNCF kept every convolution in float to stay within {max_drop} dB on the "
                         f"{VALIDATION_SET} patches, so an int8 graph would be the float one; none was written "
                         "(--max-drop trades dB for int8 layers)")
    xml, weights = files(engine.path, scale)
    with tempfile.TemporaryDirectory(dir=engine.path) as tmp:
        import_openvino().save_model(quantized, str(Path(tmp) / xml.name), compress_to_fp16=False)
        os.replace(Path(tmp) / weights.name, weights)
        os.replace(Path(tmp) / xml.name, xml)
    db, diff = agreement_db(engine.load(scale), OpenVinoRuntime(xml, "int8"), engine.input_channels)
    return {"xml_sha256": sha256_file(xml), "bin_sha256": sha256_file(weights),
            "vs_torch": {"psnr_db": round(db, 2), "max_abs_diff": round(diff, 4)},
            "float_convolutions": in_float,
            "calibration": {"data": f"train/{CALIBRATION_SET}", "patches": len(inputs), "side": side,
                            "under": _under(engine) or "bicubic (clean)", "preset": "mixed",
                            "validation": f"train/{VALIDATION_SET}, {len(validation)} patches, half degraded",
                            "max_drop_db": max_drop, "nncf": nncf_version(), "openvino": openvino_version(),
                            "seconds": round(time.perf_counter() - t, 1)}}


def patch_side(side: int, scale: int) -> int:
    """``side`` LR pixels, or fewer where ``scale`` would make the HR patch larger than ``PATCH_HR_SIDE``: at x4 a
    96-pixel patch is 384 HR pixels a side, more than BSD200's images have (321 at the least)."""
    return min(side, PATCH_HR_SIDE // scale)


def _under(engine: Any) -> str | None:
    return engine.manifest.degradation.get("curve_under") if engine.degradation != "clean" else None


def patches_of(engine: Any, scale: int, folder: Path, count: int, side: int, mixed: bool = False,
               seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` pairs of (network input (1, 3, side, side) in [0, 1], HR patch uint8) from the images in
    ``folder``, degraded as the engine's evaluation degrades them (clean engines: MATLAB bicubic); ``mixed``:
    every other one clean, so that int8 is judged on both kinds of input."""
    from vidsr.degradation.spec import parse_spec
    from vidsr.quality.evaluate import degraded_input
    from vidsr.quality.images import image_files, read_rgb

    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder of training images (int8 is calibrated on our own data)")
    paths = image_files([folder])
    under = _under(engine)
    spec = parse_spec(under) if under else None
    rng = np.random.default_rng(seed)
    hr_side = side * scale
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for attempt in range(count * 20):
        if len(pairs) == count:
            break
        hr = read_rgb(paths[int(rng.integers(len(paths)))])
        if min(hr.shape[:2]) < hr_side:
            continue
        y, x = (int(rng.integers(0, hr.shape[i] - hr_side + 1)) for i in (0, 1))
        patch = hr[y:y + hr_side, x:x + hr_side]
        _, lr, _ = degraded_input(patch, scale, None if mixed and len(pairs) % 2 else spec, attempt)
        pairs.append((np.ascontiguousarray(lr.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0, patch))
    if not pairs:
        raise UsageError(f"no image in {folder} is {hr_side} pixels a side")
    return pairs


def validation_psnr(compiled: Any, pairs: Any) -> float:
    """Mean Y-PSNR (the papers' protocol: BT.601 luma, borders shaved by the scale) of ``compiled`` on ``pairs``:
    the metric NNCF's accuracy control holds up."""
    from vidsr.quality.metrics import psnr, rgb_to_y, shave

    output = compiled.outputs[0]
    scores = []
    for lr, hr in pairs:
        sr = compiled(lr)[output][0].transpose(1, 2, 0)
        sr8 = (np.clip(sr, 0, 1) * 255).round().astype(np.uint8)
        border = hr.shape[0] // lr.shape[-1]
        scores.append(psnr(shave(rgb_to_y(sr8), border), shave(rgb_to_y(hr), border)))
    return float(np.mean(scores))


def _quality(engine: Any, scale: int, data: Path) -> dict[str, float]:
    """int8 PSNR minus fp32 PSNR (both OpenVINO) on Set5 and Set14, clean and under the engine's degradation."""
    from vidsr.degradation.spec import parse_spec
    from vidsr.quality.evaluate import evaluate_images, load_set

    sets = [f for f in (data / "test" / "Set5", data / "test" / "Set14") if f.is_dir()]
    if not sets:
        raise UsageError(f"no evaluation sets under {data / 'test'} (Set5, Set14)")
    upscalers = {p: _upscaler(engine, scale, p) for p in ("fp32", "int8")}
    specs = [None] + ([parse_spec(u)] if (u := _under(engine)) else [])
    deltas = {}
    for folder in sets:
        images = load_set(folder)
        for spec in specs:
            got = {p: evaluate_images(u, engine.arch.colour, images, scale, spec)["psnr"] for p, u in upscalers.items()}
            deltas[folder.name + (f" under {spec.spec()}" if spec else " clean")] = round(got["int8"] - got["fp32"], 4)
    return deltas


def _upscaler(engine: Any, scale: int, precision: str) -> Any:
    from vidsr.frames.upscaler import Upscaler
    from vidsr.runtime.int8 import files
    from vidsr.runtime.onnx_rt import onnx_for
    from vidsr.runtime.openvino_rt import OpenVinoRuntime

    graph = files(engine.path, scale)[0] if precision == "int8" else onnx_for(engine, scale)[0]
    return Upscaler(engine.arch, scale, OpenVinoRuntime(graph, precision), features=engine.features)


def _speed(engine: Any, scale: int, size: tuple[int, int], calls: int = 4) -> dict[str, Any]:
    """Frames per second of the network alone at ``size``: int8 against the precision auto runs otherwise here,
    the best of ``calls`` each, taken in turns, since this machine's pace drifts by a quarter between minutes
    (EDSR-baseline fp32 measured 0.127 and 0.099 fps one minute apart, int8 0.192 and 0.182)."""
    import torch

    from vidsr.runtime.cpu import has_fast_bf16

    base = "bf16" if has_fast_bf16() else "fp32"
    x = torch.rand(1, engine.input_channels, size[1], size[0])
    runtimes = {p: _upscaler(engine, scale, p).runtime for p in (base, "int8")}
    best = dict.fromkeys(runtimes, float("inf"))
    for rt in runtimes.values():
        rt.run(x)  # first calls allocate
    for _ in range(calls):
        for precision, rt in runtimes.items():
            t = time.perf_counter()
            rt.run(x)
            best[precision] = min(best[precision], time.perf_counter() - t)
    fps = {p: 1 / s for p, s in best.items()}
    return {"base": base, "base_fps": round(fps[base], 4), "int8_fps": round(fps["int8"], 4),
            "ratio": round(fps["int8"] / fps[base], 3), "size": f"{size[0]}x{size[1]}",
            "measured": time.strftime("%Y-%m-%d")}
