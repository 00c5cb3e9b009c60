"""Cached degraded variants against degrading every patch on the fly: CPU-seconds of data per training step.

    python benchmarks/degrade_cost.py --recipe recipes/edsr-baseline-x2-real.toml --data ../shared/data

On the fly, each of a step's patches is a fresh draw from the recipe's ranges: an HR crop with 16 LR pixels of
context (codecs need room for motion and blocks) goes through the same ``degrade`` the cache uses, and the patch is
cut from its middle. Cached, a step only crops from variants made once; that build is shared by every step of the
schedule. Both are process CPU time on this machine, beside the training step's own cost, which the log gives.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vidsr.degradation.apply import degrade, even_crop
from vidsr.models.registry import architecture
from vidsr.quality.images import image_files, read_rgb
from vidsr.train.data import load_degraded_pairs, sample_batch
from vidsr.train.recipe import load_recipe


def on_the_fly_step(images: list[np.ndarray], recipe, scale: int, rng: np.random.Generator) -> None:
    context = 16
    for _ in range(recipe.batch):
        hr = images[int(rng.integers(len(images)))]
        side = (recipe.patch + 2 * context) * scale
        if min(hr.shape[:2]) < side:
            continue
        top, left = (int(rng.integers(hr.shape[i] - side + 1)) for i in (0, 1))
        crop = even_crop(hr[top:top + side, left:left + side], scale)
        low = degrade(crop, scale, recipe.degradation.draw(rng, scale), rng)
        low.rgb[context:context + recipe.patch, context:context + recipe.patch].copy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", type=Path, default=Path("recipes/edsr-baseline-x2-real.toml"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--images", type=int, default=24, help="training images to measure on")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    recipe = load_recipe(args.recipe)
    arch, scale = architecture(recipe.arch), recipe.scales[0]
    files = image_files([args.data / d for d in recipe.train_dirs])
    files = files[:: max(1, len(files) // args.images)][: args.images]

    t = time.process_time()
    pairs = load_degraded_pairs(files, scale, arch.colour, recipe.degradation, recipe.seed, None, log=lambda s: None)
    build = (time.process_time() - t) / len(files)  # CPU-s per training image, all its variants
    t = time.process_time()
    for step in range(args.steps):
        sample_batch([pairs], recipe.batch, recipe.patch, arch.input_space == "LR", True,
                     np.random.default_rng(step))
    cached_step = (time.process_time() - t) / args.steps

    images = [read_rgb(f) for f in files]
    t = time.process_time()
    for step in range(args.steps):
        on_the_fly_step(images, recipe, scale, np.random.default_rng(step))
    fly_step = (time.process_time() - t) / args.steps

    total_images = len(image_files([args.data / d for d in recipe.train_dirs]))
    amortised = build * total_images / recipe.steps
    print(f"recipe {recipe.id}: batch {recipe.batch} x {recipe.patch} px at x{scale}, {recipe.steps} steps")
    print(f"cached: build {build:.2f} CPU-s per image ({recipe.degradation.variants} variants), "
          f"{build * total_images / 3600:.3f} CPU-h for {total_images} images = {amortised:.3f} CPU-s per step, "
          f"plus {cached_step:.4f} CPU-s per step to crop")
    print(f"on the fly: {fly_step:.3f} CPU-s per step ({recipe.batch} degraded crops)")


if __name__ == "__main__":
    main()
