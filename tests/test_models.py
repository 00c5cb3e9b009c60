"""Architectures, descriptors and engines."""

import json

import pytest
import torch

from vidsr.errors import UsageError, VidsrError
from vidsr.models.edsr import EDSR, MDSR
from vidsr.models.engine import find_engine, list_engines
from vidsr.models.registry import ARCHITECTURES, PRESETS, count_params
from vidsr.models.srcnn import SRCNN
from vidsr.models.vdsr import VDSR


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_edsr_pixel_shuffles_to_scale(scale):
    m = EDSR(scale, blocks=2, features=16)
    assert m(torch.rand(1, 3, 10, 12)).shape == (1, 3, 10 * scale, 12 * scale)


def test_edsr_baseline_and_full_sizes_match_the_paper():
    # EDSR paper: baseline x2 1.37M parameters, full x2 40.7M (our count of the reference code's layers).
    assert count_params(EDSR(2, **PRESETS["edsr-baseline"][1])) == 1_369_859
    assert count_params(EDSR(2, **PRESETS["edsr-full"][1])) == pytest.approx(40.7e6, rel=0.01)


def test_mdsr_has_a_head_and_tail_per_scale_and_a_shared_body():
    m = MDSR((2, 3, 4), blocks=2, features=16)
    x = torch.rand(1, 3, 8, 8)
    for s in (2, 3, 4):
        m.scale = s
        assert m(x).shape == (1, 3, 8 * s, 8 * s)
    assert set(m.pre.keys()) == set(m.up.keys()) == {"2", "3", "4"}


def test_vdsr_is_20_layers_and_starts_close_to_its_input():
    m = VDSR()
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d)]
    assert len(convs) == 20 and all(c.kernel_size == (3, 3) for c in convs)
    x = torch.rand(1, 1, 24, 24)
    with torch.no_grad():
        assert (m(x) - x).abs().max() < 0.05  # global residual with a near-zero last layer


def test_srcnn_955_keeps_size():
    m = SRCNN()
    assert [c.kernel_size[0] for c in (m.conv1, m.conv2, m.conv3)] == [9, 5, 5]
    assert m(torch.rand(1, 1, 20, 20)).shape == (1, 1, 20, 20)


def test_srcnn_runs_its_image_layers_in_fp32_under_bf16_autocast():
    # conv1 reads the image and conv3 writes it; in bf16 their rounding cost 0.03 dB on Set5 (see SRCNN.forward).
    m, dtypes = SRCNN(), {}
    for name in ("conv1", "conv2", "conv3"):
        getattr(m, name).register_forward_hook(lambda mod, inp, out, name=name: dtypes.__setitem__(name, out.dtype))
    x = torch.rand(1, 1, 24, 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = m(x)
    assert dtypes == {"conv1": torch.float32, "conv2": torch.bfloat16, "conv3": torch.float32}
    assert y.dtype == torch.float32 and torch.allclose(y, m(x), atol=1e-2)
    # The CUDA runtime casts the whole model to fp16 instead of autocasting; that must keep working.
    assert m.half()(x.half()).dtype == torch.float16


def test_descriptors():
    assert ARCHITECTURES["vdsr"].colour == "Y" and ARCHITECTURES["vdsr"].input_space == "HR"
    assert ARCHITECTURES["edsr"].colour == "RGB" and ARCHITECTURES["edsr"].input_space == "LR"
    assert ARCHITECTURES["mdsr"].multi_scale and not ARCHITECTURES["edsr"].multi_scale


def test_engines_load_verified_weights(engines):
    e = find_engine("vdsr", 3, engines)
    model = e.load(3)
    assert isinstance(model, VDSR)
    assert find_engine("edsr", 4, engines).id == "edsr-tiny-x4"
    assert {x.id for x in list_engines(engines)} >= {"edsr-tiny-x2", "mdsr-tiny-x234"}


def test_engine_with_tampered_weights_is_refused(engines, tmp_path):
    import shutil

    src = engines / "edsr-tiny-x2"
    dst = tmp_path / "edsr-tiny-x2"
    shutil.copytree(src, dst)
    data = bytearray((dst / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (dst / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(VidsrError, match="does not match the manifest"):
        find_engine("edsr", 2, tmp_path).load(2)
    manifest = json.loads((dst / "manifest.json").read_text())
    assert len(manifest["weights_sha256"]) == 64


def test_auto_picks_the_engine_that_measures_best_at_each_scale(engines, tmp_path):
    import shutil

    # Without eval tables (engines made for tests) auto falls back to EDSR, the README's default.
    assert find_engine("auto", 3, engines).id == "edsr-tiny-x3"
    for eid in ("edsr-tiny-x2", "edsr-tiny-x3", "vdsr-tiny-x234", "srcnn-tiny-x2"):
        shutil.copytree(engines / eid, tmp_path / eid)

    def measure(eid, table):
        path = tmp_path / eid / "manifest.json"
        m = json.loads(path.read_text())
        m["eval"] = {"Set5": {s: {"psnr": a} for s, (a, _) in table.items()},
                     "Set14": {s: {"psnr": b} for s, (_, b) in table.items()}}
        path.write_text(json.dumps(m))

    measure("edsr-tiny-x2", {"2": (37.0, 32.6)})
    measure("edsr-tiny-x3", {"3": (31.7, 28.5)})  # a scale whose training lags
    measure("vdsr-tiny-x234", {"2": (36.0, 32.1), "3": (32.6, 29.2), "4": (30.5, 27.5)})
    measure("srcnn-tiny-x2", {"2": (37.0, 32.6)})  # ties EDSR x2 and costs less
    assert find_engine("auto", 3, tmp_path).id == "vdsr-tiny-x234"
    assert find_engine("auto", 4, tmp_path).id == "vdsr-tiny-x234"
    assert find_engine("auto", 2, tmp_path).id == "srcnn-tiny-x2"
    measure("srcnn-tiny-x2", {"2": (36.9, 32.6)})
    assert find_engine("auto", 2, tmp_path).id == "edsr-tiny-x2"


def test_a_run_in_progress_and_replaced_runs_show_in_the_labels(tmp_path):
    from vidsr.models.engine import Engine

    def engine(training):
        return Engine(tmp_path, {"id": "e", "preset": "srcnn", "arch": "srcnn", "scales": [2],
                                 "weights_sha256": "0" * 64, "training": training})

    assert engine({"steps": 3700, "target_steps": 4000, "cpu_hours": 1.5}).steps_label() == "3,700 of 4,000"
    assert engine({"steps": 4000, "target_steps": 4000, "cpu_hours": 1.5}).steps_label() == "4,000"
    assert engine({"steps": 10, "cpu_hours": 1.5}).cpu_hours_label() == "1.50"
    replaced = engine({"steps": 10, "cpu_hours": 2.358, "discarded_runs": [{"cpu_hours": 0.4}, {"cpu_hours": 0.17}]})
    assert replaced.cpu_hours_label() == "2.36 + 0.57 discarded"
    assert engine({}).steps_label() == engine({}).cpu_hours_label() == "-"


def test_unknown_model_and_scale_are_usage_errors(engines):
    with pytest.raises(UsageError, match="unknown model"):
        find_engine("espcn", 2, engines)
    with pytest.raises(UsageError, match="no x3 engine"):
        find_engine("srcnn", 3, engines)
