"""int8: an engine quantised by NNCF on (generated stand-ins for) our training data, checked against fp32, recorded
in its manifest, and run only where the record allows it on this CPU kind."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from media import make_clip

from vidsr.models.engine import save_engine
from vidsr.models.registry import ARCHITECTURES

TINY = {"features": 8, "blocks": 2, "expand": 2}


def pictures(folder: Path, count: int, side: int, seed: int) -> None:
    """Photographs stand-ins: gradients, edges and texture at several scales."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    for i in range(count):
        f = rng.uniform(0.05, 0.4, 3)
        img = np.stack([np.sin(xx * f[0] + i) * 60 + yy * 0.3, np.cos(yy * f[1]) * 50 + xx * 0.2,
                        ((xx + yy) * f[2] % 40) * 3], axis=2) + 100 + rng.normal(0, 4, (side, side, 3))
        cv2.imwrite(str(folder / f"{i}.png"), np.clip(img, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    pictures(root / "train" / "T91", 4, 160, 0)
    pictures(root / "train" / "BSD200", 4, 200, 1)
    pictures(root / "test" / "Set5", 2, 96, 2)
    pictures(root / "test" / "Set14", 2, 96, 3)
    return root


@pytest.fixture(scope="module")
def quantized_once(data, tmp_path_factory) -> tuple[Path, dict]:
    """A trained-looking tiny RepNet, quantised once for the module (NNCF takes a while): the engine folder and the
    command's report."""
    torch.manual_seed(0)
    model = ARCHITECTURES["repnet"].build(TINY, (2,))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    root = tmp_path_factory.mktemp("int8")
    folder = root / "engines" / "repnet-tiny-x2"
    save_engine(folder, "repnet-tiny-x2", "repnet", "repnet", "repnet", TINY, (2,), model)
    env = dict(os.environ) | {"VIDSR_ENGINES": str(folder.parent), "VIDSR_CACHE": str(root / "cache")}
    p = subprocess.run([sys.executable, "-m", "vidsr", "engine", "quantize", "-m", "repnet-tiny-x2", "--data",
                        str(data), "--patches", "16", "--size", "96x64", "--json"], capture_output=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return folder, json.loads(p.stdout)


@pytest.fixture()
def quantized(quantized_once, tmp_path, env) -> tuple[Path, dict]:
    """A copy of the quantised engine for one test, which may change it."""
    folder = tmp_path / "engines" / "repnet-tiny-x2"
    shutil.copytree(quantized_once[0], folder)
    env["VIDSR_ENGINES"] = str(folder.parent)
    env["VIDSR_CACHE"] = str(tmp_path / "cache")
    return folder, quantized_once[1]


def record(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["int8"]["2"]


def test_quantize_writes_a_checked_graph_and_its_measurements(quantized):
    folder, report = quantized
    entry = record(folder)
    assert (folder / "int8-x2.xml").is_file() and (folder / "int8-x2.bin").is_file()
    from vidsr.hashing import sha256_file

    assert entry["xml_sha256"] == sha256_file(folder / "int8-x2.xml")
    assert entry["bin_sha256"] == sha256_file(folder / "int8-x2.bin")
    assert entry["vs_torch"]["psnr_db"] >= 30  # against torch fp32 on a picture, as every graph is checked
    assert set(entry["quality_db"]) == {"Set5 clean", "Set14 clean"}  # a clean engine: clean sets only
    assert all(abs(d) < 0.5 for d in entry["quality_db"].values()), entry["quality_db"]
    assert entry["calibration"]["patches"] == 16 and entry["calibration"]["data"] == "train/T91"
    from vidsr.runtime.int8 import cpu_kind

    speed = entry["speed"][cpu_kind()]
    assert speed["base"] in ("fp32", "bf16") and speed["ratio"] == round(speed["int8_fps"] / speed["base_fps"], 3)
    assert report["used"] == (speed["ratio"] >= 1.5 and min(entry["quality_db"].values()) >= -0.1)


def set_record(folder: Path, ratio: float, worst_db: float) -> None:
    from vidsr.runtime.int8 import cpu_kind

    manifest = json.loads((folder / "manifest.json").read_text())
    entry = manifest["int8"]["2"]
    entry["speed"] = {cpu_kind(): {"base": "fp32", "base_fps": 10.0, "int8_fps": 10.0 * ratio, "ratio": ratio}}
    entry["quality_db"] = {"Set5 clean": worst_db, "Set14 clean": 0.0}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_int8_runs_where_its_record_allows_and_is_refused_with_the_reason(quantized, vidsr, tmp_path):
    folder, _ = quantized
    clip = make_clip(tmp_path / "in.mp4", 48, 32, frames=3)

    def run(*extra, check=0):
        return vidsr("upscale", clip, "-o", tmp_path / "out.mp4", "-y", "-m", "repnet-tiny-x2", "--runtime",
                     "openvino", "--json", *extra, check=check)

    def listed():
        rows = [json.loads(line) for line in vidsr("models", "--json").stdout.splitlines()]
        return next(r["int8"] for r in rows if r["engine"] == "repnet-tiny-x2")

    set_record(folder, 2.0, -0.02)
    assert json.loads(run().stdout)["precision"] == "int8"  # auto: measured faster and close enough here
    assert listed()["used"] and listed()["short"] == "yes, 2.00x"
    assert json.loads(run("--precision", "fp32").stdout)["precision"] == "fp32"
    set_record(folder, 1.2, -0.02)
    assert json.loads(run().stdout)["precision"] in ("fp32", "bf16")
    assert not listed()["used"] and "1.20x" in listed()["reason"]
    p = run("--precision", "int8", check=2)
    assert b"1.20x" in p.stderr and b"refused" in p.stderr and len(p.stderr.splitlines()) == 1
    set_record(folder, 2.0, -0.3)
    assert b"0.300 dB" in run("--precision", "int8", check=2).stderr
    set_record(folder, 2.0, -0.02)
    (folder / "int8-x2.bin").write_bytes(b"\0" * 64)  # not the graph the manifest measured
    assert b"not the int8 graph" in run("--precision", "int8", check=1).stderr
    assert b"runs fp32 or bf16 or fp16, not --precision int8" in run("--runtime", "torch", "--precision", "int8",
                                                                      check=2).stderr


def test_calibration_and_validation_patches_fit_the_training_images_at_x4(tmp_path):
    # At x4 a 96-pixel LR patch is 384 HR pixels a side, more than BSD200's images have: quantize refused every x4
    # engine until the patches shrank with the scale.
    from vidsr.commands.quantize import (
        CALIBRATION_SET,
        CALIBRATION_SIDE,
        VALIDATION_SET,
        VALIDATION_SIDE,
        patch_side,
        patches_of,
    )

    engine = save_engine(tmp_path / "repnet-tiny-x4", "repnet-tiny-x4", "repnet", "repnet", "repnet", TINY, (4,),
                         ARCHITECTURES["repnet"].build(TINY, (4,)))
    assert patch_side(CALIBRATION_SIDE, 2) == 64 and patch_side(VALIDATION_SIDE, 2) == 96  # x2 as before
    for folder, side in ((CALIBRATION_SET, CALIBRATION_SIDE), (VALIDATION_SET, VALIDATION_SIDE)):
        pictures(tmp_path / folder, 2, 200, 0)  # under BSD200's smallest side (321) and over 192
        pairs = patches_of(engine, 4, tmp_path / folder, 3, patch_side(side, 4))
        assert len(pairs) == 3
        lr, hr = pairs[0]
        assert lr.shape == (1, 3, 48, 48) and hr.shape == (192, 192, 3)


def test_quantize_refuses_what_it_cannot_do(quantized, vidsr, tmp_path):
    assert b"no such folder" in vidsr("engine", "quantize", "-m", "repnet-tiny-x2", "--data", tmp_path / "none",
                                      check=2).stderr
