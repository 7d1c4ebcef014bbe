"""RDN (Zhang et al. 2018) as a LIIF encoder; module names match the paper release's checkpoints."""
import torch
import torch.nn as nn
from torch import Tensor

from .registry import register

# config -> (D blocks, C convs per block, G growth rate)
RDN_CONFIGS = {'A': (20, 6, 32), 'B': (16, 8, 64)}


def rdn_config(config) -> tuple[int, int, int]:
    """(D blocks, C convs per block, G growth) of an RDNconfig: 'A', 'B' or [D, C, G]."""
    if isinstance(config, str) and config in RDN_CONFIGS:
        return RDN_CONFIGS[config]
    if isinstance(config, (list, tuple)) and len(config) == 3 and \
            all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in config):
        return tuple(config)
    raise ValueError(f"RDNconfig must be one of {sorted(RDN_CONFIGS)} or [D, C, G] (positive integers), got {config!r}")


class RDBConv(nn.Module):
    """conv + ReLU whose output is concatenated after its input (dense connection)."""

    def __init__(self, in_ch: int, growth: int, k: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(in_ch, growth, k, padding=(k - 1) // 2), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((x, self.conv(x)), 1)  # (B, in_ch + growth, h, w)


class RDB(nn.Module):
    """Residual dense block: C dense convs, 1x1 local feature fusion, plus the block input."""

    def __init__(self, g0: int, growth: int, n_convs: int, k: int):
        super().__init__()
        self.convs = nn.Sequential(*[RDBConv(g0 + c * growth, growth, k) for c in range(n_convs)])
        self.LFF = nn.Conv2d(g0 + n_convs * growth, g0, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.LFF(self.convs(x)) + x


@register('rdn')
class RDN(nn.Module):
    """RDN (Zhang et al. 2018) as a LIIF encoder; parameter names as in the paper release.

    Config args:
        G0 (int, default 64): feature width, and `out_dim` with no_upsampling.
        RDNkSize (int, default 3): kernel size of the convolutions.
        RDNconfig ('A', 'B' or [D, C, G], default 'B'): 'A' = 20 blocks of 6 convs with growth
            32, 'B' = 16 blocks of 8 convs with growth 64 (the paper's RDN-LIIF); or D blocks of C
            convs with growth G (e.g. a converted OpenMMLab RDN, models/mmagic.py).
        scale (2, 3 or 4, default 2): the upsampling tail's factor (ignored with no_upsampling).
        no_upsampling (bool, default false): return the feature grid at the input's size (the
            LIIF encoder) instead of an upsampled image.
    """

    def __init__(self, G0: int = 64, RDNkSize: int = 3, RDNconfig: str = 'B', scale: int = 2,
                 no_upsampling: bool = False):
        super().__init__()
        d, c, g = rdn_config(RDNconfig)
        k = RDNkSize
        self.SFENet1 = nn.Conv2d(3, G0, k, padding=(k - 1) // 2)
        self.SFENet2 = nn.Conv2d(G0, G0, k, padding=(k - 1) // 2)
        self.RDBs = nn.ModuleList([RDB(G0, g, c, k) for _ in range(d)])
        self.GFF = nn.Sequential(nn.Conv2d(d * G0, G0, 1), nn.Conv2d(G0, G0, k, padding=(k - 1) // 2))
        self.no_upsampling = no_upsampling
        if no_upsampling:
            self.out_dim = G0
            return
        self.out_dim = 3
        if scale in (2, 3):
            self.UPNet = nn.Sequential(nn.Conv2d(G0, g * scale * scale, k, padding=(k - 1) // 2),
                                       nn.PixelShuffle(scale),
                                       nn.Conv2d(g, 3, k, padding=(k - 1) // 2))
        elif scale == 4:
            self.UPNet = nn.Sequential(nn.Conv2d(G0, g * 4, k, padding=(k - 1) // 2), nn.PixelShuffle(2),
                                       nn.Conv2d(g, g * 4, k, padding=(k - 1) // 2), nn.PixelShuffle(2),
                                       nn.Conv2d(g, 3, k, padding=(k - 1) // 2))
        else:
            raise ValueError(f'RDN upsampling supports scale 2, 3 or 4, got {scale}')

    def forward(self, x: Tensor) -> Tensor:
        """x (B, 3, h, w) -> features (B, G0, h, w), or an image (B, 3, s*h, s*w)."""
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        x = self.GFF(torch.cat(outs, 1)) + f1  # cat: (B, D*G0, h, w)
        return x if self.no_upsampling else self.UPNet(x)
