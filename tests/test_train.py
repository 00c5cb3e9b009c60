"""Training: resumable chunks that match an uninterrupted run, honest seeds, cached pairs, manifests."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO
from safetensors.numpy import load_file

from vidsr.models.engine import find_engine
from vidsr.train.data import load_pairs, sample_batch
from vidsr.train.loop import train, warm_start
from vidsr.train.recipe import load_recipe

RECIPE = """
id = "{id}"
[model]
preset = "{preset}"
scales = {scales}
config = {config}
[data]
train = ["train/pics"]
val = "test/val"
eval = ["test/val"]
patch = {patch}
[train]
seed = 3
batch = 2
steps = 6
loss = "{loss}"
optimizer = "{opt}"
lr = {lr}
clip_theta = {clip}
eval_every = 3
checkpoint_every = 2
"""


def recipe(tmp_path, preset="edsr-baseline", scales="[2]", config='{blocks = 1, features = 8}', patch=16,
           loss="l1", opt="adam", lr=1e-3, clip=0.0, rid="tiny"):
    path = tmp_path / f"{rid}.toml"
    path.write_text(RECIPE.format(id=rid, preset=preset, scales=scales, config=config, patch=patch, loss=loss,
                                  opt=opt, lr=lr, clip=clip))
    return load_recipe(path)


def run(r, data, out, **kw):
    return train(r, data, out, log=lambda s: None, **kw)


def test_chunks_resume_to_the_same_weights(tmp_path, data):
    r = recipe(tmp_path)
    whole = run(r, data, tmp_path / "whole")
    run(r, data, tmp_path / "chunks", max_steps=2)
    run(r, data, tmp_path / "chunks", resume=True, max_steps=3)
    state = run(r, data, tmp_path / "chunks", resume=True)
    assert whole.step == state.step == 6
    a, b = load_file(str(tmp_path / "whole/model.safetensors")), load_file(str(tmp_path / "chunks/model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    assert [p["step"] for p in state.curve] == [3, 6]


def test_a_fixed_seed_repeats_and_another_seed_differs(tmp_path, data):
    r = recipe(tmp_path)
    run(r, data, tmp_path / "a", max_steps=3)
    run(r, data, tmp_path / "b", max_steps=3)
    a, b = load_file(str(tmp_path / "a/model.safetensors")), load_file(str(tmp_path / "b/model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    r.seed = 4
    run(r, data, tmp_path / "c", max_steps=3)
    c = load_file(str(tmp_path / "c/model.safetensors"))
    assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_manifest_records_provenance_and_loads_as_an_engine(tmp_path, data):
    r = recipe(tmp_path, rid="tiny-vdsr", preset="vdsr", scales="[2, 3]", config="{depth = 3, features = 8}",
               patch=20, loss="mse", opt="sgd", lr=0.05, clip=0.01)
    r.mix_scales = True  # as the shipped VDSR recipe: scales mixed within a batch
    run(r, data, tmp_path / "engines" / "tiny-vdsr")
    m = json.loads((tmp_path / "engines/tiny-vdsr/manifest.json").read_text())
    assert m["recipe_sha256"] == r.sha256 and len(m["data_manifest_sha256"]) == 64
    assert m["training"]["steps"] == 6 and m["training"]["cpu_seconds"] > 0
    assert set(m["eval"]["val"]) == {"2", "3"}
    assert m["eval"]["val"]["2"]["bicubic_psnr"] > 20
    engine = find_engine("vdsr", 3, tmp_path / "engines")
    assert engine.load(3) is not None


def test_threads_hold_through_the_evals(tmp_path, data):
    import torch

    before = torch.get_num_threads()
    try:
        run(recipe(tmp_path), data, tmp_path / "one", threads=1)  # evals at steps 3 and 6, then the manifest's
        # The eval's runtime used to reset torch to every core, so --threads 1 held only until the first eval.
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_resume_without_moments_is_recorded(tmp_path, data):
    r = recipe(tmp_path)
    run(r, data, tmp_path / "e", max_steps=2)
    (tmp_path / "e/optimizer.safetensors").unlink()
    state = run(r, data, tmp_path / "e", resume=True, max_steps=1)
    assert state.moments_reset_at == [2]


def test_an_ema_run_ships_the_average_and_resumes_to_the_same_weights(tmp_path, data):
    r = recipe(tmp_path)
    run(r, data, tmp_path / "plain")
    r.ema = 0.5
    whole = run(r, data, tmp_path / "whole")
    run(r, data, tmp_path / "chunks", max_steps=2)
    run(r, data, tmp_path / "chunks", resume=True, max_steps=3)
    run(r, data, tmp_path / "chunks", resume=True)
    plain, a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("plain", "whole", "chunks"))
    live = load_file(str(tmp_path / "whole/optimizer.safetensors"))
    weights = [k for k in a if k.endswith("weight")]
    # The same steps trained the same live weights; what ships is their average, not the last of them.
    for k in weights:
        np.testing.assert_allclose(live["live." + k], plain[k], rtol=0, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    assert any(not np.allclose(a[k], plain[k], atol=1e-6) for k in weights)
    assert whole.curve != json.loads((tmp_path / "plain/train_state.json").read_text())["curve"]


def test_an_ema_outside_0_to_1_is_refused(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(RECIPE.format(id="bad", preset="srcnn", scales="[2]", config="{}", patch=16, loss="l1",
                                  opt="adam", lr=1e-3, clip=0.0) + "ema = 1.0\n")
    with pytest.raises(ValueError, match="ema = 1.0"):
        load_recipe(path)


def test_a_resume_on_a_machine_of_another_precision_is_recorded(tmp_path, data, monkeypatch):
    r = recipe(tmp_path)
    monkeypatch.setattr("vidsr.train.loop.has_fast_bf16", lambda: False)
    run(r, data, tmp_path / "e", max_steps=2)
    monkeypatch.setattr("vidsr.train.loop.has_fast_bf16", lambda: True)
    state = run(r, data, tmp_path / "e", resume=True, max_steps=2)
    run(r, data, tmp_path / "e", resume=True, max_steps=1)  # same precision again: no new segment
    want = [{"from_step": 0, "precision": "fp32"}, {"from_step": 2, "precision": "bf16 autocast"}]
    assert state.precision_segments == want
    m = json.loads((tmp_path / "e/manifest.json").read_text())["training"]
    assert m["precision_segments"] == want
    assert m["precision"] == "fp32 from step 0; bf16 autocast from step 2"


def test_a_run_from_before_precision_segments_keeps_its_precision(tmp_path, data, monkeypatch):
    # VDSR's first 8,500 steps (fp32, recorded only as the manifest's "precision") once came out as bf16 from 8,500.
    r = recipe(tmp_path)
    monkeypatch.setattr("vidsr.train.loop.has_fast_bf16", lambda: False)
    run(r, data, tmp_path / "e", max_steps=2)
    state_path = tmp_path / "e/train_state.json"
    legacy = json.loads(state_path.read_text())
    del legacy["precision_segments"]
    state_path.write_text(json.dumps(legacy))
    monkeypatch.setattr("vidsr.train.loop.has_fast_bf16", lambda: True)
    state = run(r, data, tmp_path / "e", resume=True, max_steps=2)
    assert state.precision_segments == [{"from_step": 0, "precision": "fp32"},
                                           {"from_step": 2, "precision": "bf16 autocast"}]


def test_a_restarted_run_keeps_the_replaced_runs_cost_on_record(tmp_path, data):
    r = recipe(tmp_path)
    first = run(r, data, tmp_path / "run", max_steps=2)
    state = run(r, data, tmp_path / "run", max_steps=3)  # resume=False on a run: what --restart does
    assert state.step == 3
    assert [d["steps"] for d in state.discarded_runs] == [2]
    m = json.loads((tmp_path / "run/manifest.json").read_text())["training"]
    assert m["discarded_runs"][0]["cpu_hours"] == round(first.cpu_seconds / 3600, 3)
    assert m["cpu_hours_with_discarded"] >= m["cpu_hours"]


def test_a_changed_recipe_is_recorded_with_its_step(tmp_path, data):
    r = recipe(tmp_path)
    run(r, data, tmp_path / "e", max_steps=2)
    old = r.sha256
    r2 = recipe(tmp_path, lr=5e-4)  # the same id, a refitted schedule
    state = run(r2, data, tmp_path / "e", resume=True, max_steps=1)
    assert state.recipe_changes == [{"step": 2, "from": old, "to": r2.sha256}]
    m = json.loads((tmp_path / "e/manifest.json").read_text())
    assert m["training"]["recipe_changes"] == state.recipe_changes and m["recipe_sha256"] == r2.sha256
    run(r2, data, tmp_path / "e", resume=True, max_steps=1)  # unchanged since: nothing new recorded
    assert json.loads((tmp_path / "e/train_state.json").read_text())["recipe_changes"] == state.recipe_changes


def test_mdsrwarm_started_from_edsrs_starts_where_they_are(tmp_path, data, monkeypatch):
    import torch

    from vidsr.models.registry import architecture

    monkeypatch.setenv("VIDSR_ENGINES", str(tmp_path / "engines"))
    cfg = '{blocks = 1, features = 8}'
    for s in (2, 3):
        run(recipe(tmp_path, scales=f"[{s}]", config=cfg, rid=f"e{s}"), data, tmp_path / "engines" / f"e{s}")
    shas = {e: json.loads((tmp_path / f"engines/{e}/manifest.json").read_text())["weights_sha256"]
            for e in ("e2", "e3")}
    r = recipe(tmp_path, preset="mdsr", scales="[2, 3]", config=cfg, rid="m")
    r.init_from = ("e2", "e3")
    assert run(r, data, tmp_path / "engines/m", max_steps=1).init_from == shas
    mdsr = architecture("mdsr").build({"blocks": 1, "features": 8}, (2, 3))
    assert warm_start(mdsr, ("e2", "e3"), lambda s: None) == shas
    x = torch.rand(1, 3, 12, 12)
    e2 = architecture("edsr").build({"blocks": 1, "features": 8}, (2,))
    warm_start(e2, ("e2",), lambda s: None)
    mdsr.scale = 2
    with torch.no_grad():
        torch.testing.assert_close(mdsr(x), e2(x), rtol=0, atol=1e-6)  # the pre-blocks start as the identity
        mdsr.scale = 3
        assert mdsr(x).shape == (1, 3, 36, 36)


def test_a_deeper_edsr_warm_started_from_a_shallower_one_starts_where_it_is_and_learns(tmp_path, data, monkeypatch):
    import torch

    from vidsr.models.registry import architecture

    monkeypatch.setenv("VIDSR_ENGINES", str(tmp_path / "engines"))
    run(recipe(tmp_path, config='{blocks = 2, features = 8}', rid="shallow"), data, tmp_path / "engines/shallow")
    shallow = architecture("edsr").build({"blocks": 2, "features": 8}, (2,))
    deep = architecture("edsr").build({"blocks": 5, "features": 8}, (2,))
    warm_start(shallow, ("shallow",), lambda s: None)
    warm_start(deep, ("shallow",), lambda s: None)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(deep(x), shallow(x), rtol=0, atol=1e-6)  # the new blocks start as identities
    opt = torch.optim.Adam(deep.parameters(), 1e-2)
    first = deep.body[4].conv1.weight.detach().clone()
    for _ in range(2):  # the first step moves the zeroed conv2, the second reaches conv1 through it
        opt.zero_grad()
        (deep(x) - torch.rand(2, 3, 24, 24)).abs().mean().backward()
        opt.step()
    assert not torch.equal(deep.body[4].conv1.weight, first)
    assert deep.body[4].conv2.weight.abs().sum() > 0
    r = recipe(tmp_path, config='{blocks = 5, features = 8}', rid="deep")
    r.init_from = ("shallow",)
    assert run(r, data, tmp_path / "engines/deep", max_steps=1).step == 1  # and the training loop takes it


def test_a_student_learns_toward_its_teachers_output_on_the_same_batch(tmp_path, data, monkeypatch):
    from vidsr.errors import VidsrError

    monkeypatch.setenv("VIDSR_ENGINES", str(tmp_path / "engines"))
    run(recipe(tmp_path, rid="teacher"), data, tmp_path / "engines/teacher")
    sha = json.loads((tmp_path / "engines/teacher/manifest.json").read_text())["weights_sha256"]

    def student(rid, teacher="", weight=0.0, init=()):
        r = recipe(tmp_path, rid=rid)
        r.teacher, r.teacher_weight, r.init_from = teacher, weight, init
        return r

    def weights_after(r, steps=1):
        state = run(r, data, tmp_path / r.id, max_steps=steps)
        return state, load_file(str(tmp_path / r.id / "model.safetensors"))

    # A student that starts as its teacher feels no pull from it: the teacher saw the very batch, at the scale.
    _, alone = weights_after(student("alone", init=("teacher",)))
    state, taught = weights_after(student("same", "teacher", 4.0, init=("teacher",)))
    assert state.teacher == {"teacher": sha}
    assert all(np.allclose(alone[k], taught[k], rtol=0, atol=1e-7) for k in alone)
    manifest = json.loads((tmp_path / "same/manifest.json").read_text())
    assert manifest["training"]["teacher"] == {"teacher": sha}
    # From its own start it does, and the same seed without the teacher steps elsewhere.
    _, fresh = weights_after(student("fresh"), 2)
    _, pulled = weights_after(student("pulled", "teacher", 4.0), 2)
    assert not all(np.array_equal(fresh[k], pulled[k]) for k in fresh)
    run(recipe(tmp_path, preset="srcnn", config="{}", rid="y"), data, tmp_path / "engines/y")
    with pytest.raises(VidsrError, match="takes Y HR-size"):  # a luma model cannot teach an RGB one
        run(student("rgb", "y", 1.0), data, tmp_path / "rgb", max_steps=1)
    path = tmp_path / "half.toml"
    path.write_text(RECIPE.format(id="half", preset="edsr-baseline", scales="[2]", config="{}", patch=16,
                                  loss="l1", opt="adam", lr=1e-3, clip=0.0) + 'teacher = "teacher"\n')
    with pytest.raises(ValueError, match="teacher_weight"):  # a teacher without a weight would do nothing
        load_recipe(path)


def test_cached_teacher_outputs_are_its_answers_to_whole_images_cropped_with_each_patch(tmp_path, data, monkeypatch):
    import torch

    from vidsr.models.engine import engine_by_id
    from vidsr.quality.images import image_files
    from vidsr.train.data import Pairs
    from vidsr.train.distill import attach_teacher_outputs

    monkeypatch.setenv("VIDSR_ENGINES", str(tmp_path / "engines"))
    run(recipe(tmp_path, rid="teacher"), data, tmp_path / "engines/teacher")

    def student(rid, outputs):
        r = recipe(tmp_path, rid=rid)
        r.teacher, r.teacher_weight, r.teacher_outputs = ("teacher", 4.0, outputs) if outputs else ("", 0.0, "per-step")
        lines: list[str] = []
        train(r, data, tmp_path / rid, log=lines.append, max_steps=1)
        return lines, load_file(str(tmp_path / rid / "model.safetensors"))

    lines, cached = student("cached", "cached")
    (made,) = (tmp_path / "cache" / "train").glob("teacher-*.npz")
    pairs = load_pairs(image_files([data / "train/pics"]), 2, "RGB", tmp_path / "cache" / "train")
    teacher = engine_by_id("teacher", "teacher").load(2).eval()
    with np.load(made) as z:
        assert int(z["n"]) == len(pairs.lr)
        for i, lr in enumerate(pairs.lr):  # the answer to the whole image, 8-bit
            with torch.no_grad():
                y = teacher(torch.from_numpy(lr).permute(2, 0, 1)[None].float() / 255)[0].clamp(0, 1) * 255
            assert np.abs(z[f"t{i}"].astype(float) - y.permute(1, 2, 0).numpy()).max() <= 0.5 + 1e-3
    assert any(line.startswith("teacher outputs: 1/") for line in lines)  # made once ...
    assert any("loaded from the cache" in line for line in student("again", "cached")[0])  # ... then loaded
    _, alone = student("alone", "")
    assert not all(np.array_equal(alone[k], cached[k]) for k in alone)  # the cached answers pulled the step
    # Each patch of the teacher's answers is cut where the target's is, and turned alike.
    rng = np.random.default_rng(0)
    hr = [rng.integers(0, 256, (40, 60, 3), dtype=np.uint8) for _ in range(3)]
    lr = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    batch = sample_batch([Pairs(2, lr, hr, teacher=[255 - a for a in hr])], 16, 8, True, True, rng)
    assert batch.teacher is not None and np.allclose(batch.teacher, 1 - batch.y)
    assert sample_batch([Pairs(2, lr, hr)], 2, 8, True, True, rng).teacher is None
    with pytest.raises(ValueError, match="no key"):  # an unnamed set cannot name its cache file
        attach_teacher_outputs(teacher, "0" * 64, Pairs(2, lr, hr), tmp_path, False, print)
    path = tmp_path / "bad.toml"
    path.write_text(RECIPE.format(id="bad", preset="edsr-baseline", scales="[2]", config="{}", patch=16,
                                  loss="l1", opt="adam", lr=1e-3, clip=0.0) + 'teacher_outputs = "cached"\n')
    with pytest.raises(ValueError, match="teacher_outputs"):  # cached answers need a teacher
        load_recipe(path)


def test_patches_are_paired_and_multi_scale(tmp_path, data):
    from vidsr.quality.images import image_files

    files = image_files([data / "train/pics"])
    pairs = [load_pairs(files, s, "RGB", tmp_path / "cache") for s in (2, 3, 4)]
    assert list((tmp_path / "cache").glob("pairs-*.npz"))  # degraded once, cached
    seen = set()
    for step in range(30):
        x, y, s, _ = sample_batch(pairs, 2, 12, True, True, np.random.default_rng([0, step]))
        assert x.shape == (2, 3, 12, 12) and y.shape == (2, 3, 12 * s, 12 * s)
        seen.add(s)
    assert seen == {2, 3, 4}
    ys = [load_pairs(files, 2, "Y", tmp_path / "cache")]
    x, y, _, _ = sample_batch(ys, 2, 20, False, True, np.random.default_rng(0))
    assert x.shape == y.shape == (2, 1, 20, 20) and x.dtype == np.float32


def test_mixed_scales_put_every_scale_in_one_batch():
    from vidsr.train.data import Pairs

    # Planes filled with a value that names their scale, so each patch says where it came from.
    pairs = [Pairs(s, [np.full((30, 30), s / 10, np.float32)] * 2, [np.full((30, 30), s / 100, np.float32)] * 2)
             for s in (2, 3, 4)]
    x, y, s, _ = sample_batch(pairs, 24, 20, False, True, np.random.default_rng(1), mix_scales=True)
    assert s == 0 and x.shape == y.shape == (24, 1, 20, 20)
    scales = np.round(x[:, 0, 0, 0] * 10)
    assert set(scales) == {2, 3, 4}
    assert np.allclose(y[:, 0, 0, 0] * 100, scales)  # input and target from the same scale
    # Without mixing (the default, which MDSR needs), a batch holds one scale.
    for seed in range(5):
        x, y, s, _ = sample_batch(pairs, 8, 20, False, True, np.random.default_rng(seed))
        assert s in (2, 3, 4) and np.allclose(x * 10, s) and np.allclose(y * 100, s)
    with pytest.raises(ValueError, match="HR-space"):
        sample_batch(pairs, 2, 8, True, False, np.random.default_rng(0), mix_scales=True)


def test_learning_rate_is_a_function_of_the_step(tmp_path):
    r = recipe(tmp_path)
    r.steps, r.warmup, r.lr = 100, 10, 1.0
    assert r.lr_at(0) == pytest.approx(0.1) and r.lr_at(10) == pytest.approx(1.0)
    assert r.lr_at(99) < 0.05
    r.schedule, r.decay_every, r.decay_factor, r.warmup = "step", 20, 0.1, 0
    assert r.lr_at(45) == pytest.approx(0.01)


def test_shipped_recipes_parse():
    for path in sorted((REPO / "recipes").glob("*.toml")):
        r = load_recipe(path)
        assert r.steps > 0 and r.batch > 0, path


def test_cli_never_overwrites_a_run_without_being_told(tmp_path, data, vidsr):
    r = recipe(tmp_path)
    out = tmp_path / "run"
    p = vidsr("train", r.path, "--data", data, "--out", out, "--max-steps", "2", check=0)
    assert json.loads(p.stdout)["step"] == 2
    weights = (out / "model.safetensors").read_bytes()
    p = vidsr("train", r.path, "--data", data, "--out", out, "--max-steps", "2", check=2)
    assert b"--resume" in p.stderr and b"Traceback" not in p.stderr
    assert (out / "model.safetensors").read_bytes() == weights
    assert json.loads(vidsr("train", r.path, "--data", data, "--out", out, "--resume", "--max-steps", "1",
                            check=0).stdout)["step"] == 3
    assert json.loads(vidsr("train", r.path, "--data", data, "--out", out, "--restart", "--max-steps", "1",
                            check=0).stdout)["step"] == 1


def test_cuda_training_without_a_gpu_is_a_usage_error(tmp_path, data, vidsr):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the error path cannot be reached")
    r = recipe(tmp_path)
    p = vidsr("train", r.path, "--data", data, "--out", tmp_path / "run", "--device", "cuda", check=2)
    assert p.stderr.decode().strip().count("\n") == 0 and b"CUDA" in p.stderr
    assert not (tmp_path / "run").exists()


def test_cuda_training_checkpoints_cpu_weights_that_resume(tmp_path, data):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch.cuda.is_available() is False here)")
    r = recipe(tmp_path)
    run(r, data, tmp_path / "gpu", device="cuda", max_steps=3)
    state = run(r, data, tmp_path / "gpu", device="cuda", resume=True)
    assert state.step == 6 and [p["step"] for p in state.curve] == [3, 6]
    w = load_file(str(tmp_path / "gpu/model.safetensors"))
    run(r, data, tmp_path / "cpu")
    c = load_file(str(tmp_path / "cpu/model.safetensors"))
    # bf16 autocast on the GPU, fp32 here (on this test's CPU): close after 6 steps, not equal.
    assert all(np.isfinite(w[k]).all() and np.abs(w[k] - c[k]).max() < 0.05 for k in c)
    m = json.loads((tmp_path / "gpu/manifest.json").read_text())
    m_cpu = json.loads((tmp_path / "cpu/manifest.json").read_text())
    assert "trained on" in m["training"]["machine"] and "trained on" not in m_cpu["training"]["machine"]
    assert abs(m["eval"]["val"]["2"]["psnr"] - m_cpu["eval"]["val"]["2"]["psnr"]) < 0.5


def test_the_ycbcr_loss_weighs_chroma_errors_against_luma_and_trains(tmp_path, data):
    import torch

    from vidsr.quality.metrics import BT601_YCBCR
    from vidsr.train.losses import make_loss

    loss = make_loss("l1-ycbcr", chroma_weight=0.25)
    target = torch.full((1, 3, 4, 4), 0.5)
    to_rgb = torch.linalg.inv(torch.tensor(BT601_YCBCR) / 255)
    luma, blue = ((to_rgb @ torch.tensor(levels) / 255).view(1, 3, 1, 1) for levels in ([10.0, 0, 0], [0, 10.0, 0]))
    assert loss(target + luma, target).item() == pytest.approx(10 / 255 / 3, rel=1e-4)  # 10 levels of Y alone
    assert loss(target + blue, target).item() == pytest.approx(0.25 * 10 / 255 / 3, rel=1e-4)
    grey = torch.rand(1, 1, 4, 4)
    assert loss(grey + 0.1, grey).item() == pytest.approx(0.1, rel=1e-4)  # a Y model's loss is plain L1
    squared = make_loss("mse-ycbcr", chroma_weight=0.25)
    assert squared(target + luma, target).item() == pytest.approx((10 / 255) ** 2 / 3, rel=1e-4)
    assert squared(target + blue, target).item() == pytest.approx(0.25 * (10 / 255) ** 2 / 3, rel=1e-4)
    assert squared(grey + 0.1, grey).item() == pytest.approx(0.01, rel=1e-4)  # a Y model's is plain MSE
    run(recipe(tmp_path, loss="l1"), data, tmp_path / "rgb", max_steps=2)
    run(recipe(tmp_path, loss="l1-ycbcr"), data, tmp_path / "ycbcr", max_steps=2)
    a, b = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("rgb", "ycbcr"))
    assert not all(np.array_equal(a[k], b[k]) for k in a)  # the recipe's loss is the one trained with
    stray = tmp_path / "stray.toml"
    stray.write_text(RECIPE.format(id="stray", preset="srcnn", scales="[2]", config="{}", patch=16, loss="l1",
                                   opt="adam", lr=1e-3, clip=0.0) + "chroma_weight = 0.25\n")
    with pytest.raises(ValueError, match="chroma_weight"):  # a weight that the loss would ignore is refused
        load_recipe(stray)


def test_a_recipe_cannot_train_on_its_validation_set(tmp_path):
    path = tmp_path / "leak.toml"
    path.write_text(RECIPE.format(id="leak", preset="srcnn", scales="[2]", config="{}", patch=16, loss="mse",
                                  opt="adam", lr=1e-3, clip=0.0).replace('train = ["train/pics"]',
                                                                         'train = ["train/pics", "test"]'))
    with pytest.raises(ValueError, match="held out"):
        load_recipe(path)


def test_recipe_names_are_checked(tmp_path):
    path = tmp_path / "typo.toml"
    for wrong, message in (('loss = "mse"', "loss = 'l2'"), ('optimizer = "adam"', "optimizer = 'adamw'")):
        path.write_text(RECIPE.format(id="typo", preset="srcnn", scales="[2]", config="{}", patch=16, loss="mse",
                                      opt="adam", lr=1e-3, clip=0.0).replace(wrong, message.replace("'", '"')))
        with pytest.raises(ValueError, match=message):  # an unknown loss used to train with MSE without a word
            load_recipe(path)


def test_mixed_scales_need_an_hr_space_model(tmp_path):
    path = tmp_path / "mixed.toml"
    path.write_text(RECIPE.format(id="mixed", preset="edsr-baseline", scales="[2, 3]", config="{}", patch=16,
                                  loss="l1", opt="adam", lr=1e-3, clip=0.0).replace("patch = 16",
                                                                                    "patch = 16\nmix_scales = true"))
    with pytest.raises(ValueError, match="mix_scales"):
        load_recipe(path)
    assert load_recipe(REPO / "recipes" / "vdsr.toml").mix_scales


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_at_a_checkpoint_that_resumes_exactly(tmp_path, data, env, vidsr, sig):
    r = recipe(tmp_path)
    long = tmp_path / "long.toml"
    long.write_text(r.path.read_text().replace("steps = 6", "steps = 100000").replace("checkpoint_every = 2",
                                                                                      "checkpoint_every = 1000"))
    out, log = tmp_path / "stopped", tmp_path / "stderr.txt"
    with open(log, "wb") as err_file:
        p = subprocess.Popen([sys.executable, "-m", "vidsr", "train", str(long), "--data", str(data), "--out",
                              str(out), "--threads", "1"], env=env, stdout=subprocess.PIPE, stderr=err_file,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal
        deadline = time.time() + 120
        while b"step 20/" not in log.read_bytes() and p.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # the loop is running, between periodic checkpoints
        p.send_signal(sig)
        stdout, _ = p.communicate(timeout=120)
    err = log.read_bytes()
    assert p.returncode == 128 + sig, err
    assert b"Traceback" not in err and b"--resume" in err
    step = json.loads(stdout)["step"]
    assert step > 0 and json.loads((out / "train_state.json").read_text())["step"] == step
    # The stop fell between steps: one more step from it equals an uninterrupted run of step + 1.
    vidsr("train", long, "--data", data, "--out", out, "--resume", "--max-steps", 1, "--threads", 1, check=0)
    vidsr("train", long, "--data", data, "--out", tmp_path / "whole", "--max-steps", step + 1, "--threads", 1,
          check=0)
    a, b = load_file(str(out / "model.safetensors")), load_file(str(tmp_path / "whole/model.safetensors"))
    assert all(np.array_equal(a[k], b[k]) for k in a)

