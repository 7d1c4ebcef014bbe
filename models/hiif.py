"""HIIF: Hierarchical encoding based Implicit Image Function (Jiang et al., CVPR 2025),
docs/design.md §2.5.

A 3x3 conv (`freq`) widens the encoder's codes; each query takes its four neighbouring codes,
area-weighted, and the output pixel's size; its position enters only through hierarchical bits,
the binary digits of its place inside the square of the four surrounding latent centres, one digit
pair per layer of a six-layer MLP ladder. Two linear attention blocks follow the first layer; the
result is added to the input upsampled bilinearly. Module names and shapes are the authors'.
"""
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import to_latent_units
from .galerkin import GalerkinBlock, GalerkinQueries, check_heads, corner_features, split_heads
from .registry import make, register

# The authors' fixed sizes: six hierarchical levels (one per MLP layer), each MLP 256 wide inside.
N_LEVELS = 6
MLP_HIDDEN = 256


def local_position(rel: Tensor, hw: Sequence[int]) -> Tensor:
    """rel (B, Q, 2), the offset to the up-left neighbour's centre in whole latent cells -> the
    query's position in the square of the four surrounding centres: rel where rel > 0, else
    (1/h, 1/w) - rel (the authors' rule, which mixes units in the first half cell at the top and
    left border; kept as they have it). float32 throughout: the bits below depend on every ulp."""
    r = torch.tensor([1 / hw[0], 1 / hw[1]], dtype=rel.dtype, device=rel.device)
    return torch.where(rel > 0, rel, r - rel)


def hierarchical_bits(local: Tensor, level: int) -> Tensor:
    """local (B, Q, 2) -> (B, Q, 2) in {0, 1}: binary digit `level + 1` of local in [0, 1] (level 0:
    local >= 1/2; level 1: the quarter; ...), as floor(clip(local - 1e-9, 0, 1) * 2^(level+1)) mod 2."""
    return torch.floor((local - 1e-9).clamp(0, 1) * 2 ** (level + 1)) % 2


class LadderMLP(nn.Module):
    """One rung of the ladder (the authors' `MLP_with_shortcut`): LayerNorm, Linear to 256, GELU,
    Linear; plus the input when the widths agree (for the authors' sizes they never do)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int = MLP_HIDDEN):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.shortcut = in_dim == out_dim

    def forward(self, x: Tensor) -> Tensor:
        out = self.fc2(F.gelu(self.fc1(self.norm(x))))
        return out + x if self.shortcut else out


class QKVAttention(GalerkinBlock):
    """HIIF's attention block (the authors' `qkv_attn`): Linear qkv_proj (C -> 3C), torch
    LayerNorms kln and vln shared by all heads, Linear proj1 and proj2 (C -> C)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv_proj = nn.Linear(dim, 3 * dim)
        self.kln = nn.LayerNorm(dim // heads)
        self.vln = nn.LayerNorm(dim // heads)
        self.proj1 = nn.Linear(dim, dim)
        self.proj2 = nn.Linear(dim, dim)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = split_heads(self.qkv_proj(x), self.heads)
        return q, self.kln(k), self.vln(v)

    def mlp(self, x: Tensor) -> Tensor:
        return self.proj2(F.gelu(self.proj1(x)))


@register('hiif')
class HIIF(GalerkinQueries):
    """HIIF (registry name and args as the authors'): an encoder, `freq` (3x3 conv to
    hidden_dim), the six-rung MLP ladder fc_layers, attention blocks conv0 and conv1.

    Args:
        encoder_spec (dict): model spec of any encoder with `out_dim` that keeps the input size
            (edsr-baseline, rdn, rcan, swinir with no_upsampling).
        blocks (int, default 16): the number of attention heads (the authors' name; there are
            always two blocks); hidden_dim must divide by it.
        hidden_dim (int, default 256): the width of the codes and of the ladder.
    """

    def __init__(self, encoder_spec: dict, blocks: int = 16, hidden_dim: int = 256):
        super().__init__()
        check_heads('hiif', 'hidden_dim', hidden_dim, blocks)
        self.encoder = make(encoder_spec)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        # Rung 0 reads the four codes, the cell and the level-0 bits; later rungs the previous rung and
        # their level's bits; the last gives rgb.
        dims = [4 * hidden_dim + 2 + 2] + [hidden_dim + 2] * (N_LEVELS - 1)
        outs = [hidden_dim] * (N_LEVELS - 1) + [3]
        self.fc_layers = nn.ModuleList(LadderMLP(i, o) for i, o in zip(dims, outs))
        self.conv0 = QKVAttention(hidden_dim, blocks)
        self.conv1 = QKVAttention(hidden_dim, blocks)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> codes freq(encoder(inp)) (B, hidden_dim, h', w'), kept with inp."""
        self.feat = self.freq(self.encode(inp))
        return self.feat

    def embed(self, coord: Tensor, cell: Tensor) -> tuple[Tensor, Any]:
        """coord, cell (B, Q, 2) -> (rung 0's output (B, Q, hidden_dim), local position (B, Q, 2))."""
        hw = self.feat.shape[-2:]
        rels, featw = corner_features(self.feat, coord, (hw[0] / 2, hw[1] / 2))  # rel in whole cells
        local = local_position(rels[0], hw)
        x = torch.cat([*featw, to_latent_units(cell, hw), hierarchical_bits(local, 0)], dim=-1)  # (B, Q, 4C + 4)
        return self.fc_layers[0](x), local

    def attention_blocks(self) -> Sequence[GalerkinBlock]:
        return self.conv0, self.conv1

    def head(self, x: Tensor, local: Tensor) -> Tensor:
        for level in range(1, N_LEVELS):
            x = self.fc_layers[level](torch.cat([x, hierarchical_bits(local, level)], dim=-1))
        return x  # (B, Q, 3)
