"""A-LIIF: the adaptive local implicit image function (Li et al., ICIP 2022), docs/design.md §2.3.

LIIF's encoder, unfolding, corners and area-weighted ensemble, with the decoder MLP replaced by
a per-query mix of K small basis MLPs whose coefficients come from an expansion net.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fast_query import supports_fast
from .liif import LIIF
from .registry import make, register


class AdaptiveDecoder(nn.Module):
    """Decoder input (..., D) -> rgb (..., 3). Layer l computes Σ_k c_k (W_{l,k} x + b_{l,k}),
    the k-th basis weighted by the query's coefficient c_k, without building a per-query matrix."""

    def __init__(self, in_dim: int, basis_num: int, basis_hidden: list[int], expansion_spec: dict,
                 out_dim: int = 3):
        super().__init__()
        self.expansion = make(expansion_spec, args={'in_dim': in_dim, 'out_dim': basis_num})
        widths = [in_dim, *basis_hidden, out_dim]
        self.basis_weight = nn.ParameterList()
        self.basis_bias = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            # Each basis layer starts like an nn.Linear of the same size.
            bound = 1 / math.sqrt(fan_in)
            w = torch.empty(basis_num, fan_out, fan_in)
            for k in range(basis_num):
                nn.init.kaiming_uniform_(w[k], a=math.sqrt(5))
            self.basis_weight.append(nn.Parameter(w))
            self.basis_bias.append(nn.Parameter(torch.empty(basis_num, fan_out).uniform_(-bound, bound)))
        self.in_dim, self.out_dim, self.basis_num = in_dim, out_dim, basis_num

    def coefficients(self, x: Tensor) -> Tensor:
        """x (N, D) -> c (N, K): the expansion net's output, L2-normalised (signs kept)."""
        return F.normalize(self.expansion(x), dim=-1)

    def mix(self, h: Tensor, coef: Tensor, first: Optional[Tensor] = None) -> Tensor:
        """Run the mixed bases on h (N, D) with coefficients coef (N, K) -> (N, out_dim).
        `first` (N, K, hidden), if given, replaces layer 0's W x + b (the fast path)."""
        n_layers = len(self.basis_weight)
        for l, (w, b) in enumerate(zip(self.basis_weight, self.basis_bias)):
            if l == 0 and first is not None:
                out = first
            else:
                k, fan_out, fan_in = w.shape
                out = (h @ w.reshape(k * fan_out, fan_in).t()).view(-1, k, fan_out) + b  # (N, K, out)
            h = (coef.unsqueeze(-1) * out).sum(1)  # (N, out)
            if l < n_layers - 1:
                h = torch.relu(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        """x (..., D) -> (..., out_dim)."""
        shape = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])  # (N, D)
        return self.mix(x, self.coefficients(x)).view(*shape, self.out_dim)

    # The fast path's interface (models/fast_query.py, docs/design.md §8), when the expansion net
    # has it too: the expansion's first layer and every basis's first layer, stacked.

    def first_layer(self) -> Optional[tuple[Tensor, Tensor]]:
        """weight (E + K*H, D), bias (E + K*H,): the expansion net's first layer (E rows) then the
        K bases' first layers (basis-major); None when the expansion net cannot split its own."""
        if not supports_fast(self.expansion):
            return None
        exp_w, exp_b = self.expansion.first_layer()
        w, b = self.basis_weight[0], self.basis_bias[0]  # (K, H, D), (K, H)
        return torch.cat([exp_w, w.reshape(-1, w.shape[-1])]), torch.cat([exp_b, b.reshape(-1)])

    def from_first(self, pre: Tensor, inplace: bool = True) -> Tensor:
        """The output (N, out_dim) from first_layer's output pre (N, E + K*H)."""
        n_exp = self.expansion.first_layer()[0].shape[0]
        # (Not in place: the bases' columns of pre are kept for backward.)
        coef = F.normalize(self.expansion.from_first(pre[:, :n_exp], inplace=False), dim=-1)  # (N, K)
        first = pre[:, n_exp:].reshape(pre.shape[0], self.basis_num, -1)  # (N, K, H)
        return self.mix(first, coef, first=first)


@register('a-liif')
class ALIIF(LIIF):
    """A-LIIF (Li et al., ICIP 2022; docs/design.md §2.3): LIIF whose decoder is, per query, a mix
    of K small basis MLPs weighted by coefficients from an expansion net.

    Config args:
        encoder_spec (dict): model spec of the encoder, as for liif.
        basis_num (int, default 10): K, the number of basis MLPs.
        basis_hidden (list[int], default [16, 16, 16, 16]): hidden widths of every basis MLP
            (input: the decoder input width, output: 3).
        expansion_spec (dict, default mlp with hidden_list [256, 256, 256, 256]): model spec of
            the expansion net; in_dim and out_dim (= basis_num) are derived.
        local_ensemble, feat_unfold, cell_decode (bool, default true): as for liif.
    """

    def __init__(self, encoder_spec: dict, basis_num: int = 10, basis_hidden: Optional[list[int]] = None,
                 expansion_spec: Optional[dict] = None, local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__(encoder_spec, None, local_ensemble, feat_unfold, cell_decode)
        if expansion_spec is None:
            expansion_spec = {'name': 'mlp', 'args': {'hidden_list': [256] * 4}}
        self.imnet = AdaptiveDecoder(self.decoder_in_dim, basis_num,
                                     [16] * 4 if basis_hidden is None else list(basis_hidden),
                                     expansion_spec)
