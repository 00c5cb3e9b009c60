"""EDSR and MDSR (Lim et al. 2017): residual blocks without batch norm, in low-resolution space, pixel-shuffled up.

EDSR-baseline is 16 blocks x 64 features with res-scale 1; EDSR full is 32 x 256 with res-scale 0.1. MDSR shares
one body between scales and gives each scale its own head (pre-processing blocks) and tail (upsampler).
"""

from __future__ import annotations

import torch
from torch import nn

# Mean of DIV2K in RGB [0, 1]: subtracting it centres the input, as the reference implementation does.
RGB_MEAN = (0.4488, 0.4371, 0.4040)


def residual_blocks(state: dict[str, torch.Tensor]) -> int:
    """How many residual blocks an EDSR or MDSR state dict's body holds."""
    return sum(1 for k in state if k.startswith("body.") and k.endswith(".conv1.weight"))


class ResBlock(nn.Module):
    def __init__(self, features: int, res_scale: float = 1.0, kernel: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel, padding=kernel // 2)
        self.conv2 = nn.Conv2d(features, features, kernel, padding=kernel // 2)
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(torch.relu(self.conv1(x))) * self.res_scale


class Upsampler(nn.Sequential):
    """x2 and x4 as one or two x2 pixel-shuffle steps, x3 as one x3 step."""

    def __init__(self, scale: int, features: int):
        steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(features, features * r * r, 3, padding=1), nn.PixelShuffle(r)]
        super().__init__(*layers)


class EDSR(nn.Module):
    def __init__(self, scale: int = 2, blocks: int = 16, features: int = 64, res_scale: float = 1.0,
                 channels: int = 3):
        super().__init__()
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)],
                                  nn.Conv2d(features, features, 3, padding=1))
        self.tail = nn.Sequential(Upsampler(scale, features), nn.Conv2d(features, channels, 3, padding=1))

    @staticmethod
    def deepen(state: dict[str, torch.Tensor], blocks: int) -> dict[str, torch.Tensor]:
        """A shallower EDSR's state dict grown to ``blocks`` residual blocks that compute the same function: the
        new blocks go after the old ones, each an identity to start with (its second conv zeroed; its first keeps
        the model's random init, so that gradients reach it once the second moves), and the body's closing conv
        moves to its new index. A state dict with ``blocks`` blocks already comes back as it is."""
        old = residual_blocks(state)
        if old >= blocks:
            return state
        closing = f"body.{old}."
        out = {f"body.{blocks}.{k[len(closing):]}" if k.startswith(closing) else k: v for k, v in state.items()}
        for i in range(old, blocks):
            out[f"body.{i}.conv2.weight"] = torch.zeros_like(state["body.0.conv2.weight"])
            out[f"body.{i}.conv2.bias"] = torch.zeros_like(state["body.0.conv2.bias"])
        return out

    mean: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(x - self.mean)
        x = x + self.body(x)
        return self.tail(x) + self.mean


class MDSR(nn.Module):
    def __init__(self, scales: tuple[int, ...] = (2, 3, 4), blocks: int = 16, features: int = 64,
                 res_scale: float = 1.0, channels: int = 3):
        super().__init__()
        self.scales = tuple(scales)
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        # Scale-specific pre-processing: two 5x5 residual blocks per scale, as in the paper.
        self.pre = nn.ModuleDict({str(s): nn.Sequential(ResBlock(features, 1.0, 5), ResBlock(features, 1.0, 5))
                                  for s in self.scales})
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)],
                                  nn.Conv2d(features, features, 3, padding=1))
        self.up = nn.ModuleDict({str(s): Upsampler(s, features) for s in self.scales})
        self.tail = nn.Conv2d(features, channels, 3, padding=1)
        self.scale: int = self.scales[0]
        # Each pre-processing block starts as the identity (its last conv zeroed): a warm start from EDSR then
        # begins exactly where EDSR is, and a cold start loses nothing, since the block still learns.
        for block in self.pre.values():
            for res in block.children():
                assert isinstance(res, ResBlock)
                nn.init.zeros_(res.conv2.weight)
                nn.init.zeros_(res.conv2.bias)  # type: ignore[arg-type]

    @staticmethod
    def adopt_edsr(edsr: dict[str, torch.Tensor], scale: int) -> dict[str, torch.Tensor]:
        """An EDSR state dict of ``scale`` renamed into this model's keys: head and body are shared, EDSR's
        upsampler becomes this scale's, and its last conv the shared tail."""
        out = {}
        for key, value in edsr.items():
            if key.startswith("tail.0."):
                out[f"up.{scale}.{key[len('tail.0.'):]}"] = value
            elif key.startswith("tail.1."):
                out[f"tail.{key[len('tail.1.'):]}"] = value
            else:
                out[key] = value
        return out

    mean: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The active scale is module state, not an argument, so that MDSR exports to ONNX with the same
        # single-input signature as every other model.
        key = str(self.scale)
        x = self.pre[key](self.head(x - self.mean))
        x = x + self.body(x)
        return self.tail(self.up[key](x)) + self.mean
