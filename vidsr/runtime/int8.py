"""int8 on the CPU: an engine's graph quantised by NNCF (OpenVINO's post-training quantisation), calibrated on our
own training data, shipped beside the weights, and run only where it measured fast enough and close enough.

Quantising needs the data the engine was trained on, which users do not have, so ``vidsr engine quantize`` runs it
here and writes the OpenVINO graph into the engine folder (``int8-x2.xml`` and ``.bin``) with a manifest record:
the files' hashes, how they were calibrated, what int8 costs against fp32 on each evaluation set (clean and under
the engine's degradation), and its speed against the precision auto runs otherwise, per CPU kind (bf16 where the
CPU has it, else fp32). ``--precision auto`` runs int8 where that record passes both bars on this CPU kind;
``--precision int8`` elsewhere is refused with the measured reason. Like every graph, it is checked against torch
before use (``openvino_rt.openvino_for``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidsr.errors import UsageError, VidsrError
from vidsr.hashing import sha256_file
from vidsr.runtime.cpu import cpu_flags, cpu_model

FIELD = "int8"  # the manifest's record: {"2": {...}} per scale
SPEEDUP_BAR = 1.5  # at least this many times the frames per second of the precision auto runs otherwise
QUALITY_BAR_DB = 0.1  # at most this much lower PSNR than fp32 on any evaluation set, clean or degraded


def cpu_kind() -> str:
    """The CPU as int8 and bf16 speeds depend on it: its model name and the widest matrix instructions it has
    (``AMD EPYC, avx2`` on a Zen 3, ``..., avx512_bf16`` on a Zen 5, ``..., amx`` on a Sapphire Rapids)."""
    flags = cpu_flags()
    widest = next((name for name, flag in (("amx", "amx_int8"), ("avx512_bf16", "avx512_bf16"),
                                            ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"),
                                            ("avx2", "avx2")) if flag in flags), "baseline")
    return f"{cpu_model()}, {widest}"


def files(folder: Path, scale: int) -> tuple[Path, Path]:
    """The int8 graph's two files in an engine folder."""
    return folder / f"int8-x{scale}.xml", folder / f"int8-x{scale}.bin"


@dataclass(frozen=True)
class Int8Record:
    """What the manifest says of an engine's int8 graph at one scale."""

    scale: int
    xml_sha256: str
    bin_sha256: str
    calibration: dict[str, Any]
    quality_db: dict[str, float]  # evaluation set (and degradation) -> int8 PSNR minus fp32 PSNR
    speed: dict[str, dict[str, Any]]  # cpu_kind() -> {"base": precision, "base_fps", "int8_fps", "ratio"}

    @classmethod
    def of(cls, engine: Any, scale: int) -> Int8Record | None:
        raw = engine.manifest.raw.get(FIELD, {}).get(str(scale))
        if not raw:
            return None
        return cls(scale, raw["xml_sha256"], raw["bin_sha256"], raw["calibration"], raw["quality_db"],
                   raw.get("speed", {}))

    def short(self, cpu: str) -> str:
        """The verdict in a table cell: ``yes, 1.8x``, ``no, 1.24x``, ``no, -0.40 dB`` or ``not measured``."""
        ok, _ = self.verdict(cpu)
        worst = min(self.quality_db.values())
        measured = self.speed.get(cpu)
        if worst < -QUALITY_BAR_DB:
            return f"no, {worst:+.2f} dB"
        if measured is None:
            return "not measured"
        return f"{'yes' if ok else 'no'}, {measured['ratio']:.2f}x"

    def verdict(self, cpu: str) -> tuple[bool, str]:
        """Whether int8 may run on ``cpu`` (a ``cpu_kind()``), and the measured reason in words."""
        where, worst = min(self.quality_db.items(), key=lambda kv: kv[1])
        if worst < -QUALITY_BAR_DB:
            return False, f"it cost {-worst:.3f} dB against fp32 on {where} (at most {QUALITY_BAR_DB} dB allowed)"
        measured = self.speed.get(cpu)
        if measured is None:
            return False, (f"its speed was never measured on this CPU kind ({cpu}); measured on: "
                           f"{'; '.join(self.speed) or 'none'}")
        if measured["ratio"] < SPEEDUP_BAR:
            return False, (f"it ran {measured['ratio']:.2f}x {measured['base']}'s frames per second on this CPU kind "
                           f"(at least {SPEEDUP_BAR}x wanted)")
        return True, f"{measured['ratio']:.2f}x {measured['base']}'s speed here, {worst:+.3f} dB at worst ({where})"


def usable(engine: Any, scale: int) -> tuple[bool, str]:
    """Whether ``engine`` at ``scale`` may run int8 on this machine, and why (or why not)."""
    record = Int8Record.of(engine, scale)
    if record is None:
        return False, f"{engine.id} ships no int8 graph at x{scale} (vidsr engine quantize makes one)"
    return record.verdict(cpu_kind())


def require(engine: Any, scale: int) -> tuple[Path, list[str]]:
    """The int8 graph to run and its files' hashes, or a usage error with the measured reason it may not run (a
    runtime error where its files are not the ones the manifest measured)."""
    ok, why = usable(engine, scale)
    if not ok:
        raise UsageError(f"--precision int8: refused for {engine.id} x{scale}: {why}; use fp32 or bf16")
    record = Int8Record.of(engine, scale)
    assert record is not None  # usable() said yes
    xml, weights = files(engine.path, scale)
    for path, want in ((xml, record.xml_sha256), (weights, record.bin_sha256)):
        if not path.is_file() or sha256_file(path) != want:
            raise VidsrError(f"engine {engine.id}: {path.name} is missing or not the int8 graph its manifest "
                             "measured; refusing to run it")
    return xml, [record.xml_sha256, record.bin_sha256]


MIN_AGREEMENT_DB = 30.0  # PSNR of the int8 graph's output against torch fp32's on a picture; quantisation costs
# tenths of a dB against the ground truth, so a graph far under this is not the engine's


def picture(channels: int, height: int = 48, width: int = 64) -> torch.Tensor:
    """A smooth picture with edges and texture in [0, 1] (1, channels, H, W): what int8 is calibrated for, as random
    noise is not."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    planes = [0.5 + 0.3 * torch.sin(xx / (5 + 2 * c) + yy / 9) + 0.15 * ((xx + 2 * yy + 7 * c) % 16 < 8).float()
              for c in range(channels)]
    return torch.stack(planes)[None].clamp(0, 1)


def agreement_db(model: Any, rt: Any, channels: int) -> tuple[float, float]:
    """(PSNR in dB, max |difference|) of ``rt``'s output against ``model``'s (torch fp32) on ``picture``."""
    x = picture(channels)
    with torch.inference_mode():
        want = model.eval().float()(x)
    got = rt.run(x)
    mse = float(((want - got) ** 2).mean())
    return (float("inf") if mse == 0 else 10 * math.log10(1 / mse)), float((want - got).abs().max())


def check_int8(engine: Any, scale: int, rt: Any) -> float:
    """The int8 graph against torch before use; its max |difference| on the picture, or a runtime error."""
    db, diff = agreement_db(engine.load(scale), rt, engine.input_channels)
    if db < MIN_AGREEMENT_DB:
        raise VidsrError(f"the int8 graph of {engine.id} x{scale} agrees with torch to only {db:.1f} dB on a test "
                         f"picture (at least {MIN_AGREEMENT_DB:g} wanted); not using it")
    return diff


def quantize(onnx_path: Path, calibration: list[Any], validation: list[Any],
             validate: Callable[[Any, Any], float], max_drop_db: float) -> tuple[Any, list[str]]:
    """The ONNX graph as an OpenVINO model with int8 convolutions, and the operations kept in floating point.

    NNCF calibrates on ``calibration`` (network inputs), then, while ``validate(compiled, validation)`` (a PSNR in
    dB) falls more than ``max_drop_db`` below the float graph's, puts the operations that cost most back into
    floating point (its accuracy control). Plain post-training quantisation of the fast engine cost 0.15-0.40 dB on
    Set5 and Set14, mostly in the first convolution, which sees the picture itself, and the output's residual sum.
    Mixed preset: symmetric weights, asymmetric activations, which the residuals' signed values need."""
    from vidsr.runtime.openvino_rt import import_openvino

    nncf = import_nncf()
    model = import_openvino().Core().read_model(str(onnx_path))
    with contextlib.redirect_stdout(sys.stderr):  # its progress bars too
        quantized = nncf.quantize_with_accuracy_control(
            model, nncf.Dataset(calibration), nncf.Dataset(validation), validation_fn=validate,
            max_drop=max_drop_db, drop_type=nncf.DropType.ABSOLUTE, subset_size=len(calibration),
            preset=nncf.QuantizationPreset.MIXED)
    return quantized, float_convolutions(quantized)


def float_convolutions(model: Any) -> list[str]:
    """The convolutions of an OpenVINO model that run in floating point: those whose input is not quantised."""
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
            and op.input_value(0).get_node().get_type_name() != "FakeQuantize"]


def import_nncf() -> Any:
    """``import nncf`` without usage telemetry: OpenVINO first, under its opt-out (``import_openvino``), then NNCF
    under its own switch, which its telemetry reads at import."""
    from vidsr.runtime.openvino_rt import import_openvino

    import_openvino()
    os.environ.setdefault("NNCF_CI", "1")
    import nncf
    from nncf.common.logging import nncf_logger

    for handler in nncf_logger.handlers:  # NNCF logs to stdout, which carries our data or nothing
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)
    return nncf


def nncf_version() -> str | None:
    try:
        return str(import_nncf().__version__)
    except ImportError:
        return None
