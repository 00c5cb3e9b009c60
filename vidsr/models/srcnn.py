"""SRCNN (Dong et al. 2014, 2016): three convolutions on the bicubic-upscaled Y channel."""

from __future__ import annotations

import torch
from torch import nn


class SRCNN(nn.Module):
    def __init__(self, f1: int = 9, f2: int = 5, f3: int = 5, n1: int = 64, n2: int = 32, channels: int = 1):
        super().__init__()
        # 'same' padding keeps the output the size of the input, so frames need no border handling.
        self.conv1 = nn.Conv2d(channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, channels, f3, padding=f3 // 2)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)  # type: ignore[arg-type]  # Conv2d(bias=True) has one
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The layers that touch the image run in fp32 whatever autocast surrounds them. SRCNN maps the image to the
        # image (no residual, no skip), so bf16's 8-bit mantissa on the input, the 9x9 taps and the output costs
        # measurable quality: Set5 x2 36.728 dB in bf16 against 36.761 in fp32, 36.758 with these two layers in
        # fp32, for 7% more time on a Zen 5 (conv2, 89% of the FLOPs, stays in bf16). The weights' dtype, not
        # float32: a model cast whole to fp16 (the CUDA runtime's) must stay fp16.
        device = "cpu" if x.device.type == "meta" else x.device.type  # meta: the FLOP count's shapes-only pass
        with torch.autocast(device, enabled=False):
            x = torch.relu(self.conv1(x.to(self.conv1.weight.dtype)))
        x = torch.relu(self.conv2(x))
        with torch.autocast(device, enabled=False):
            return self.conv3(x.to(self.conv3.weight.dtype))
