"""Descriptors of the architectures we ship (after spandrel): what each one eats and how it scales.

A descriptor says what the pipeline must feed the network: the colour mode (the luma plane ``Y`` or ``RGB``) and
the input space (``HR``: bicubic-upscaled to the output size first, as SRCNN and VDSR expect; ``LR``: the
network upsamples itself, as EDSR and MDSR do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vidsr.models.edsr import EDSR, MDSR
from vidsr.models.repnet import RepNet
from vidsr.models.rvsr import RVSR, state_channels
from vidsr.models.srcnn import SRCNN
from vidsr.models.vdsr import VDSR


@dataclass(frozen=True)
class Architecture:
    """What callers ask of a network instead of probing the module: how to build it, what it eats, how it
    scales, how wide it gets and which precisions it runs in."""

    name: str
    colour: str  # "Y" or "RGB"
    input_space: str  # "HR" (bicubic-upscaled to the output size first) or "LR" (the network upsamples)
    builder: Callable[..., nn.Module]
    multi_scale: bool  # one set of weights serves every scale
    takes_scale: str = ""  # the builder's scale argument: "scale" (one), "scales" (a tuple), "" (none)
    precisions: tuple[str, ...] = ("fp32", "bf16", "fp16")
    # For MDSR: renames a single-scale EDSR state dict into its own keys, for warm starts.
    adopt: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]] | None = None
    # For EDSR: grows a shallower state dict to a deeper model's block count, computing the same function.
    deepen: Callable[[dict[str, torch.Tensor], int], dict[str, torch.Tensor]] | None = None
    # Carries a hidden state from frame to frame (RVSR): it runs on videos, one frame after another, and its graph
    # takes the aligned state stacked after the frame (``input_channels``).
    recurrent: bool = False
    # For RepNet: the network as it runs, its training branches fused into one convolution a layer. Loading an
    # engine, exporting it and counting its FLOPs all go through here.
    inference: Callable[[nn.Module], nn.Module] | None = None

    def for_inference(self, model: nn.Module) -> nn.Module:
        """``model`` as it runs: itself, or the one its descriptor fuses it into."""
        return self.inference(model) if self.inference is not None else model

    def build(self, config: dict[str, Any], scales: tuple[int, ...]) -> nn.Module:
        if self.takes_scale == "scale":
            return self.builder(scale=scales[0], **config)
        if self.takes_scale == "scales":
            return self.builder(scales=scales, **config)
        return self.builder(**config)

    def set_scale(self, model: nn.Module, scale: int) -> None:
        """Route a multi-scale network with per-scale heads (MDSR) through ``scale``; a no-op elsewhere."""
        if self.takes_scale == "scales":
            setattr(model, "scale", scale)  # noqa: B010 - MDSR's active head is plain module state

    def network_size(self, height: int, width: int, scale: int) -> tuple[int, int]:
        """The (height, width) the network sees for a frame of this size: HR-space models see it upscaled."""
        return (height * scale, width * scale) if self.input_space == "HR" else (height, width)

    @staticmethod
    def widest(config: dict[str, Any]) -> int:
        """The widest feature count, which bounds activation memory (SRCNN calls its first layer n1)."""
        return int(config.get("features", config.get("n1", 64)))

    @property
    def channels(self) -> int:
        return 1 if self.colour == "Y" else 3

    def input_channels(self, config: dict[str, Any]) -> int:
        """Channels of the network's input: the frame's, plus the aligned state of a recurrent network."""
        return self.channels + (state_channels(self.widest(config), self.channels) if self.recurrent else 0)


def _mdsr_adopt(edsr: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
    return MDSR.adopt_edsr(edsr, scale)


ARCHITECTURES: dict[str, Architecture] = {
    "srcnn": Architecture("srcnn", "Y", "HR", SRCNN, multi_scale=False),
    "vdsr": Architecture("vdsr", "Y", "HR", VDSR, multi_scale=True),
    "edsr": Architecture("edsr", "RGB", "LR", EDSR, multi_scale=False, takes_scale="scale", deepen=EDSR.deepen),
    "mdsr": Architecture("mdsr", "RGB", "LR", MDSR, multi_scale=True, takes_scale="scales", adopt=_mdsr_adopt),
    # EDSR's keys, so that it warm-starts from an EDSR engine (and deepens as EDSR does); x2 and x4 only, since
    # its hidden features ride pixel-shuffled at HR size.
    "rvsr": Architecture("rvsr", "RGB", "LR", RVSR, multi_scale=False, takes_scale="scale", deepen=EDSR.deepen,
                         precisions=("fp32", "bf16", "fp16"), recurrent=True),
    # Plain 3x3 convolutions at LR size, trained with branches (vidsr/models/repnet.py): the fast tier.
    "repnet": Architecture("repnet", "RGB", "LR", RepNet, multi_scale=False, takes_scale="scale",
                           inference=lambda model: model.fused()),  # type: ignore[operator]
}

# Named configurations: "edsr" on the command line means the trained baseline, "edsr-full" the paper's large model.
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "srcnn": ("srcnn", {"f1": 9, "f2": 5, "f3": 5}),  # 9-5-5: the TPAMI paper's best, whose numbers are our bars
    "vdsr": ("vdsr", {"depth": 20, "features": 64}),
    "edsr-baseline": ("edsr", {"blocks": 16, "features": 64, "res_scale": 1.0}),
    "edsr-full": ("edsr", {"blocks": 32, "features": 256, "res_scale": 0.1}),
    # EDSR-full's depth at the baseline's width: for heavily degraded input, where the baseline's capacity binds.
    "edsr-deep": ("edsr", {"blocks": 32, "features": 64, "res_scale": 1.0}),
    "mdsr": ("mdsr", {"blocks": 16, "features": 64, "res_scale": 1.0}),
    # EDSR-baseline's body with a recurrent memory of the frames before: for video.
    "rvsr": ("rvsr", {"blocks": 16, "features": 64, "res_scale": 1.0}),
    # The fast tier: a tenth or less of EDSR-baseline's FLOPs a pixel (docs/PERFORMANCE.md has the speeds).
    "repnet": ("repnet", {"features": 32, "blocks": 4, "expand": 2}),
    # The fast tier's speed with 6x the fused weights: 2x2 pixel blocks folded into channels, 64 features wide at a
    # quarter of the positions. Trained once, it learned less than "repnet" (docs/probes/repnet-wide-x2-heavy.toml).
    "repnet-wide": ("repnet", {"features": 64, "blocks": 6, "expand": 2, "unshuffle": 2}),
}


def architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
