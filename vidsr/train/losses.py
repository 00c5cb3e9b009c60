"""Training losses, named by recipes' ``loss`` key."""

from __future__ import annotations

import torch

from vidsr.quality.metrics import BT601_YCBCR

LOSSES = ("l1", "mse", "l1-ycbcr", "mse-ycbcr")


class YCbCrLoss(torch.nn.Module):
    """L1 (``squared=False``) or MSE in BT.601 YCbCr, the chroma errors weighted by ``chroma_weight`` against luma's 1.

    RGB L1 spends as much of a network on chroma as on luma, yet a codec keeps a quarter of the chroma samples and
    the eye (and Y-PSNR) reads detail from luma: on compressed input the chroma is the part least worth restoring.
    Inputs are NCHW RGB in 0..1; a one-channel (Y) model gets plain L1 or MSE.

    MSE is for a last phase: L1's minimiser is the median of the plausible originals and MSE's their mean, which is
    what PSNR rewards, and the two differ most where the input leaves many originals plausible (heavy noise and
    compression). L1 first, as EDSR and its heirs train, because its gradients do not fade as the errors shrink.
    """

    matrix: torch.Tensor
    weights: torch.Tensor

    def __init__(self, chroma_weight: float, squared: bool = False) -> None:
        super().__init__()
        self.squared = squared
        self.register_buffer("matrix", torch.tensor(BT601_YCBCR, dtype=torch.float32) / 255.0)
        self.register_buffer("weights", torch.tensor([1.0, chroma_weight, chroma_weight]).view(1, 3, 1, 1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        assert pred.shape == target.shape, f"shapes differ: {tuple(pred.shape)} and {tuple(target.shape)}"
        if pred.shape[1] == 1:
            diff = pred - target
            return (diff.square() if self.squared else diff.abs()).mean()
        diff = torch.einsum("ij,njhw->nihw", self.matrix, pred - target)
        return ((diff.square() if self.squared else diff.abs()) * self.weights).mean()


def make_loss(name: str, chroma_weight: float = 1.0) -> torch.nn.Module:
    """The loss a recipe names: ``l1``, ``mse``, ``l1-ycbcr`` or ``mse-ycbcr`` (the last two with
    ``chroma_weight``)."""
    if name == "l1":
        return torch.nn.L1Loss()
    if name == "mse":
        return torch.nn.MSELoss()
    if name in ("l1-ycbcr", "mse-ycbcr"):
        return YCbCrLoss(chroma_weight, squared=name == "mse-ycbcr")
    raise ValueError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
