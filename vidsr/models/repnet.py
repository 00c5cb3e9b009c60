"""RepNet: a plain stack of 3x3 convolutions at LR size for the fast tier, trained with branches and run as one
convolution a layer (after ECBSR and SPAN's Conv3XC).

A CPU runs a plain 3x3 convolution best; a network of nothing else is hard to train. So each layer trains as the sum
of four branches over the same input (a 3x3 convolution, a 1x1 expansion into a 3x3 convolution, a 1x1 convolution
and the identity) and ships as the one 3x3 convolution they add up to: linear maps compose and add exactly.
``RepNet.fused()`` returns that network; it computes what the branched one does to float precision (tested), and
it is what every runtime and the ONNX graph get. The output adds the input, repeated over each output pixel's
sub-pixels before the pixel shuffle: nearest-neighbour upsampling for free, so the layers learn only the residual.

``unshuffle`` > 1 folds each u x u block of input pixels into channels first (FFDNet's sub-images) and shuffles the
tail out by u times the scale: at the same FLOPs a pixel, u times the width over u^2 fewer positions, and each layer
sees u times as far. Compression blocks (8-16 pixels) and noise need that reach, which a few 3x3 layers at full
resolution lack. The input is padded by repeating its last row and column to a multiple of u, and the output cropped.

``base="bicubic"`` adds the input upsampled bicubically instead of by nearest neighbour (an ONNX Resize, which every
runtime has). The x4 engines use it. Tried against nearest neighbour's 4x4 blocks at x4, it measured the same under
degradation and 0.03-0.06 dB better on clean input (docs/TRAINING.md, the fast tier's other engines).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - torch's own idiom
from torch import nn

BASES = ("nearest", "bicubic")  # what the output adds the learned residual to


class RepConv(nn.Module):
    """One layer: four branches in training, one 3x3 convolution once fused. ``expand``: the 1x1 expansion's width,
    as a multiple of ``c_out``; the identity branch exists only where ``c_in == c_out``."""

    def __init__(self, c_in: int, c_out: int, expand: int = 2):
        super().__init__()
        self.c_in, self.c_out = c_in, c_out
        self.conv3 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv1 = nn.Conv2d(c_in, c_out, 1)
        # No bias on the expansion: zero padding after a biased 1x1 would make the border differ from the fused
        # kernel's, which pads the input itself.
        self.expand = nn.Conv2d(c_in, c_out * expand, 1, bias=False)
        self.squeeze = nn.Conv2d(c_out * expand, c_out, 3, padding=1)
        self.identity = c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(x) + self.conv1(x) + self.squeeze(self.expand(x))
        return y + x if self.identity else y

    def kernel(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (weight, bias) of the one 3x3 convolution the branches add up to."""
        w = self.conv3.weight.detach().clone()
        b = sum((c.bias.detach() for c in (self.conv3, self.conv1, self.squeeze) if c.bias is not None),
                torch.zeros(self.c_out))
        w[:, :, 1, 1] += self.conv1.weight.detach()[:, :, 0, 0]
        # squeeze(expand(x)): out[o] = sum_e Ws[o, e] * (sum_i We[e, i] x[i]) = sum_i (sum_e Ws[o, e] We[e, i]) x[i]
        w += torch.einsum("oekl,ei->oikl", self.squeeze.weight.detach(), self.expand.weight.detach()[:, :, 0, 0])
        if self.identity:
            w[:, :, 1, 1] += torch.eye(self.c_out, dtype=w.dtype)
        return w, b


class RepNet(nn.Module):
    """``features`` wide and ``blocks`` deep at LR size, for one ``scale``; RGB in [0, 1] in and out."""

    def __init__(self, scale: int = 2, features: int = 32, blocks: int = 6, expand: int = 2, colours: int = 3,
                 unshuffle: int = 1, base: str = "nearest"):
        super().__init__()
        if base not in BASES:
            raise ValueError(f"repnet base {base!r}: one of {', '.join(BASES)}")
        self.scale, self.colours, self.unshuffle, self.base = scale, colours, unshuffle, base
        self.head = RepConv(colours * unshuffle**2, features, expand)
        self.body = nn.ModuleList(RepConv(features, features, expand) for _ in range(blocks))
        self.acts = nn.ModuleList(nn.PReLU(features) for _ in range(blocks + 1))
        self.tail = RepConv(features, colours * (scale * unshuffle) ** 2, expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.acts[0](self.head(fold(x, self.unshuffle)))
        for conv, act in zip(self.body, self.acts[1:]):
            h = act(conv(h))
        return unfold(self.tail(h), x, self.scale, self.unshuffle, self.base)

    def fused(self) -> FusedRepNet:
        """The same function as one 3x3 convolution a layer, for inference and export."""
        layers = [self.head, *(b for b in self.body if isinstance(b, RepConv)), self.tail]
        net = FusedRepNet(self.scale, [(layer.c_in, layer.c_out) for layer in layers], self.colours, self.unshuffle,
                          self.base)
        fused: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(layers):
            fused[f"convs.{i}.weight"], fused[f"convs.{i}.bias"] = layer.kernel()
        for i, act in enumerate(a for a in self.acts if isinstance(a, nn.PReLU)):
            fused[f"acts.{i}.weight"] = act.weight.detach()
        net.load_state_dict(fused)
        return net.train(self.training)


class FusedRepNet(nn.Module):
    """RepNet as it runs: 3x3 convolutions with PReLUs between them, a shuffle, and the input upsampled by ``base``."""

    def __init__(self, scale: int, shapes: list[tuple[int, int]], colours: int = 3, unshuffle: int = 1,
                 base: str = "nearest"):
        super().__init__()
        self.scale, self.colours, self.unshuffle, self.base = scale, colours, unshuffle, base
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in shapes)
        self.acts = nn.ModuleList(nn.PReLU(c_out) for _, c_out in shapes[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = fold(x, self.unshuffle)
        for conv, act in zip(self.convs[:-1], self.acts):
            h = act(conv(h))
        return unfold(self.convs[-1](h), x, self.scale, self.unshuffle, self.base)


def fold(x: torch.Tensor, unshuffle: int) -> torch.Tensor:
    """``x`` with each ``unshuffle`` x ``unshuffle`` block of pixels as channels, padded to fit by repeating edges."""
    if unshuffle == 1:
        return x
    h, w = x.shape[-2:]
    return F.pixel_unshuffle(F.pad(x, (0, (-w) % unshuffle, 0, (-h) % unshuffle), mode="replicate"), unshuffle)


def unfold(residual: torch.Tensor, x: torch.Tensor, scale: int, unshuffle: int, base: str = "nearest") -> torch.Tensor:
    """The HR frame: the tail's output shuffled out to pixels, plus ``x`` upsampled by ``base``."""
    if unshuffle == 1 and base == "nearest":  # the same sum without a resize: x repeated over each pixel's sub-pixels
        return F.pixel_shuffle(residual + x.repeat_interleave(scale * scale, dim=1), scale)
    h, w = x.shape[-2:]
    y = F.pixel_shuffle(residual, scale * unshuffle)[..., : h * scale, : w * scale]
    corners = {} if base == "nearest" else {"align_corners": False}
    return y + F.interpolate(x, scale_factor=scale, mode=base, **corners)
