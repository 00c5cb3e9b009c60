"""RVSR: a recurrent EDSR for video, which restores each frame from its own pixels and from what the frames before
it held, carried forward as a hidden state (after BasicVSR's forward propagation and RLSP's streaming).

For each frame t the caller aligns the last hidden state and the last input frame to frame t with the motion it
measured (DIS optical flow on the input's luma; ``vidsr.frames.recurrence``), so the network itself is fully
convolutional: it tiles, exports and runs on every backend as the single-frame networks do.

    f   = head(x_t)                                          what this frame shows
    f   = fuse([f, W(h_{t-1}), x_t - W(x_{t-1})])            plus the aligned memory, and where the alignment fails
    h_t = f + body(f)                                        the new hidden state
    y_t = tail(h_t)                                          the HR frame (pixel shuffle, as EDSR)

``fuse`` starts as the identity on f and zero on the rest, so a network warm-started from an EDSR engine begins
exactly where that engine is and learns only what the memory adds. The first frame, and a frame after a cut or a
hole, gets a zero state and x_{t-1} = x_t.

The state travels in the graph's one input and one output, so that the runtimes, their profiles and the tiler need
no second tensor: the input stacks [x_t | W(h_{t-1}) | W(x_{t-1})] on the channels (LR size), and the output stacks
[y_t | h_t pixel-shuffled to HR size] (``features / scale^2`` channels), which ``split_output`` undoes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidsr.models.edsr import RGB_MEAN, ResBlock, Upsampler


def state_channels(features: int, channels: int = 3) -> int:
    """Channels of the aligned state stacked after the frame: the hidden features and the previous frame."""
    return features + channels


def split_output(out: torch.Tensor, channels: int, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's output -> (HR frame, hidden state at LR size)."""
    return out[:, :channels], F.pixel_unshuffle(out[:, channels:], scale)


class RVSR(nn.Module):
    def __init__(self, scale: int = 2, blocks: int = 16, features: int = 64, res_scale: float = 1.0,
                 channels: int = 3):
        super().__init__()
        if features % (scale * scale):
            raise ValueError(f"RVSR carries its {features} hidden features at HR size, so x{scale} needs a "
                             f"multiple of {scale * scale}")
        self.scale, self.features, self.channels = scale, features, channels
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Conv2d(channels, features, 3, padding=1)
        self.fuse = nn.Conv2d(2 * features + channels, features, 3, padding=1)
        self.body = nn.Sequential(*[ResBlock(features, res_scale) for _ in range(blocks)],
                                  nn.Conv2d(features, features, 3, padding=1))
        self.tail = nn.Sequential(Upsampler(scale, features), nn.Conv2d(features, channels, 3, padding=1))
        with torch.no_grad():
            self.fuse.weight.zero_()
            self.fuse.bias.zero_()  # type: ignore[union-attr]
            self.fuse.weight[:, :features, 1, 1] = torch.eye(features)

    mean: torch.Tensor

    def forward(self, packed: torch.Tensor) -> torch.Tensor:
        c, n = self.channels, self.features
        x, hidden, prev = packed[:, :c], packed[:, c:c + n], packed[:, c + n:]
        f = self.fuse(torch.cat([self.head(x - self.mean), hidden, x - prev], 1))
        f = f + self.body(f)
        return torch.cat([self.tail(f) + self.mean, F.pixel_shuffle(f, self.scale)], 1)

    def sequence(self, frames: torch.Tensor, flows: torch.Tensor, starts: torch.Tensor | None = None) -> torch.Tensor:
        """Training and tests: a batch of clips (B, T, C, H, W) -> their HR frames (B, T, C, sH, sW).

        flows: (B, T, 2, H, W), where each pixel of frame t was in frame t-1 (x then y, LR pixels); frame 0's is
        unused. starts: (B, T) bools, where the state starts afresh (frame 0 always does)."""
        b, t = frames.shape[:2]
        hidden = frames.new_zeros(b, self.features, *frames.shape[-2:])
        outs = []
        for i in range(t):
            x = frames[:, i]
            if i == 0:
                h_al, p_al = hidden, x
            else:
                h_al, p_al = warp(hidden, flows[:, i]), warp(frames[:, i - 1], flows[:, i])
                if starts is not None and bool(starts[:, i].any()):
                    keep = (~starts[:, i]).to(x.dtype).view(b, 1, 1, 1)
                    h_al, p_al = h_al * keep, p_al * keep + x * (1 - keep)
            y, hidden = split_output(self(torch.cat([x, h_al, p_al], 1)), self.channels, self.scale)
            outs.append(y)
        return torch.stack(outs, 1)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled at each pixel's position plus ``flow`` (N, 2, H, W; x then y, pixels):
    bilinear, edges repeated, as the temporal filter's warp."""
    n, _, h, w = image.shape
    ys = torch.arange(h, dtype=flow.dtype, device=flow.device).view(1, h, 1)
    xs = torch.arange(w, dtype=flow.dtype, device=flow.device).view(1, 1, w)
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border",
                         align_corners=True)
