"""Descriptors of the architectures we ship (after spandrel): what each one eats and how it scales.

A descriptor says what the pipeline must feed the network: the colour mode (the luma plane ``Y`` or ``RGB``) and
the input space (``HR``: bicubic-upscaled to the output size first, as SRCNN and VDSR expect; ``LR``: the
network upsamples itself, as EDSR and MDSR do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vidsr.models.edsr import EDSR, MDSR
from vidsr.models.srcnn import SRCNN
from vidsr.models.vdsr import VDSR


@dataclass(frozen=True)
class Architecture:
    name: str
    colour: str  # "Y" or "RGB"
    input_space: str  # "HR" or "LR"
    builder: Callable[..., nn.Module]
    multi_scale: bool  # one set of weights serves every scale

    def build(self, config: dict[str, Any], scales: tuple[int, ...]) -> nn.Module:
        if self.name == "edsr":
            return self.builder(scale=scales[0], **config)
        if self.name == "mdsr":
            return self.builder(scales=scales, **config)
        return self.builder(**config)

    @property
    def channels(self) -> int:
        return 1 if self.colour == "Y" else 3


ARCHITECTURES: dict[str, Architecture] = {
    "srcnn": Architecture("srcnn", "Y", "HR", SRCNN, multi_scale=False),
    "vdsr": Architecture("vdsr", "Y", "HR", VDSR, multi_scale=True),
    "edsr": Architecture("edsr", "RGB", "LR", EDSR, multi_scale=False),
    "mdsr": Architecture("mdsr", "RGB", "LR", MDSR, multi_scale=True),
}

# Named configurations: "edsr" on the command line means the trained baseline, "edsr-full" the paper's large model.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "srcnn": ("srcnn", {"f1": 9, "f2": 5, "f3": 5}),  # 9-5-5: the TPAMI paper's best, whose numbers are our bars
    "vdsr": ("vdsr", {"depth": 20, "features": 64}),
    "edsr-baseline": ("edsr", {"blocks": 16, "features": 64, "res_scale": 1.0}),
    "edsr-full": ("edsr", {"blocks": 32, "features": 256, "res_scale": 0.1}),
    "mdsr": ("mdsr", {"blocks": 16, "features": 64, "res_scale": 1.0}),
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
