"""LIIF: the local implicit image function (Chen et al., CVPR 2021), docs/design.md §2.1."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.coords import (latent_centres, sample_nearest, shift_coord, to_latent_units,
                          unfold3x3)
from .fast_query import (cached_projection, cell_table, corner_picks, decode_rows, encoder_input, flat_index,
                         inputs_finite, project_feat, supports_fast, table_rows, use_fast, with_finiteness)
from .registry import make, register

# Local-ensemble corners (dr, dc), in this order: the area weights pair corner k with 3 - k.
ENSEMBLE_CORNERS = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def opposite_area_weights(area: Tensor) -> Tensor:
    """area (4, B, Q) for corners (-,-), (-,+), (+,-), (+,+) -> weights (4, B, Q), summing to 1.
    A corner's prediction is trusted in proportion to the area of the corner opposite it."""
    return area.flip(0) / area.sum(0, keepdim=True)


def blend_corners(pred: Tensor, rel_coord: Tensor) -> Tensor:
    """pred (B, K, Q, C) of each corner and rel_coord (B, K, Q, 2) -> (B, Q, C): the opposite-area
    blend of the four corners (the single corner's prediction when K = 1)."""
    if pred.shape[1] == 1:
        return pred[:, 0]
    weights = opposite_area_weights(corner_area(rel_coord).transpose(0, 1))  # (K, B, Q)
    return (pred.transpose(0, 1) * weights.unsqueeze(-1)).sum(0)


def corner_area(rel_coord: Tensor) -> Tensor:
    """rel_coord (B, Q, 2) -> (B, Q): the area of the rectangle between query and latent centre."""
    return torch.abs(rel_coord[..., 0] * rel_coord[..., 1]) + 1e-9


@register('liif')
class LIIF(nn.Module):
    """LIIF: an encoder's latent grid decoded at any coordinate (docs/design.md §2.1).

    Config args (names as in the paper release):
        encoder_spec (dict): model spec of the encoder, any model with `out_dim` that keeps the
            input size, e.g. {name: edsr-baseline, args: {no_upsampling: true}}.
        imnet_spec (dict or None): model spec of the decoder (e.g. {name: mlp, args: {out_dim: 3,
            hidden_list: [256, 256, 256, 256]}}); its in_dim is derived (decoder_in_dim). None:
            no decoder, each query returns its nearest latent code.
        local_ensemble (bool, default true): blend the four nearest codes by opposite areas.
        feat_unfold (bool, default true): the decoder reads each code's 3x3 neighbourhood.
        cell_decode (bool, default true): the decoder also reads the output pixel's size.
    """

    def __init__(self, encoder_spec: dict, imnet_spec: Optional[dict] = None,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True):
        super().__init__()
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.encoder = make(encoder_spec)
        self.imnet = None if imnet_spec is None else make(imnet_spec, args={'in_dim': self.decoder_in_dim})

    @property
    def decoder_in_dim(self) -> int:
        """Width of the decoder input: q_feat, rel_coord (2) and rel_cell (2, with cell decoding)."""
        return self.encoder.out_dim * (9 if self.feat_unfold else 1) + 2 + (2 if self.cell_decode else 0)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, C, h, w), kept as self.feat for query_rgb."""
        self.feat = self.encoder(encoder_input(inp))
        return self.feat

    def corners(self) -> tuple[tuple[tuple[int, int], ...], float]:
        """The (dr, dc) corners visited for each query and the eps nudge that breaks ties."""
        if self.local_ensemble:
            return ENSEMBLE_CORNERS, 1e-6
        return ((0, 0),), 0.0

    def decode(self, x: Tensor) -> Tensor:
        """Decoder input (B, Q, D) -> rgb (B, Q, 3)."""
        return self.imnet(x)

    def query_rgb(self, coord: Tensor, cell: Optional[Tensor] = None,
                  fast: Optional[bool] = None) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from the latent grid of the last gen_feat.
        The fast path unless `fast=False` or inside `fast_query.fast_path(False)`."""
        if self.imnet is not None and use_fast(fast) and supports_fast(self.imnet):
            return self.query_rgb_fast(coord, cell)
        return self.query_rgb_plain(coord, cell)

    def query_rgb_fast(self, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """query_rgb_plain computed with the decoder's first layer split (models/fast_query.py):
        its q_feat part as a convolution on the latent grid (fast_state, once per image), its
        coord/cell part per query, and the corners batched into one decoder call (query_state).
        Same function up to float rounding."""
        params = list(self.imnet.parameters())  # the cache's key, and checked for NaN with the table
        state, finite = cached_projection(self, self.feat, params,
                                          lambda: with_finiteness(self.fast_state(), params))
        out = self.query_state(state, coord, cell, finite)
        return self.query_rgb_plain(coord, cell) if out is None else out  # plain: keeps a NaN

    @property
    def n_feat(self) -> int:
        """Width of q_feat, the decoder input's first part: C, or 9C with unfolding."""
        return self.decoder_in_dim - 2 - (2 if self.cell_decode else 0)

    def fast_state(self) -> dict[str, Tensor]:
        """What the fast query reads, from the last gen_feat: {'table': (B, h, w, O)}, the decoder's
        first layer applied to every latent cell's (unfolded) code, its bias included."""
        weight, bias = self.imnet.first_layer()  # (O, D), (O,)
        return {'table': cell_table(project_feat(self.feat, weight[:, :self.n_feat], self.feat_unfold, bias))}

    def query_state(self, state: dict[str, Tensor], coord: Tensor, cell: Optional[Tensor] = None,
                    finite: bool = True) -> Optional[Tensor]:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from fast_state's table; None when the decoder's
        inputs are not all finite (`finite`: whether the state and weights are; the caller then
        takes the plain path, which keeps a NaN the fused layers would turn into 0)."""
        table = state['table']  # (B, h, w, O)
        hw = table.shape[1:3]
        weight = self.imnet.first_layer()[0]  # (O, D)
        corners, eps = self.corners()
        index, rel_coord = corner_picks(coord, hw, corners, eps)  # (B, K*Q), (B, K, Q, 2)
        b, k, q = rel_coord.shape[:3]
        rel = [rel_coord]
        if self.cell_decode:
            rel.append(to_latent_units(cell, hw).unsqueeze(1).expand(b, k, q, 2))
        rel = torch.cat(rel, dim=-1).view(b * k * q, -1)  # (B*K*Q, 2 or 4)
        if not inputs_finite(finite, rel):
            return None
        pred = decode_rows(self.imnet, table_rows(table), flat_index(index, hw[0] * hw[1]), rel,
                           weight[:, self.n_feat:]).view(b, k, q, -1)
        out = blend_corners(pred, rel_coord)
        return out.to(torch.promote_types(out.dtype, torch.float32))

    def query_rgb_plain(self, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """docs/design.md §2.1 written out step by step: the executable definition of LIIF's query."""
        feat = self.feat
        if self.imnet is None:
            return sample_nearest(feat, coord)
        if self.feat_unfold:
            feat = unfold3x3(feat)  # (B, 9C, h, w)
        hw = feat.shape[-2:]
        centres = latent_centres(feat)  # (B, 2, h, w)
        corners, eps = self.corners()
        preds, areas = [], []
        for dr, dc in corners:
            coord_ = shift_coord(coord, dr, dc, hw, eps)
            q_feat = sample_nearest(feat, coord_)  # (B, Q, C')
            q_coord = sample_nearest(centres, coord_)  # (B, Q, 2)
            rel_coord = to_latent_units(coord - q_coord, hw)
            inp = [q_feat, rel_coord]
            if self.cell_decode:
                inp.append(to_latent_units(cell, hw))
            preds.append(self.decode(torch.cat(inp, dim=-1)))  # (B, Q, 3)
            areas.append(corner_area(rel_coord))
        if len(preds) == 1:
            return preds[0]
        weights = opposite_area_weights(torch.stack(areas))  # (4, B, Q)
        return (torch.stack(preds) * weights.unsqueeze(-1)).sum(0)

    def forward(self, inp: Tensor, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
