"""Training pairs: degraded once, cached, then cropped into random patches each step.

Every image of the train folders is modcropped and downscaled with MATLAB bicubic once per scale, exactly as
evaluation degrades its inputs; the pairs are cached on disk (keyed by the data's hash) so that a resumed chunk
starts in seconds. A step only crops, flips and rotates.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from vidsr.degradation.apply import degrade as degrade_real
from vidsr.degradation.apply import even_crop
from vidsr.degradation.spec import DegradationRanges
from vidsr.files import atomic_path
from vidsr.quality.images import read_rgb
from vidsr.quality.imresize import imresize
from vidsr.quality.metrics import modcrop, rgb_to_y


def data_hash(files: list[Path]) -> str:
    """sha256 over the sorted (name, content hash) list: it names exactly which training data a model saw."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def hr_images(files: list[Path], hr_scales: tuple[float, ...] = (1.0,)) -> Iterator[tuple[int, int, np.ndarray]]:
    """(file index, rescale index, RGB image) for every training image at every scale of ``hr_scales``.

    Smaller copies of the HR images are more training content, not more of the same: a detail that spans 40
    pixels at full size spans 20 at half, so the network sees each texture at several sizes, as Real-ESRGAN's
    multi-scale DF2K does. They are area-downscaled (antialiased), which keeps them clean HR targets."""
    for i, f in enumerate(files):
        img = read_rgb(f)
        h, w = img.shape[:2]
        for k, factor in enumerate(hr_scales):
            yield i, k, img if factor == 1.0 else cv2.resize(img, (round(w * factor), round(h * factor)),
                                                             interpolation=cv2.INTER_AREA)


def scales_key(hr_scales: tuple[float, ...]) -> str:
    return "" if hr_scales == (1.0,) else "-hr" + "_".join(f"{f:g}" for f in hr_scales)


@dataclass
class Pairs:
    """LR/HR pairs of one scale. Y models get float32 Y planes in [0, 1], the LR one already bicubic-upscaled to
    the HR size; RGB models get uint8 RGB.

    Degraded pairs hold several LR variants per HR image: ``lr[i]`` pairs with ``hr[hr_index[i]]``, and Y variants
    stay uint8 at LR size (``lr_small``), upscaled patch by patch, since float HR-size copies of every variant
    would take gigabytes."""

    scale: int
    lr: list[np.ndarray]
    hr: list[np.ndarray]
    hr_index: list[int] | None = None
    lr_small: bool = False
    key: str = ""  # names the set (data, ranges, seed, scale, colour) in cache files made from it
    # A distillation teacher's output for each ``lr`` (uint8 RGB, HR size), where the recipe caches it
    teacher: list[np.ndarray] | None = None

    def target(self, i: int) -> np.ndarray:
        return self.hr[self.hr_index[i] if self.hr_index is not None else i]


def degrade(hr_rgb: np.ndarray, scale: int, colour: str) -> tuple[np.ndarray, np.ndarray]:
    hr_rgb = modcrop(hr_rgb, scale)
    lr_rgb = imresize(hr_rgb, 1 / scale)
    if colour == "RGB":
        return lr_rgb, hr_rgb
    # A video decoder hands us an 8-bit Y plane, so the network sees rounded LR luma, upscaled in float.
    lr_y = rgb_to_y(lr_rgb) / 255.0
    up = imresize(lr_y, size=hr_rgb.shape[:2]).astype(np.float32)
    return up, (rgb_to_y(hr_rgb) / 255.0).astype(np.float32)


def load_pairs(files: list[Path], scale: int, colour: str, cache_dir: Path | None,
               hr_scales: tuple[float, ...] = (1.0,)) -> Pairs:
    key = f"{data_hash(files)[:16]}-x{scale}-{colour}{scales_key(hr_scales)}"
    cache = cache_dir / f"pairs-{key}.npz" if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache) as z:
            n = int(z["n"])
            return Pairs(scale, [z[f"lr{i}"] for i in range(n)], [z[f"hr{i}"] for i in range(n)], key=key)
    lr, hr = zip(*(degrade(img, scale, colour) for _, _, img in hr_images(files, hr_scales)))
    pairs = Pairs(scale, list(lr), list(hr), key=key)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"lr{i}": a for i, a in enumerate(pairs.lr)} | {f"hr{i}": a for i, a in enumerate(pairs.hr)}
        with atomic_path(cache) as tmp:
            np.savez(tmp, n=np.array(len(pairs.lr)), **arrays)  # type: ignore[arg-type]
    return pairs


def load_degraded_pairs(files: list[Path], scale: int, colour: str, ranges: DegradationRanges, seed: int,
                        cache_dir: Path | None, log=print, hr_scales: tuple[float, ...] = (1.0,),
                        workers: int = 0) -> Pairs:
    """``ranges.variants`` degraded LR copies of every training image, made once through the real codecs and
    cached (keyed by the data, the ranges, the seed, the scale and the colour mode): measured cheaper per CPU-hour
    than encoding patches on the fly (docs/REAL-FOOTAGE.md). Variant v of image i is drawn from a generator seeded
    by (seed, scale, i, v), and at the k-th of ``hr_scales`` past the first by (seed, scale, i, v, k), so the set
    is the same on every machine."""
    key = f"{data_hash(files)[:16]}-{ranges.sha256()[:12]}-s{seed}-x{scale}-{colour}{scales_key(hr_scales)}"
    cache = cache_dir / f"degraded-{key}.npz" if cache_dir else None
    if cache and cache.is_file():
        with np.load(cache) as z:
            n, m = int(z["n"]), int(z["m"])
            return Pairs(scale, [z[f"lr{i}"] for i in range(n)], [z[f"hr{j}"] for j in range(m)],
                         [int(v) for v in z["hr_index"]], lr_small=colour == "Y", key=key)
    lr: list[np.ndarray] = []
    hr: list[np.ndarray] = []
    index: list[int] = []
    images = usable_images(files, scale, hr_scales)
    jobs = [(i, k, img, scale, ranges, seed, colour) for i, k, img in images]
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for j, ((_, _, img), variants) in enumerate(zip(images, pool.map(_degraded_variants, jobs, chunksize=4))):
            hr.append(img if colour == "RGB" else (rgb_to_y(img) / 255.0).astype(np.float32))
            lr += variants
            index += [j] * len(variants)
            if j % 100 == 0:
                log(f"degraded {j + 1}/{len(images)} images x{scale} ({ranges.variants} variants each)")
    pairs = Pairs(scale, lr, hr, index, lr_small=colour == "Y", key=key)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"lr{i}": a for i, a in enumerate(lr)} | {f"hr{j}": a for j, a in enumerate(hr)}
        with atomic_path(cache) as tmp:
            np.savez(tmp, n=len(lr), m=len(hr), hr_index=np.array(index), **arrays)  # type: ignore[arg-type]
    return pairs


def map_variants(fn: Callable[[Any], list[tuple]], jobs: list[Any], names: tuple[str, ...], log: Callable[[str], None],
                 label: str, every: int, workers: int = 0, chunksize: int = 4) -> tuple[dict[str, list[np.ndarray]],
                                                                                       list[int]]:
    """``fn`` on every job, on every core: each job gives a list of variants, each variant a tuple of arrays named
    ``names``. Returns the lists by name and, for each variant, the index of the job it came from."""
    lists: dict[str, list[np.ndarray]] = {name: [] for name in names}
    index: list[int] = []
    with ProcessPoolExecutor(workers or os.cpu_count() or 1) as pool:
        for i, found in enumerate(pool.map(fn, jobs, chunksize=chunksize)):
            for variant in found:
                for name, a in zip(names, variant):
                    lists[name].append(a)
                index.append(i)
            if i % every == 0:
                log(f"{label}: {i + 1}/{len(jobs)}")
    return lists, index


def save_variants(path: Path, variants: dict[str, list[np.ndarray]], hr: list[np.ndarray],
                  hr_index: list[int]) -> None:
    """A degraded set's cache: each list of ``variants`` (lr, flow, ...; one entry per variant) and the HR originals
    they index (``hr_index``), as one npz written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}{i}": a for name, items in variants.items() for i, a in enumerate(items)}
    arrays |= {f"hr{j}": a for j, a in enumerate(hr)}
    n = len(next(iter(variants.values())))
    with atomic_path(path) as tmp:
        np.savez(tmp, n=n, m=len(hr), hr_index=np.array(hr_index), **arrays)  # type: ignore[arg-type]


def load_variants(path: Path, names: tuple[str, ...]) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray],
                                                                list[int]]:
    """What ``save_variants`` wrote: the lists named, the HR originals and the index into them."""
    with np.load(path) as z:
        n, m = int(z["n"]), int(z["m"])
        return ({name: [z[f"{name}{i}"] for i in range(n)] for name in names}, [z[f"hr{j}"] for j in range(m)],
                [int(v) for v in z["hr_index"]])


def usable_images(files: list[Path], scale: int, hr_scales: tuple[float, ...]) -> list[tuple[int, int, np.ndarray]]:
    """``hr_images`` cropped to even LR sides, without those too small to pair (a T91 image at half size and x4)."""
    images = [(i, k, even_crop(img, scale)) for i, k, img in hr_images(files, hr_scales)]
    return [(i, k, img) for i, k, img in images if min(img.shape[:2]) >= 2 * scale]


def variant_rng(seed: int, scale: int, image: int, variant: int, rescale: int) -> np.random.Generator:
    """Variant ``variant``'s generator for the ``rescale``-th size of image ``image``: it makes the same set on
    every machine and in every process."""
    return np.random.default_rng([seed, scale, image, variant] + ([rescale] if rescale else []))


def _degraded_variants(job: tuple[int, int, np.ndarray, int, DegradationRanges, int, str]) -> list[np.ndarray]:
    i, k, img, scale, ranges, seed, colour = job
    out = []
    for v in range(ranges.variants):
        rng = variant_rng(seed, scale, i, v, k)
        low = degrade_real(img, scale, ranges.draw(rng, scale), rng)
        out.append(low.rgb if colour == "RGB" else low.y)
    return out


def _upscaled_patch(lr_y: np.ndarray, scale: int, top: int, left: int, patch: int) -> np.ndarray:
    """The HR-size patch at (top, left) of the MATLAB-bicubic upscale of an 8-bit LR Y plane, computed from a
    crop with 4 LR pixels of context (the kernel reaches 2), so it equals the whole-image upscale's patch."""
    pad = 4
    y0, x0 = max(top // scale - pad, 0), max(left // scale - pad, 0)
    y1 = min(-(-(top + patch) // scale) + pad, lr_y.shape[0])
    x1 = min(-(-(left + patch) // scale) + pad, lr_y.shape[1])
    crop = lr_y[y0:y1, x0:x1] / 255.0
    up = imresize(crop, size=((y1 - y0) * scale, (x1 - x0) * scale))
    dy, dx = top - y0 * scale, left - x0 * scale
    return up[dy:dy + patch, dx:dx + patch].astype(np.float32)


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips/rotations of an HxW(xC) array."""
    if k & 4:
        a = a[:, ::-1]
    return np.rot90(a, k & 3)


class Batch(NamedTuple):
    """One step's patches as float32 NCHW in [0, 1]: inputs, targets, their scale (0 when mixed) and, where the
    pairs carry a teacher's outputs, the teacher's patches aligned with the targets."""

    x: np.ndarray
    y: np.ndarray
    scale: int
    teacher: np.ndarray | None = None


def sample_batch(pairs_by_scale: list[Pairs], batch: int, patch: int, lr_space: bool, augment: bool,
                 rng: np.random.Generator, mix_scales: bool = False) -> Batch:
    """One batch of (input, target) patches, with the teacher's where the pairs carry its outputs.

    ``patch`` is the LR patch side for LR-space models (EDSR) and the HR side for HR-space ones (VDSR). For
    multi-scale models one scale is drawn per batch by default, since MDSR routes a whole batch through one head.
    ``mix_scales`` draws the scale per patch instead, as VDSR's paper does (its training set holds every scale,
    shuffled): one network sees every scale in every step, rather than being pulled toward one scale a step.
    """
    if mix_scales and lr_space:
        raise ValueError("mix_scales needs HR-space patches (every scale the same size), not LR-space ones")
    # A few T91 images are smaller than a patch at x4 (LR side 19 px): they are never drawn.
    eligible = [[i for i in range(len(p.lr)) if min((p.lr[i] if lr_space else p.target(i)).shape[:2]) >= patch]
                for p in pairs_by_scale]
    if not mix_scales:
        k = int(rng.integers(len(pairs_by_scale)))
    xs, ys, ts = [], [], []
    for _ in range(batch):
        if mix_scales:
            k = int(rng.integers(len(pairs_by_scale)))
        pairs, s = pairs_by_scale[k], pairs_by_scale[k].scale
        i = eligible[k][rng.integers(len(eligible[k]))]
        lr, hr = pairs.lr[i], pairs.target(i)
        if lr_space:
            h, w = lr.shape[:2]
            top, left = rng.integers(h - patch + 1), rng.integers(w - patch + 1)
            x = lr[top:top + patch, left:left + patch]
            hr_box = (slice(top * s, (top + patch) * s), slice(left * s, (left + patch) * s))
        else:
            h, w = hr.shape[:2]
            top, left = rng.integers(h - patch + 1), rng.integers(w - patch + 1)
            if pairs.lr_small:
                top, left = top - top % s, left - left % s  # on the LR grid, as a decoded frame is
                x = _upscaled_patch(lr, s, top, left, patch)
            else:
                x = lr[top:top + patch, left:left + patch]
            hr_box = (slice(top, top + patch), slice(left, left + patch))
        turn = int(rng.integers(8)) if augment else 0
        xs.append(dihedral(x, turn))
        ys.append(dihedral(hr[hr_box], turn))
        if pairs.teacher is not None:
            ts.append(dihedral(pairs.teacher[i][hr_box], turn))
    teacher = to_nchw(ts) if ts and len(ts) == batch else None
    return Batch(to_nchw(xs), to_nchw(ys), 0 if mix_scales else s, teacher)


def to_nchw(patches: list[np.ndarray]) -> np.ndarray:
    a = np.stack(patches)
    if a.ndim == 3:
        a = a[:, None]
    else:
        a = a.transpose(0, 3, 1, 2)
    a = a.astype(np.float32)
    return a / 255.0 if patches[0].dtype == np.uint8 else np.ascontiguousarray(a)
