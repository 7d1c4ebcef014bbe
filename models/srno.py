"""SRNO: the Super-Resolution Neural Operator (Wei and Zhang, CVPR 2023), docs/design.md §2.5.

Each query's four neighbouring codes, area-weighted, and the four offsets to them are lifted to
`width` channels by a 1x1 convolution; two Galerkin-type attention blocks mix every query of the
call; a 1x1 two-layer head gives the colour, added to the input upsampled bilinearly.
Module names and shapes are the authors' (their 1x1 convolutions applied per query).
"""
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import to_latent_units
from .galerkin import GalerkinBlock, GalerkinQueries, check_heads, corner_features, pointwise, split_heads
from .registry import make, register

# The authors' lifting layer takes (64 + 2) * 4 + 2 = 266 channels: the encoder must give 64.
FEAT_DIM = 64
HEAD_DIM = 256


class HeadLayerNorm(nn.Module):
    """SRNO's LayerNorm over the last dim of (B, heads, Q, c): `weight * (t - mean) / (std + eps)
    + bias`, the std unbiased and eps added to it, one affine (heads, 1, c) per head."""

    def __init__(self, heads: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(heads, 1, dim))
        self.bias = nn.Parameter(torch.zeros(heads, 1, dim))
        self.eps = eps

    def forward(self, t: Tensor) -> Tensor:
        mean = t.mean(-1, keepdim=True)
        std = t.std(-1, keepdim=True)
        return self.weight * (t - mean) / (std + self.eps) + self.bias


class SimpleAttention(GalerkinBlock):
    """SRNO's attention block (the authors' `simple_attn`): 1x1 convs qkv_proj (C -> 3C), o_proj1
    and o_proj2 (C -> C), per-head LayerNorms kln and vln on keys and values."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Conv2d(dim, 3 * dim, 1)
        self.o_proj1 = nn.Conv2d(dim, dim, 1)
        self.o_proj2 = nn.Conv2d(dim, dim, 1)
        self.kln = HeadLayerNorm(heads, dim // heads)
        self.vln = HeadLayerNorm(heads, dim // heads)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = split_heads(pointwise(self.qkv_proj, x), self.heads)
        return q, self.kln(k), self.vln(v)

    def mlp(self, x: Tensor) -> Tensor:
        return pointwise(self.o_proj2, F.gelu(pointwise(self.o_proj1, x)))


@register('sronet')
class SRNO(GalerkinQueries):
    """SRNO (registry name and args as the authors'): an encoder, the lifting conv00, two
    attention blocks conv0 and conv1, the head fc1, fc2.

    Args:
        encoder_spec (dict): model spec of an encoder with 64 output channels (edsr-baseline,
            rdn, rcan, swinir with no_upsampling; the authors' conv00 is sized for 64).
        width (int, default 256): the channels of the lifted queries and the attention.
        blocks (int, default 16): the number of attention HEADS (the authors' name; there are
            always two blocks); width must divide by it.
    """

    def __init__(self, encoder_spec: dict, width: int = 256, blocks: int = 16):
        super().__init__()
        check_heads('sronet', 'width', width, blocks)
        self.encoder = make(encoder_spec)
        if self.encoder.out_dim != FEAT_DIM:
            raise ValueError(f'sronet: the encoder gives {self.encoder.out_dim} channels; SRNO\'s lifting layer '
                             f'takes {FEAT_DIM} (as the authors build it), e.g. n_feats 64')
        self.width = width
        self.conv00 = nn.Conv2d((FEAT_DIM + 2) * 4 + 2, width, 1)
        self.conv0 = SimpleAttention(width, blocks)
        self.conv1 = SimpleAttention(width, blocks)
        self.fc1 = nn.Conv2d(width, HEAD_DIM, 1)
        self.fc2 = nn.Conv2d(HEAD_DIM, 3, 1)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, 64, h, w), kept with inp for query_rgb."""
        self.feat = self.encode(inp)
        return self.feat

    def embed(self, coord: Tensor, cell: Tensor) -> tuple[Tensor, Any]:
        """coord, cell (B, Q, 2) -> the lifted queries (B, Q, width): conv00 of
        cat(rel_0..3, featw_0..3, rel_cell), offsets in half latent cells as LIIF's."""
        hw = self.feat.shape[-2:]
        rels, featw = corner_features(self.feat, coord, hw)
        grid = torch.cat([*rels, *featw, to_latent_units(cell, hw)], dim=-1)  # (B, Q, 266)
        return pointwise(self.conv00, grid), None

    def attention_blocks(self) -> Sequence[GalerkinBlock]:
        return self.conv0, self.conv1

    def head(self, x: Tensor, aux: Any) -> Tensor:
        return pointwise(self.fc2, F.gelu(pointwise(self.fc1, x)))  # (B, Q, 3)
