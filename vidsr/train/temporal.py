"""Training on neighbouring frames of a pan, so that restored detail moves as the scene does.

A network that sees one frame restores each frame on its own; under a sub-pixel pan the detail it guesses from
aliased, compressed input shifts by other amounts than the scene does, and it crawls (docs/REAL-FOOTAGE.md,
session 22). Here each training variant keeps the frame before the target in the degradation's pan, with its clean
original and the affine that lines it up with the target. A step runs both frames through the network and adds,
to the pixel loss of both, a loss on the motion-compensated change of the error:

    W(out_prev - hr_prev) - (out - hr)

where W warps the previous frame onto this one with the pan's known affine. It is zero when the output's errors
move with the content (an error that moves with the scene does not read as motion), and it is what an SR output
that crawls or flickers gets wrong. W is applied to output and original alike, so its own interpolation cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vidsr.degradation.apply import degrade_pair
from vidsr.degradation.spec import DegradationRanges
from vidsr.train.data import (
    data_hash,
    dihedral,
    load_variants,
    map_variants,
    save_variants,
    scales_key,
    to_nchw,
    usable_images,
    variant_rng,
)

SUPPORT = 2  # bicubic reaches two pixels: a warped pixel whose source lies closer to the patch's edge is masked


@dataclass
class FramePairs:
    """Degraded frame pairs of one scale, RGB uint8: ``lr[i]`` and ``lr_prev[i]`` are variant i's target frame and
    the one before it, ``hr[hr_index[i]]`` and ``hr_prev[i]`` their originals, ``warp[i]`` the 2x3 affine with
    hr_prev(warp q) = hr(q)."""

    scale: int
    lr: list[np.ndarray]
    lr_prev: list[np.ndarray]
    hr: list[np.ndarray]
    hr_prev: list[np.ndarray]
    hr_index: list[int]
    warp: list[np.ndarray]


@dataclass
class PairBatch:
    """A step's batch: ``x``/``y`` hold the B target patches, then the B previous-frame patches (NCHW float32,
    augmented); ``grid`` (B x P x P x 2, grid_sample's coordinates) and ``mask`` (B x 1 x P x P) line the previous
    patches up with the targets in the un-augmented orientation, which ``turns`` undoes."""

    x: np.ndarray
    y: np.ndarray
    grid: np.ndarray
    mask: np.ndarray
    turns: list[int]
    scale: int


def _variants(job: tuple[int, int, np.ndarray, int, DegradationRanges, int]) -> list[tuple]:
    i, k, img, scale, ranges, seed = job
    out = []
    for v in range(ranges.variants):
        rng = variant_rng(seed, scale, i, v, k)  # load_degraded_pairs': the target frames are exactly its variants
        d = ranges.draw(rng, scale)
        if d.target < 1:
            continue  # an image codec: no motion to learn from
        pair = degrade_pair(img, scale, d, rng)
        out.append((pair.lr.rgb, pair.lr_prev.rgb, pair.hr_prev, pair.warp.astype(np.float32)))
    return out


def load_frame_pairs(files: list[Path], scale: int, ranges: DegradationRanges, seed: int, cache_dir: Path | None,
                     log: Callable[[str], None] = print, hr_scales: tuple[float, ...] = (1.0,),
                     workers: int = 0) -> FramePairs:
    """The frame pairs of every training image's variants (RGB), made once on ``workers`` processes (default:
    one per core) and cached, keyed as ``load_degraded_pairs`` keys its set."""
    key = f"{data_hash(files)[:16]}-{ranges.sha256()[:12]}-s{seed}-x{scale}{scales_key(hr_scales)}"
    cache = cache_dir / f"framepairs-{key}.npz" if cache_dir else None
    names = ("lr", "lr_prev", "hr_prev", "warp")
    if cache and cache.is_file():
        lists, hr, index = load_variants(cache, names)
        return FramePairs(scale, hr=hr, hr_index=index, **lists)
    images = usable_images(files, scale, hr_scales)
    jobs = [(i, k, img, scale, ranges, seed) for i, k, img in images]
    lists, index = map_variants(_variants, jobs, names, log, f"frame pairs x{scale} ({ranges.variants} variants of "
                                f"each image)", 100, workers)
    pairs = FramePairs(scale, hr=[img for _, _, img in images], hr_index=index, **lists)
    if cache:
        save_variants(cache, {name: getattr(pairs, name) for name in names}, pairs.hr, pairs.hr_index)
    return pairs


def _grid(warp: np.ndarray, top: int, left: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """grid_sample coordinates (align_corners) into the previous frame's HR patch at (top, left) for each pixel
    of the target's patch there, and the mask of those whose bicubic support lies inside the patch."""
    ys, xs = np.mgrid[top:top + side, left:left + side].astype(np.float32)
    px = warp[0, 0] * xs + warp[0, 1] * ys + warp[0, 2] - left
    py = warp[1, 0] * xs + warp[1, 1] * ys + warp[1, 2] - top
    inside = (px >= SUPPORT) & (px <= side - 1 - SUPPORT) & (py >= SUPPORT) & (py <= side - 1 - SUPPORT)
    grid = np.stack([px, py], axis=-1) * (2 / (side - 1)) - 1
    return grid.astype(np.float32), inside.astype(np.float32)[None]


def sample_pair_batch(pairs_by_scale: list[FramePairs], batch: int, patch: int, augment: bool,
                      rng: np.random.Generator) -> PairBatch:
    """``batch`` pairs of LR patches (side ``patch``) at one place in both frames, with their HR patches."""
    pairs = pairs_by_scale[int(rng.integers(len(pairs_by_scale)))]
    s = pairs.scale
    eligible = [i for i in range(len(pairs.lr)) if min(pairs.lr[i].shape[:2]) >= patch]
    xs, xs_prev, ys, ys_prev, grids, masks, turns = [], [], [], [], [], [], []
    for _ in range(batch):
        i = eligible[rng.integers(len(eligible))]
        h, w = pairs.lr[i].shape[:2]
        top, left = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        lr_cut = np.s_[top:top + patch, left:left + patch]
        hr_cut = np.s_[top * s:(top + patch) * s, left * s:(left + patch) * s]
        turn = int(rng.integers(8)) if augment else 0
        xs.append(dihedral(pairs.lr[i][lr_cut], turn))
        xs_prev.append(dihedral(pairs.lr_prev[i][lr_cut], turn))
        ys.append(dihedral(pairs.hr[pairs.hr_index[i]][hr_cut], turn))
        ys_prev.append(dihedral(pairs.hr_prev[i][hr_cut], turn))
        grid, mask = _grid(pairs.warp[i], top * s, left * s, patch * s)
        grids.append(grid)
        masks.append(mask)
        turns.append(turn)
    return PairBatch(np.concatenate([to_nchw(xs), to_nchw(xs_prev)]),
                     np.concatenate([to_nchw(ys), to_nchw(ys_prev)]), np.stack(grids), np.stack(masks), turns, s)


def undo_dihedral(t: torch.Tensor, turn: int) -> torch.Tensor:
    """The inverse of data.dihedral for one CHW tensor."""
    t = torch.rot90(t, -(turn & 3), dims=(1, 2))
    return t.flip(2) if turn & 4 else t


def motion_term(pred: torch.Tensor, target: torch.Tensor, batch: PairBatch, loss_fn: torch.nn.Module) -> torch.Tensor:
    """``loss_fn`` of W(pred_prev - target_prev) - (pred - target) over the pixels the warp reaches (see the
    module's docstring); ``pred`` and ``target`` are 2B x C x P x P, targets first, as ``batch.x`` is ordered."""
    b = len(batch.turns)
    error = torch.stack([undo_dihedral(e, batch.turns[j % b]) for j, e in enumerate(pred - target)])
    grid = torch.from_numpy(batch.grid).to(pred.device)
    mask = torch.from_numpy(batch.mask).to(pred.device)
    moved = F.grid_sample(error[b:], grid, mode="bicubic", padding_mode="border", align_corners=True)
    change = (moved - error[:b]) * mask
    return loss_fn(change, torch.zeros_like(change)) / mask.mean().clamp_min(1e-6)
