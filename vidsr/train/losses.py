"""Training losses, named by recipes' ``loss`` key."""

from __future__ import annotations

import torch

from vidsr.quality.metrics import BT601_YCBCR

LOSSES = ("l1", "mse", "l1-ycbcr")


class YCbCrL1(torch.nn.Module):
    """L1 in BT.601 YCbCr with the chroma errors weighted by ``chroma_weight`` against luma's 1.

    RGB L1 spends as much of a network on chroma as on luma, yet a codec keeps a quarter of the chroma samples and
    the eye (and Y-PSNR) reads detail from luma: on compressed input the chroma is the part least worth restoring.
    Inputs are NCHW RGB in 0..1; a one-channel (Y) model gets plain L1.
    """

    matrix: torch.Tensor
    weights: torch.Tensor

    def __init__(self, chroma_weight: float) -> None:
        super().__init__()
        self.register_buffer("matrix", torch.tensor(BT601_YCBCR, dtype=torch.float32) / 255.0)
        self.register_buffer("weights", torch.tensor([1.0, chroma_weight, chroma_weight]).view(1, 3, 1, 1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert pred.shape == target.shape, f"shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}"
        if pred.shape[1] == 1:
            return torch.nn.functional.l1_loss(pred, target)
        diff = torch.einsum("ij,njhw->nihw", self.matrix, pred - target)
        return (diff.abs() * self.weights).mean()


def make_loss(name: str, chroma_weight: float = 1.0) -> torch.nn.Module:
    """The loss a recipe names: ``l1``, ``mse`` or ``l1-ycbcr`` (with ``chroma_weight``)."""
    if name == "l1":
        return torch.nn.L1Loss()
    if name == "mse":
        return torch.nn.MSELoss()
    if name == "l1-ycbcr":
        return YCbCrL1(chroma_weight)
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
