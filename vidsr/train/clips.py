"""Training clips for engines that see the video (RVSR): real camera footage, degraded as whole clips.

Each sequence (a folder of consecutive frames) is cut into windows of ``window`` frames. Every window is degraded
``variants`` times with draws from the recipe's ranges, as one clip: each frame downscaled with the drawn kernel,
given fresh sensor noise, and the whole window encoded with the drawn codec as one stream, so that the codec's P
and B frame artefacts follow the clip's real motion. Then the motion the engine will be given at run time is
measured the same way: DIS optical flow on the decoded LR luma, from each frame back to the one before. All of it
is made once on every core and cached; a step only crops, flips and rotates.

Without a [degradation] table the LR frames are MATLAB bicubic, lossless: the clean engines' protocol.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidsr.degradation.apply import add_noise, downscale, encode_decode, even_crop
from vidsr.degradation.spec import Degradation, DegradationRanges
from vidsr.hashing import sha256_bytes, sha256_file
from vidsr.quality.images import read_rgb
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import rgb_to_y
from vidsr.quality.sequences import frame_files
from vidsr.train.data import dihedral, load_variants, map_variants, save_variants


def sequence_folders(roots: list[Path]) -> list[Path]:
    """Every folder of frames at or under ``roots`` (a sequence folder, or a folder of them, any depth)."""
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise FileNotFoundError(f"no clip folder {root}")
        if frame_files(root):
            found.append(root)
        else:
            found += sequence_folders(sorted(p for p in root.iterdir() if p.is_dir()))
    return found


def clips_hash(folders: list[Path]) -> str:
    """sha256 over every frame's (sequence, name, content hash): names exactly which footage a model saw."""
    h = hashlib.sha256()
    for folder in folders:
        for f in frame_files(folder):
            h.update(f"{folder.name}/{f.name}".encode() + b"\0" + bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def read_sequence(folder: Path, max_side: int, first: int = 0, count: int | None = None) -> list[np.ndarray]:
    """Frames ``first`` .. ``first + count`` of a sequence as RGB uint8, area-downscaled so that the longer side
    is at most ``max_side`` (2048-wide Cityscapes frames would otherwise dwarf the rest)."""
    files = frame_files(folder)[first:None if count is None else first + count]
    frames = []
    for f in files:
        img = read_rgb(f)
        h, w = img.shape[:2]
        if max(h, w) > max_side:
            k = max_side / max(h, w)
            img = cv2.resize(img, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        frames.append(img)
    return frames


def dis_flows(lumas: list[np.ndarray]) -> np.ndarray:
    """(T, H, W, 2) float32: where each pixel of frame t was in frame t-1 (x then y), by DIS optical flow on
    8-bit luma, as ``vidsr.frames.recurrence`` measures it at run time; frame 0's is zero."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # type: ignore[attr-defined]
    flows = [np.zeros((*lumas[0].shape, 2), np.float32)]
    flows += [dis.calc(lumas[t], lumas[t - 1], None) for t in range(1, len(lumas))]
    return np.stack(flows)


def degrade_clip(hr: list[np.ndarray], scale: int, d: Degradation | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(LR RGB frames (T, h, w, 3) uint8, their decoded 8-bit luma (T, h, w)) of HR frames under ``d``, encoded
    as one clip; ``d`` None: MATLAB bicubic, lossless."""
    if d is None:
        lr = [imresize(f, 1 / scale) for f in hr]
        return np.stack(lr), np.stack([rgb_to_y(f).round().astype(np.uint8) for f in lr])
    small = [add_noise(downscale(f, scale, d.kernel, d.blur), d, rng) for f in hr]
    decoded = encode_decode(small, d)
    return np.stack([x.rgb for x in decoded]), np.stack([x.y for x in decoded])


@dataclass
class ClipSet:
    """Degraded windows of one scale: ``lr[i]`` (T, h, w, 3) uint8 and ``flow[i]`` (T, h, w, 2) float16 are
    variant i, whose originals are ``hr[hr_index[i]]`` (T, H, W, 3) uint8."""

    scale: int
    lr: list[np.ndarray]
    flow: list[np.ndarray]
    hr: list[np.ndarray]
    hr_index: list[int]


def _windows(folder: Path, window: int, max_windows: int, max_side: int, scale: int) -> list[np.ndarray]:
    n = len(frame_files(folder))
    starts = list(range(0, n - window + 1, window))[:max_windows]
    return [np.stack([even_crop(f, scale) for f in read_sequence(folder, max_side, s, window)]) for s in starts]


def _variants(job: tuple[int, np.ndarray, int, DegradationRanges | None, int, int]) -> list[tuple]:
    i, hr, scale, ranges, seed, variants = job
    out = []
    for v in range(variants):
        rng = np.random.default_rng([seed, scale, i, v, 7])  # 7: apart from the image sets' generators
        d = ranges.draw(rng, scale) if ranges else None
        lr, luma = degrade_clip(list(hr), scale, d, rng)
        out.append((lr, dis_flows(list(luma)).astype(np.float16)))
    return out


def load_clips(folders: list[Path], scale: int, ranges: DegradationRanges | None, seed: int, variants: int,
               window: int, max_windows: int, max_side: int, cache_dir: Path | None,
               log: Callable[[str], None] = print, workers: int = 0) -> ClipSet:
    """Every sequence's windows, each degraded ``variants`` times, with their flows; made once and cached, keyed
    by the footage, the ranges, the seed and every size that shapes the set."""
    shape = f"w{window}-m{max_windows}-s{max_side}-v{variants}"
    facts = f"{clips_hash(folders)}-{ranges.sha256() if ranges else 'clean'}-{seed}-x{scale}-{shape}"
    key = sha256_bytes(facts.encode())
    cache = cache_dir / f"clips-{key[:24]}.npz" if cache_dir else None
    if cache and cache.is_file():
        lists, hr, index = load_variants(cache, ("lr", "flow"))
        return ClipSet(scale, lists["lr"], lists["flow"], hr, index)
    hr = [w for folder in folders for w in _windows(folder, window, max_windows, max_side, scale)]
    log(f"clips: {len(hr)} windows of {window} frames from {len(folders)} sequences, x{scale}, "
        f"{variants} variants each")
    jobs = [(i, w, scale, ranges, seed, variants) for i, w in enumerate(hr)]
    lists, index = map_variants(_variants, jobs, ("lr", "flow"), log, "clips: degraded windows", 20, workers, 2)
    clips = ClipSet(scale, lists["lr"], lists["flow"], hr, index)
    if cache:
        save_variants(cache, {"lr": clips.lr, "flow": clips.flow}, clips.hr, clips.hr_index)
    return clips


def dihedral_flow(flow: np.ndarray, k: int) -> np.ndarray:
    """``dihedral`` for a (.., H, W, 2) field of (x, y) displacements: the field moves with the image and each
    vector turns with it (a mirror negates x; np.rot90's quarter turn maps (dx, dy) to (dy, -dx))."""
    if k & 4:
        flow = flow[..., :, ::-1, :] * np.array([-1, 1], flow.dtype)
    for _ in range(k & 3):
        flow = np.rot90(flow, 1, axes=(-3, -2))[..., ::-1] * np.array([1, -1], flow.dtype)
    return flow


@dataclass
class ClipBatch:
    """A step's clips as float32: ``x`` (B, T, C, p, p) in [0, 1], ``flow`` (B, T, 2, p, p), ``y`` (B, T, C, sp, sp)."""

    x: np.ndarray
    flow: np.ndarray
    y: np.ndarray


def sample_clip_batch(clip_sets: list[ClipSet], batch: int, frames: int, patch: int, augment: bool,
                      rng: np.random.Generator) -> tuple[ClipBatch, int]:
    """``batch`` runs of ``frames`` consecutive frames, each cut at one place of its window in every frame (the
    content moves through the patch as the camera did), with their scale."""
    clips = clip_sets[int(rng.integers(len(clip_sets)))]
    s = clips.scale
    eligible = [i for i, lr in enumerate(clips.lr) if min(lr.shape[1:3]) >= patch and len(lr) >= frames]
    xs, flows, ys = [], [], []
    for _ in range(batch):
        i = eligible[int(rng.integers(len(eligible)))]
        lr, hr = clips.lr[i], clips.hr[clips.hr_index[i]]
        t0 = int(rng.integers(len(lr) - frames + 1))
        h, w = lr.shape[1:3]
        top, left = int(rng.integers(h - patch + 1)), int(rng.integers(w - patch + 1))
        run = np.s_[t0:t0 + frames]
        x = lr[run, top:top + patch, left:left + patch]
        f = clips.flow[i][run, top:top + patch, left:left + patch].astype(np.float32)
        y = hr[run, top * s:(top + patch) * s, left * s:(left + patch) * s]
        turn = int(rng.integers(8)) if augment else 0
        xs.append(np.stack([dihedral(a, turn) for a in x]))
        flows.append(dihedral_flow(f, turn))
        ys.append(np.stack([dihedral(a, turn) for a in y]))
    as_float = lambda a: np.ascontiguousarray(np.stack(a).transpose(0, 1, 4, 2, 3)).astype(np.float32)  # noqa: E731
    return ClipBatch(as_float(xs) / 255.0, as_float(flows), as_float(ys) / 255.0), s


@dataclass
class ValClip:
    """A held-out clip for the training curve: LR frames (T, h, w, 3) uint8 with their flows, and the HR luma."""

    name: str
    lr: np.ndarray
    flow: np.ndarray
    hr_y: np.ndarray


def load_val_clips(folders: list[Path], scale: int, d: Degradation | None, frames: int, side: int,
                   max_side: int) -> list[ValClip]:
    """The first ``frames`` frames of each held-out sequence, cut to a centred square of ``side`` HR pixels (so a
    curve point costs seconds), degraded as one clip under ``d`` with a generator seeded by its index."""
    out = []
    for k, folder in enumerate(folders):
        hr = []
        for f in read_sequence(folder, max_side, 0, frames):
            h, w = f.shape[:2]
            a, b = min(side, h), min(side, w)
            hr.append(even_crop(f[(h - a) // 2:(h - a) // 2 + a, (w - b) // 2:(w - b) // 2 + b], scale))
        lr, luma = degrade_clip(hr, scale, d, np.random.default_rng([k]))
        out.append(ValClip(folder.name, lr, dis_flows(list(luma)), np.stack([rgb_to_y(f) for f in hr])))
    return out


def score_clips(model, clips: list[ValClip], scale: int, device: str = "cpu", fresh: bool = False) -> dict[str, float]:
    """Mean Y-PSNR over every frame of ``clips`` of a recurrent model run along each clip (fp32), and of MATLAB
    bicubic of the same LR frames; the model is left in eval mode. ``fresh``: the state starts afresh at every
    frame, so the same weights see one frame at a time (what the memory adds is the difference)."""
    import torch

    from vidsr.quality.metrics import psnr, shave

    model.eval()
    ours, bicubic = [], []
    with torch.inference_mode():
        for clip in clips:
            x = torch.from_numpy(clip.lr.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)[None].to(device)
            flow = torch.from_numpy(clip.flow.transpose(0, 3, 1, 2).astype(np.float32))[None].to(device)
            starts = torch.ones(x.shape[:2], dtype=torch.bool, device=device) if fresh else None
            sr = model.float().sequence(x, flow, starts)[0].clamp(0, 1).mul(255).round().byte()
            sr = sr.permute(0, 2, 3, 1).cpu()
            for t, hr_y in enumerate(clip.hr_y):
                y = rgb_to_y(sr[t].numpy())
                bic = rgb_to_y(imresize(clip.lr[t], scale))
                ours.append(psnr(shave(y, scale), shave(hr_y, scale)))
                bicubic.append(psnr(shave(bic, scale), shave(hr_y, scale)))
    return {"psnr": float(np.mean(ours)), "bicubic_psnr": float(np.mean(bicubic))}


def train_sequences(data_root: Path, clips: tuple[str, ...], held_out: tuple[str, ...]) -> list[Path]:
    """The sequences under ``clips`` less every one at or under ``held_out`` (relative to ``data_root``)."""
    held = [(data_root / h).resolve() for h in held_out]
    return [f for f in sequence_folders([data_root / c for c in clips])
            if not any(f.resolve() == h or f.resolve().is_relative_to(h) for h in held)]
