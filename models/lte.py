"""LTE: the local texture estimator (Lee & Jin, CVPR 2022), docs/design.md §2.4.

Like LIIF, each query is decoded from its four nearest latent cells and the predictions are
blended by opposite areas; but the decoder reads a Fourier feature instead of the cell's vector:
the cell's amplitudes (`coef`) times cos/sin of its frequencies (`freq`) dotted with the offset
to the query, shifted by a phase learned from the cell size. The input image, upsampled
bilinearly, is added, so the network predicts the residual.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import latent_centres, make_coord, sample_bilinear, sample_nearest, shift_coord, to_latent_units
from .fast_query import (cached_projection, cell_table, encoder_input, exporting, flat_index, gather_rows,
                         inputs_finite, nearest_index, row_spans, supports_fast, table_rows, use_fast,
                         with_finiteness)
from .liif import ENSEMBLE_CORNERS, corner_area, opposite_area_weights
from .registry import make, register


def fourier_basis(q_freq: Tensor, rel_coord: Tensor, phase: Tensor) -> Tensor:
    """q_freq (..., H), rel_coord (..., 2) in latent units, phase (..., H/2) -> basis (..., H).
    Frequency pair j, channels (2j, 2j+1), is a 2-D frequency (row, col): x_j = q_freq[2j] *
    rel_row + q_freq[2j+1] * rel_col + phase_j; basis = [cos(pi x), sin(pi x)], cos half first."""
    pairs = q_freq.unflatten(-1, (-1, 2))  # (..., H/2, 2)
    x = (pairs * rel_coord.unsqueeze(-2)).sum(-1) + phase  # (..., H/2)
    return torch.cat([torch.cos(math.pi * x), torch.sin(math.pi * x)], dim=-1)


def decoder_input(q_coef: Tensor, q_freq: Tensor, rel_coord: Tensor, phase: Tensor) -> Tensor:
    """The decoder's input (..., H): the cell's amplitudes times its Fourier basis at the query."""
    return q_coef * fourier_basis(q_freq, rel_coord, phase)


@register('lte')
class LTE(nn.Module):
    """LTE: an encoder, the texture estimator (coef, freq, phase) and a decoder.

    Args (a config may pass any of them; names as in the LTE release):
        encoder_spec: model spec of the encoder (any with `out_dim`, e.g. edsr-baseline, rdn,
            swinir with no_upsampling).
        imnet_spec: model spec of the decoder, built with in_dim = hidden_dim (it outputs rgb).
            Required: LTE has no decoder-less mode.
        hidden_dim: H, the number of amplitudes and of frequency components (H/2 2-D frequencies);
            even.
    """

    def __init__(self, encoder_spec: dict, imnet_spec: Optional[dict] = None, hidden_dim: int = 256):
        super().__init__()
        if imnet_spec is None:
            raise ValueError('lte needs an imnet_spec (the decoder)')
        if hidden_dim % 2:
            raise ValueError(f'lte: hidden_dim must be even (cos and sin halves), got {hidden_dim}')
        self.encoder = make(encoder_spec)
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.imnet = make(imnet_spec, args={'in_dim': hidden_dim})

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, C, h', w'). Keeps, for query_rgb, the amplitudes and
        frequencies on that grid (B, H, h', w') and the input itself (for the bilinear term)."""
        self.inp = inp
        self.feat = self.encoder(encoder_input(inp))
        self.feat_coef = self.coef(self.feat)
        self.feat_freq = self.freq(self.feat)
        return self.feat

    def query_rgb(self, coord: Tensor, cell: Tensor, fast: Optional[bool] = None) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from the last gen_feat. The fast path unless
        `fast=False` or inside `fast_query.fast_path(False)`."""
        if use_fast(fast) and supports_fast(self.imnet):
            return self.query_rgb_fast(coord, cell)
        return self.query_rgb_plain(coord, cell)

    def query_rgb_fast(self, coord: Tensor, cell: Tensor) -> Tensor:
        """query_rgb_plain restructured (models/fast_query.py): coef and freq laid out once per
        image as one table of rows (fast_state), each corner's cell picked by the same nearest
        rule and its row gathered, and the four corners decoded as one batch through the decoder's
        fused layers (query_state). Same function up to float rounding (the decoder input is a
        product of the gathered row and a per-query basis, so unlike LIIF no layer can move onto
        the grid)."""
        params = [self.feat_freq, *self.phase.parameters(), *self.imnet.parameters()]  # cache key, NaN-checked
        state, finite = cached_projection(self, self.feat_coef, params,
                                          lambda: with_finiteness(self.fast_state(), params))
        out = self.query_state(state, coord, cell, finite)
        return self.query_rgb_plain(coord, cell) if out is None else out  # plain: keeps a NaN

    def fast_state(self) -> dict[str, Tensor]:
        """What the fast query reads, from the last gen_feat: {'table': (B, h, w, 2H)}, each latent
        cell's coef then freq, and {'inp': (B, 3, h_in, w_in)}, the encoder's input (the centres'
        grid and the bilinear term)."""
        return {'table': cell_table(torch.cat([self.feat_coef, self.feat_freq], 1)), 'inp': self.inp}

    def query_state(self, state: dict[str, Tensor], coord: Tensor, cell: Tensor,
                    finite: bool = True) -> Optional[Tensor]:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from fast_state; None when the decoder's inputs are
        not all finite (`finite`: whether the state and weights are)."""
        table, inp = state['table'], state['inp']  # (B, h, w, 2H), (B, 3, h_in, w_in)
        hw, in_hw, n_h = table.shape[1:3], inp.shape[-2:], table.shape[-1] // 2
        coord_ = torch.stack([shift_coord(coord, dr, dc, hw, 1e-6) for dr, dc in ENSEMBLE_CORNERS], 1)  # (B, 4, Q, 2)
        b, k, q = coord_.shape[:3]
        index = nearest_index(coord_.view(b, k * q, 2), hw)  # (B, 4*Q)
        # Centres from the input-sized grid, as the plain path (and the release) takes them. (An
        # exported graph, for any sizes, always looks them up.)
        same = not exporting() and tuple(in_hw) == tuple(hw)
        in_index = index if same else nearest_index(coord_.view(b, k * q, 2), in_hw)
        q_coord = make_coord(in_hw, device=coord.device)[in_index].view(b, k, q, 2)
        rel_coord = to_latent_units(coord.unsqueeze(1) - q_coord, hw)  # (B, 4, Q, 2)
        phase = self.phase(to_latent_units(cell, hw)).unsqueeze(1).expand(b, k, q, -1)  # (B, 4, Q, H/2)
        if not inputs_finite(finite, torch.cat([rel_coord.reshape(-1, 2), phase.reshape(-1, phase.shape[-1])], 1)):
            return None
        rows, rel, ph = flat_index(index, hw[0] * hw[1]), rel_coord.reshape(-1, 2), phase.reshape(-1, n_h // 2)
        table = table_rows(table)  # (B*h*w, 2H)
        weight, bias = self.imnet.first_layer()
        preds = []
        for span in row_spans(rows.shape[0]):
            gathered = gather_rows(table, rows[span])  # (n, 2H)
            x = decoder_input(gathered[:, :n_h], gathered[:, n_h:], rel[span], ph[span])  # (n, H)
            preds.append(self.imnet.from_first(F.linear(x, weight, bias)))  # (n, 3)
        pred = torch.cat(preds).view(b, k, q, -1)
        weights = opposite_area_weights(corner_area(rel_coord).transpose(0, 1))  # (4, B, Q)
        out = (pred.transpose(0, 1) * weights.unsqueeze(-1)).sum(0)  # (B, Q, 3)
        out = out.to(torch.promote_types(out.dtype, torch.float32))
        return out + sample_bilinear(inp, coord)

    def query_rgb_plain(self, coord: Tensor, cell: Tensor) -> Tensor:
        """docs/design.md §2.4 step by step: the executable definition of LTE's query."""
        coef, freq = self.feat_coef, self.feat_freq
        hw = coef.shape[-2:]
        # As in the release, the cell centres come from a grid of the input's size, not the latent
        # grid's: the same for encoders that keep the size, and for SwinIR on inputs already padded
        # to its window (as LTE's evaluation pads them). Otherwise SwinIR's grid is larger, and a
        # query's centre (so rel_coord, area) and its coef/freq can come from different cells;
        # the swinir-lte vector pins this.
        centres = latent_centres(self.inp)  # (B, 2, h_in, w_in)
        # The phase depends only on the output pixel's size, the same for every corner.
        phase = self.phase(to_latent_units(cell, hw))  # (B, Q, H/2)
        preds, areas = [], []
        for dr, dc in ENSEMBLE_CORNERS:
            coord_ = shift_coord(coord, dr, dc, hw, 1e-6)
            q_coef = sample_nearest(coef, coord_)  # (B, Q, H)
            q_freq = sample_nearest(freq, coord_)  # (B, Q, H)
            q_coord = sample_nearest(centres, coord_)  # (B, Q, 2)
            rel_coord = to_latent_units(coord - q_coord, hw)
            preds.append(self.imnet(decoder_input(q_coef, q_freq, rel_coord, phase)))  # (B, Q, 3)
            areas.append(corner_area(rel_coord))
        weights = opposite_area_weights(torch.stack(areas))  # (4, B, Q)
        pred = (torch.stack(preds) * weights.unsqueeze(-1)).sum(0)  # (B, Q, 3)
        return pred + sample_bilinear(self.inp, coord)

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
