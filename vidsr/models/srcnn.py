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
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.conv3(x)
