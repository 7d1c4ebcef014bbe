"""RCAN (Zhang et al. 2018) as a LIIF encoder, as the LIIF release builds it (docs/design.md §2.4);
module names match that release's checkpoints."""
import torch.nn as nn
from torch import Tensor

from .edsr import ResidualSR, conv
from .registry import register


class ChannelAttention(nn.Module):
    """Rescales each channel by a gate computed from the channel means of the whole map."""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        self.conv_du = nn.Sequential(conv(n_feats, n_feats // reduction, 1), nn.ReLU(inplace=True),
                                     conv(n_feats // reduction, n_feats, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return x * self.conv_du(x.mean((2, 3), keepdim=True))  # gate: (B, F, 1, 1)


class RCAB(nn.Module):
    """Residual channel attention block: conv, ReLU, conv, channel attention, plus the input.
    (No residual scaling: the release's res_scale is never applied.)"""

    def __init__(self, n_feats: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(conv(n_feats, n_feats), nn.ReLU(True), conv(n_feats, n_feats),
                                  ChannelAttention(n_feats, reduction))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


class ResidualGroup(nn.Module):
    """n_resblocks RCABs then a conv, plus the group input."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int):
        super().__init__()
        self.body = nn.Sequential(*[RCAB(n_feats, reduction) for _ in range(n_resblocks)],
                                  conv(n_feats, n_feats))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + x


@register('rcan')
class RCAN(ResidualSR):
    """RCAN: head conv (3 -> F), residual groups then a conv, plus the head's output; with
    upsampling, EDSR's upsampler and a conv F -> 3.

    Args (a config may pass any of them):
        n_resgroups: residual groups in the body.
        n_resblocks: RCAB blocks per group.
        n_feats: feature width F (the encoder's `out_dim` with no_upsampling).
        reduction: channel attention squeezes F to F // reduction.
        scale: upsampling factor of the tail (2^n or 3); unused with no_upsampling.
        no_upsampling: return the (B, F, h, w) features instead of a (B, 3, s*h, s*w) image.
        rgb_range: range of the mean-shift layers, which exist only so released checkpoints load:
            like the release, forward never applies them (pinned by the rcan-upsample vector).
    """

    def __init__(self, n_resgroups: int = 10, n_resblocks: int = 20, n_feats: int = 64,
                 reduction: int = 16, scale: int = 2, no_upsampling: bool = False, rgb_range: float = 1):
        super().__init__(lambda: ResidualGroup(n_feats, reduction, n_resblocks), n_resgroups, n_feats, scale,
                         no_upsampling, rgb_range)
