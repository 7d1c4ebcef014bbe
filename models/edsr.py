"""EDSR (Lim et al. 2017) as a LIIF encoder; module names match the paper release's checkpoints."""
import math
from typing import Callable

import torch
import torch.nn as nn
from torch import Tensor

from .registry import register

# DIV2K RGB mean of the EDSR code. The mean-shift layers exist only so that released checkpoints
# load: they are not applied in forward (docs/design.md §2).
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def conv(in_ch: int, out_ch: int, kernel_size: int = 3) -> nn.Conv2d:
    """A same-size convolution with bias."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=True)


class MeanShift(nn.Conv2d):
    """A fixed 1x1 convolution adding (sign=1) or subtracting (sign=-1) the RGB mean."""

    def __init__(self, rgb_range: float, sign: int):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(DIV2K_RGB_MEAN)
        for p in self.parameters():
            p.requires_grad = False


class ResBlock(nn.Module):
    def __init__(self, n_feats: int, res_scale: float):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats), nn.ReLU(True), conv(n_feats, n_feats))
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x).mul(self.res_scale) + x


def upsampler(scale: int, n_feats: int) -> nn.Sequential:
    """conv + PixelShuffle stages: log2(scale) x2 stages for a power of 2, one x3 stage for 3."""
    layers = []
    if scale & (scale - 1) == 0:
        for _ in range(int(math.log2(scale))):
            layers += [conv(n_feats, 4 * n_feats), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [conv(n_feats, 9 * n_feats), nn.PixelShuffle(3)]
    else:
        raise ValueError(f'EDSR upsampling supports scale 2^n or 3, got {scale}')
    return nn.Sequential(*layers)


class ResidualSR(nn.Module):
    """The skeleton EDSR and RCAN share: head conv (3 -> F), a body of n_blocks blocks then a conv, plus
    the head's output; with upsampling, a tail (upsampler, conv F -> 3). The mean-shift layers
    exist so that released checkpoints load; forward never applies them (docs/design.md §2)."""

    def __init__(self, make_block: Callable[[], nn.Module], n_blocks: int, n_feats: int, scale: int = 2,
                 no_upsampling: bool = False, rgb_range: float = 1):
        super().__init__()
        # Built in this order (head, then blocks), so a seed gives the weights it always gave.
        self.sub_mean = MeanShift(rgb_range, -1)
        self.add_mean = MeanShift(rgb_range, 1)
        self.head = nn.Sequential(conv(3, n_feats))
        self.body = nn.Sequential(*[make_block() for _ in range(n_blocks)], conv(n_feats, n_feats))
        self.no_upsampling = no_upsampling
        if no_upsampling:
            self.out_dim = n_feats
        else:
            self.tail = nn.Sequential(upsampler(scale, n_feats), conv(n_feats, 3))
            self.out_dim = 3

    def forward(self, x: Tensor) -> Tensor:
        """x (B, 3, h, w) -> features (B, n_feats, h, w), or an image (B, 3, s*h, s*w)."""
        h = self.head(x)
        res = self.body(h) + h
        return res if self.no_upsampling else self.tail(res)


class EDSR(ResidualSR):
    """EDSR: ResidualSR with n_resblocks ResBlocks."""

    def __init__(self, n_resblocks: int, n_feats: int, res_scale: float, scale: int = 2,
                 no_upsampling: bool = False, rgb_range: float = 1):
        super().__init__(lambda: ResBlock(n_feats, res_scale), n_resblocks, n_feats, scale, no_upsampling,
                         rgb_range)


EDSR_ARGS = """

    Config args:
        n_resblocks (int): residual blocks in the body.
        n_feats (int): feature width, and `out_dim` with no_upsampling.
        res_scale (float): each block's residual is multiplied by this before it is added.
        scale (2^n or 3): the upsampling tail's factor (ignored with no_upsampling).
        no_upsampling (bool, default false): return the feature grid at the input's size (the
            LIIF encoder) instead of an upsampled image.
        rgb_range (float, default 1): scale of the mean-shift layers, kept only so that released
            checkpoints load (they are not applied).
"""


@register('edsr-baseline')
def make_edsr_baseline(n_resblocks: int = 16, n_feats: int = 64, res_scale: float = 1, scale: int = 2,
                       no_upsampling: bool = False, rgb_range: float = 1) -> EDSR:
    """EDSR-baseline (16 blocks, 64 wide, residual scale 1), the paper's main LIIF encoder."""
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)


@register('edsr')
def make_edsr(n_resblocks: int = 32, n_feats: int = 256, res_scale: float = 0.1, scale: int = 2,
              no_upsampling: bool = False, rgb_range: float = 1) -> EDSR:
    """EDSR (32 blocks, 256 wide, residual scale 0.1)."""
    return EDSR(n_resblocks, n_feats, res_scale, scale, no_upsampling, rgb_range)


make_edsr_baseline.__doc__ += EDSR_ARGS
make_edsr.__doc__ += EDSR_ARGS
