"""Temporal training: frame pairs of the degradation's pan that line up, and a motion term that scores crawl."""

import json

import cv2
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from test_train import recipe, run

from vidsr.degradation.apply import degrade_pair, even_crop
from vidsr.degradation.spec import Degradation, DegradationRanges
from vidsr.train.data import dihedral, load_degraded_pairs
from vidsr.train.losses import make_loss
from vidsr.train.recipe import load_recipe
from vidsr.train.temporal import load_frame_pairs, motion_term, sample_pair_batch, undo_dihedral

QUIET = {"log": lambda s: None}


def test_the_pair_warp_lines_the_previous_frame_up_with_the_target():
    from test_degradation import texture

    hr = even_crop(texture(128, 160), 2)
    d = Degradation(kernel="area", codec="h264", quality=28, pan=(1.3, -0.8), zoom=0.008, target=3)
    pair = degrade_pair(hr, 2, d, np.random.default_rng(0))
    h, w = hr.shape[:2]
    # hr_prev(warp q) = hr(q): sampling hr_prev at warp q gives hr back, away from the reflected borders.
    back = cv2.warpAffine(pair.hr_prev, pair.warp, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
    inner = np.s_[12:-12, 12:-12]
    aligned = np.abs(back[inner].astype(float) - hr[inner]).mean()
    still = np.abs(pair.hr_prev[inner].astype(float) - hr[inner]).mean()
    assert aligned < 0.25 * still, (aligned, still)
    assert pair.lr.rgb.shape == pair.lr_prev.rgb.shape == (h // 2, w // 2, 3)
    with pytest.raises(ValueError, match="video codec"):
        degrade_pair(hr, 2, Degradation(kernel="area", codec="jpeg", quality=40, frames=1, target=0),
                     np.random.default_rng(0))


def test_undo_dihedral_inverts_every_augmentation():
    a = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    for k in range(8):
        turned = torch.from_numpy(dihedral(a.transpose(1, 2, 0), k).transpose(2, 0, 1).copy())
        assert torch.equal(undo_dihedral(turned, k), torch.from_numpy(a)), k


def test_frame_pairs_hold_the_degraded_variants_and_the_motion_term_scores_output_that_holds_still(tmp_path, data):
    files = sorted((data / "train/pics").glob("*.png"))
    ranges = DegradationRanges(variants=2, codecs={"h264": 1.0})
    pairs = load_frame_pairs(files, 2, ranges, 3, tmp_path / "cache", workers=1, **QUIET)
    again = load_frame_pairs(files, 2, ranges, 3, tmp_path / "cache", workers=1, **QUIET)
    single = load_degraded_pairs(files, 2, "RGB", ranges, 3, None, **QUIET)
    # The target frames are exactly the single-frame variants: the same generator, the same draws.
    assert all(np.array_equal(a, b) for a, b in zip(pairs.lr, single.lr)) and pairs.hr_index == single.hr_index
    assert all(np.array_equal(a, b) for a, b in zip(pairs.lr_prev, again.lr_prev))  # cached, not redrawn
    assert not all(np.array_equal(a, b) for a, b in zip(pairs.lr, pairs.lr_prev))
    batch = sample_pair_batch([pairs], 4, 16, True, np.random.default_rng(0))
    assert batch.x.shape == (8, 3, 16, 16) and batch.y.shape == (8, 3, 32, 32) and batch.grid.shape == (4, 32, 32, 2)
    assert 0.3 < batch.mask.mean() <= 1
    y, loss = torch.from_numpy(batch.y), make_loss("mse-ycbcr", 0.25)
    assert motion_term(y, y, batch, loss).item() == 0  # an output that is the pan itself
    # Smooth errors (blotches a few pixels wide): one that holds still while the scene moves (crawl) costs, and
    # one drawn afresh in each frame (flicker) costs more.
    rng = np.random.default_rng(1)
    noise = torch.from_numpy(np.stack([cv2.GaussianBlur(rng.standard_normal((32, 32, 3)).astype(np.float32), (0, 0), 3)
                                       .transpose(2, 0, 1) for _ in range(8)]))
    held = torch.cat([y[:4] + noise[:4], y[4:] + noise[:4]])
    fresh = torch.cat([y[:4] + noise[:4], y[4:] + noise[4:]])
    assert 0 < motion_term(held, y, batch, loss).item() < motion_term(fresh, y, batch, loss).item()


def test_a_temporal_recipe_trains_and_resumes_to_the_same_weights(tmp_path, data):
    text = recipe(tmp_path).path.read_text().replace("batch = 2", "batch = 2\ntemporal = 0.5")
    path = tmp_path / "temporal.toml"
    path.write_text(text.replace('id = "tiny"', 'id = "tiny-temporal"')
                    + '\n[degradation]\nvariants = 1\ncodecs = {h264 = 1.0}\nval = "kernel=area,h264:crf=30"\n')
    r = load_recipe(path)
    assert r.temporal == 0.5
    whole = run(r, data, tmp_path / "whole")
    run(r, data, tmp_path / "chunks", max_steps=4)
    chunked = run(r, data, tmp_path / "chunks", resume=True)
    assert whole.step == chunked.step == 6
    a, b = load_file(str(tmp_path / "whole/model.safetensors")), load_file(str(tmp_path / "chunks/model.safetensors"))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=k)
    # The motion term moves the weights: the same batches at another weight of it end elsewhere.
    (tmp_path / "heavier.toml").write_text(path.read_text().replace("temporal = 0.5", "temporal = 4.0"))
    run(load_recipe(tmp_path / "heavier.toml"), data, tmp_path / "heavier")
    heavier = load_file(str(tmp_path / "heavier/model.safetensors"))
    assert any(not np.allclose(a[k], heavier[k], atol=1e-6) for k in a)
    assert json.loads((tmp_path / "whole" / "manifest.json").read_text())["degradation"]["kind"] == "real"
    for bad, why in ((text, "degradation"),
                     (text.replace("temporal = 0.5", "temporal = -1") + '\n[degradation]\nvariants = 1\n', "weight")):
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(ValueError, match=why):
            load_recipe(tmp_path / "bad.toml")
