"""LMF's render MLP (`lmmlp`, docs/design.md §2.6): a narrow MLP whose hidden layers are modulated,
FiLM-style, by a scale and a shift that the latent MLP predicted for the query's latent cell."""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fast_query import gather_rows
from .registry import register


@register('lmmlp')
class LMMLP(nn.Module):
    """The render MLP: `hidden_depth` hidden Linears of width `hidden_dim`, each followed by its
    modulation and a ReLU, then a Linear to `out_dim`; one `nn.Sequential` named `layers` (keys
    `layers.0`, `layers.2`, ..., `layers.{2 * hidden_depth}`, as in the LMF release).

    Hidden layer l computes `relu(linear_l(x) * (1 + scale_l) + shift_l)` (modulated before the
    ReLU; the output Linear is not modulated). A modulation vector (mod_dim wide) holds every
    layer's scales, then every layer's shifts: `[scale_0 .. scale_{L-1}, shift_0 .. shift_{L-1}]`,
    each `hidden_dim` wide (only the kinds switched on).

    Config args (names as in the LMF release):
        in_dim (int): input width; the owning model passes it.
        out_dim (int): output width (3 for RGB).
        hidden_dim (int): d, the width of every hidden layer (16 in the paper).
        hidden_depth (int): L, the number of hidden layers (6 for LM-LIIF, 8 for LM-LTE).
        mod_scale (bool, default true): hidden layers are scaled by 1 + scale_l.
        mod_shift (bool, default true): hidden layers are shifted by shift_l.
        mod_up_merge (bool, default false): the release's switch for sampling scales and shifts in
            one lookup; the same function, so accepted and ignored (both LMF models force it off).
        use_conv (bool, default false): the release's 1x1-convolution variant, used by no LMF
            model; only false is supported.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, hidden_depth: int, mod_scale: bool = True,
                 mod_shift: bool = True, mod_up_merge: bool = False, use_conv: bool = False):
        super().__init__()
        if use_conv:
            raise ValueError('lmmlp: use_conv is not supported (no LMF model uses it); leave it false')
        if hidden_depth < 1 or hidden_dim < 1:
            raise ValueError(f'lmmlp: hidden_depth and hidden_dim must be positive, got {hidden_depth}, {hidden_dim}')
        layers, last = [], in_dim
        for _ in range(hidden_depth):
            layers += [nn.Linear(last, hidden_dim), nn.ReLU()]
            last = hidden_dim
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden_dim, self.hidden_depth = hidden_dim, hidden_depth
        self.mod_scale, self.mod_shift = mod_scale, mod_shift

    @property
    def mod_dim(self) -> int:
        """Width of a modulation vector: hidden_dim * hidden_depth per kind switched on."""
        return self.hidden_dim * self.hidden_depth * (int(self.mod_scale) + int(self.mod_shift))

    def split_mod(self, mod: Tensor) -> tuple[Optional[Tensor], Optional[Tensor]]:
        """mod (..., mod_dim) -> (scale, shift), each (..., L, d) or None when switched off."""
        dl = self.hidden_dim * self.hidden_depth
        scale = mod[..., :dl].unflatten(-1, (self.hidden_depth, self.hidden_dim)) if self.mod_scale else None
        start = dl if self.mod_scale else 0
        shift = mod[..., start:start + dl].unflatten(-1, (self.hidden_depth, self.hidden_dim)) \
            if self.mod_shift else None
        return scale, shift

    def forward(self, x: Tensor, mod: Tensor) -> Tensor:
        """x (..., in_dim) and its modulations mod (..., mod_dim) -> (..., out_dim): the executable
        definition (one layer after the other, as the class doc says)."""
        scale, shift = self.split_mod(mod)
        linears = list(self.layers)[::2]
        for l, layer in enumerate(linears[:-1]):
            x = layer(x)
            if scale is not None:
                x = x * (1 + scale[..., l, :])
            if shift is not None:
                x = x + shift[..., l, :]
            x = F.relu(x)
        return linears[-1](x)

    # The fast path's interface (models/lmf.py, docs/design.md §8).

    def first_layer(self) -> tuple[Tensor, Tensor]:
        """weight (d, in_dim), bias (d,) of the first Linear: the map applied to the input first."""
        return self.layers[0].weight, self.layers[0].bias

    def table_columns(self, mod: Tensor, first_bias: Optional[Tensor] = None) -> list[Tensor]:
        """mod (N, mod_dim) -> one table (N, 2d) per hidden layer l, made once per latent cell:
        [1 + scale_l, bias_l * (1 + scale_l) + shift_l] (ones and zeros for a kind switched off),
        the layer's bias folded into its shift, so that a query computes layer l as
        relu(addcmul(shift', W_l x, scale')): one pass instead of adding the bias, scaling and
        shifting. `first_bias` (N, d): a per-cell bias of layer 0 in place of its own (LM-LIIF
        moves the code's part of the first Linear onto the cells)."""
        scale, shift = self.split_mod(mod)
        n, d, depth = mod.shape[0], self.hidden_dim, self.hidden_depth
        tables = []
        for l, layer in enumerate(list(self.layers)[:-1:2]):
            one_plus = 1 + scale[:, l] if scale is not None else mod.new_ones(n, d)
            bias = first_bias if l == 0 and first_bias is not None else layer.bias
            tables.append(torch.cat([one_plus, bias * one_plus + (shift[:, l] if shift is not None else 0)], 1))
        return tables

    def from_linear(self, lin: Tensor, tables: list[Tensor], index: Tensor) -> Tensor:
        """The output (N, out_dim) from the first Linear's weight applied to the input, without its
        bias, lin (N, d), and the table_columns rows `index` (N,) of each query's latent cell,
        gathered layer by layer (each layer's rows are used while they are in cache)."""
        d = self.hidden_dim
        linears = list(self.layers)[::2]
        x = lin
        for l, table in enumerate(tables):
            if l:
                x = torch.mm(x, linears[l].weight.t())  # (N, d)
            rows = F.embedding(index, table) if torch.is_grad_enabled() else gather_rows(table, index)  # (N, 2d)
            x = torch.addcmul(rows[:, d:], x, rows[:, :d])  # x * scale' + shift'
            x = F.relu(x) if torch.is_grad_enabled() else x.relu_()
        return torch.addmm(linears[-1].bias, x, linears[-1].weight.t())
