"""What a network costs: FLOPs per output pixel, counted from its conv layers (the rest is noise next to them)."""

from __future__ import annotations

import torch
from torch import nn


def conv_flops(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x 2 of every Conv2d in one forward pass on ``x``."""
    flops = 0

    def hook(mod: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal flops
        k = mod.weight.shape[1] * mod.weight.shape[2] * mod.weight.shape[3]
        flops += 2 * k * out.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return flops


_COUNTED: dict[tuple[str, str, int], float] = {}


def gflop_per_output_mp(engine, scale: int) -> float:
    """GFLOP per output megapixel (= MFLOP per output pixel) of ``engine`` at ``scale``, whatever its input space.
    Counted once per engine folder, weights and scale in a process: auto's tiers and ties ask for every engine."""
    key = (str(engine.path), str(engine.manifest.weights_sha256), scale)
    if key not in _COUNTED:
        _COUNTED[key] = _count(engine, scale)
    return _COUNTED[key]


def _count(engine, scale: int) -> float:
    model = engine.build()
    engine.arch.set_scale(model, scale)
    model = engine.arch.for_inference(model)  # what runs: RepNet's fused convolutions, not its training branches
    side = 32
    h, w = engine.arch.network_size(side, side, scale)
    return conv_flops(model, torch.zeros(1, engine.input_channels, h, w)) / (side * scale) ** 2 / 1e3
