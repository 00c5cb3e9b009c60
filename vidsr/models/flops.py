"""What a network costs: FLOPs per output pixel, counted from its conv layers (the rest is noise next to them)."""

from __future__ import annotations

from typing import Any

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
MANIFEST_FIELD = "gflop_per_output_mp"  # {"2": 686.3, ...}: written with the engine, so that no run counts again


def gflop_per_output_mp(engine: Any, scale: int) -> float:
    """GFLOP per output megapixel (= MFLOP per output pixel) of ``engine`` at ``scale``, whatever its input space:
    the manifest's figure, else counted once per engine folder, weights and scale in a process (auto's tiers and
    ties ask for every engine)."""
    stored = engine.manifest.raw.get(MANIFEST_FIELD, {}).get(str(scale))
    if stored is not None:
        return float(stored)
    key = (str(engine.path), str(engine.manifest.weights_sha256), scale)
    if key not in _COUNTED:
        _COUNTED[key] = count_gflop_per_output_mp(engine.arch, engine.manifest.config, tuple(engine.scales), scale)
    return _COUNTED[key]


def count_gflop_per_output_mp(arch: Any, config: dict[str, Any], scales: tuple[int, ...], scale: int) -> float:
    """The count itself, for the network ``arch`` builds from ``config`` as it runs (RepNet's fused convolutions,
    not its training branches). On the meta device: shapes only, no arithmetic, no weights. Run for real, counting
    a dozen engines took 14 s of a `--quality fast` run, oneDNN making its kernels afresh for each shape; the first
    meta pass still costs about 1.5 s (torch imports its decompositions), hence the manifest's copy."""
    side = 32
    with torch.device("meta"):
        model = arch.build(config, scales)
        arch.set_scale(model, scale)
        model = arch.for_inference(model)
        h, w = arch.network_size(side, side, scale)
        x = torch.zeros(1, arch.input_channels(config), h, w)
    return conv_flops(model, x) / (side * scale) ** 2 / 1e3
