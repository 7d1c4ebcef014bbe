"""Tiled encoding: run a convolutional encoder on overlapping tiles and stitch the latent grid.

A feature at latent cell (i, j) depends only on input pixels within the encoder's receptive
radius R of (i, j). A tile extended by R on every side (clipped at the image border, where the
zero padding is the same as in the untiled pass) therefore yields exactly the untiled features
at its core; only the cores are kept. R is the sum of the conv radii (k - 1) / 2 * dilation over
the encoder: exact for a plain chain of convs (EDSR-baseline: head 1 + 16 blocks x 2 + body 1 =
34 px; RDN-B: 2 + 16 x 8 + 1 = 131 px), an upper bound (still exact tiling) for branching nets.

Memory: the stitched grid is C x h x w float32 (64 x 4000 x 4000 = 4.1 GB), held whole because
LIIF's queries read any latent cell; tiling bounds only the encoder's activations.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

# Modules that act on each pixel alone (or rearrange pixels locally, like PixelShuffle).
_POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
              nn.Identity, nn.Dropout, nn.PixelShuffle)


def receptive_radius(encoder: nn.Module) -> int:
    """Input pixels on each side that can influence one feature of `encoder`: its attribute
    `receptive_radius` if it has one, else the sum of the radii of its convs. Raises ValueError
    for a layer whose reach this cannot bound (strided conv, pooling, attention, ...)."""
    radius = getattr(encoder, 'receptive_radius', None)
    if radius is not None:
        return int(radius)
    total = 0
    for name, m in encoder.named_modules():
        if len(list(m.children())) > 0:
            continue  # containers: their leaves are visited
        if isinstance(m, nn.Conv2d):
            k, d = m.kernel_size, m.dilation
            same = all(m.padding[i] == d[i] * (k[i] - 1) // 2 for i in range(2)) \
                if not isinstance(m.padding, str) else m.padding == 'same'
            if m.stride != (1, 1) or not same or k[0] % 2 == 0 or k[1] % 2 == 0:
                raise ValueError(f'cannot tile the encoder: {name} is not a same-size odd-kernel '
                                 'stride-1 conv; give the encoder a receptive_radius attribute')
            total += max(d[0] * (k[0] - 1) // 2, d[1] * (k[1] - 1) // 2)
        elif not isinstance(m, _POINTWISE):
            raise ValueError(f'cannot tile the encoder: the reach of {name} '
                             f'({type(m).__name__}) is unknown; give the encoder a '
                             'receptive_radius attribute')
    return total


def tile_spans(n: int, tile: int, radius: int) -> list[tuple[int, int, int, int]]:
    """Split an axis of length n into cores of `tile` pixels: (core0, core1, pad0, pad1) per tile,
    the padded span being the core extended by `radius` on each side, clipped to [0, n]."""
    return [(c0, min(c0 + tile, n), max(0, c0 - radius), min(n, c0 + tile + radius))
            for c0 in range(0, n, tile)]


@torch.no_grad()
def encode_tiled(encoder: nn.Module, inp: Tensor, tile: int, radius: Optional[int] = None,
                 progress=None) -> Tensor:
    """inp (B, 3, h, w) -> the encoder's output (B, C, s*h, s*w) computed tile by tile, each tile
    a core of tile x tile input pixels plus `radius` (default: receptive_radius) around it.
    `progress`, if given, is called once per finished tile."""
    if tile < 1:
        raise ValueError(f'tile must be at least 1 pixel, got {tile}')
    radius = receptive_radius(encoder) if radius is None else radius
    b, _, h, w = inp.shape
    feat = None
    for y0, y1, py0, py1 in tile_spans(h, tile, radius):
        for x0, x1, px0, px1 in tile_spans(w, tile, radius):
            out = encoder(inp[:, :, py0:py1, px0:px1])  # (B, C, s*(py1-py0), s*(px1-px0))
            s, rem = divmod(out.shape[-2], py1 - py0)
            if rem or s < 1 or out.shape[-1] != s * (px1 - px0):
                raise ValueError('cannot tile the encoder: its output size is not an integer '
                                 f'multiple of its input size ({tuple(out.shape[-2:])} from '
                                 f'{(py1 - py0, px1 - px0)})')
            if feat is None:
                feat = out.new_empty(b, out.shape[1], s * h, s * w)
            elif feat.shape[-1] != s * w:
                raise ValueError('cannot tile the encoder: its scale differs between tiles')
            feat[:, :, s * y0:s * y1, s * x0:s * x1] = \
                out[:, :, s * (y0 - py0):s * (y1 - py0), s * (x0 - px0):s * (x1 - px0)]
            if progress is not None:
                progress()
    return feat
