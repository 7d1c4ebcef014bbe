"""The Meta-SR meta-upscale module (Hu et al., CVPR 2019) as adapted by the LIIF paper, docs/design.md §2.2."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.coords import cell_positions, latent_centres, sample_nearest, to_latent_units, unfold3x3
from . import fast_query
from .fast_query import (cached_projection, cell_table, encoder_input, flat_index, inputs_finite,
                         nearest_index, project_feat, table_rows, use_fast, with_finiteness)
from .registry import make, register


@register('metasr')
class MetaSR(nn.Module):
    """The Meta-SR meta-upscale baseline as the LIIF paper adapts it (docs/design.md §2.2): per
    query, an MLP predicts from the pixel's offset and the scale the weights that map its latent
    cell's unfolded code (9C) to RGB.

    Config args:
        encoder_spec (dict): model spec of the encoder (with `out_dim`, input size kept). The
            weight MLP is fixed: in 3, hidden [256], out 9C*3 (the paper's).
    """

    def __init__(self, encoder_spec: dict):
        super().__init__()
        self.encoder = make(encoder_spec)
        imnet_spec = {'name': 'mlp', 'args': {'in_dim': 3, 'out_dim': self.encoder.out_dim * 9 * 3,
                                              'hidden_list': [256]}}
        self.imnet = make(imnet_spec)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, C, h, w), kept as self.feat for query_rgb."""
        self.feat = self.encoder(encoder_input(inp))
        return self.feat

    def query_rgb(self, coord: Tensor, cell: Tensor, fast: Optional[bool] = None) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3): the unfolded feature of the latent cell that
        holds the output pixel's top-left corner, times weights predicted from its offset.
        By default the fast path when gradients are off (unless inside `fast_query.fast_path(False)`);
        with gradients it measured no faster in fp32 and slower in bf16 (benchmarks/bench_decoder.py
        --arch metasr), so training takes the plain path unless `fast=True`."""
        if fast is None:
            fast = use_fast() and not torch.is_grad_enabled()
        if fast:
            return self.query_rgb_fast(coord, cell)
        return self.query_rgb_plain(coord, cell)

    def query_rgb_plain(self, coord: Tensor, cell: Tensor) -> Tensor:
        """docs/design.md §2.2 written out: the executable definition of Meta-SR's query."""
        feat = unfold3x3(self.feat)  # (B, 9C, h, w)
        hw = feat.shape[-2:]
        # Latent cells are addressed by their top-left corners.
        corners = latent_centres(feat, top_left=True)  # (B, 2, h, w)
        coord_ = coord - cell / 2  # the output pixel's top-left corner
        coord_q = (coord_ + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6)
        q_feat = sample_nearest(feat, coord_q)  # (B, Q, 9C)
        q_coord = sample_nearest(corners, coord_q)  # (B, Q, 2)
        rel = to_latent_units(coord_ - q_coord, [n / 2 for n in hw])
        r = cell[..., :1] * (hw[0] / 2)
        b, q = coord.shape[:2]
        weight = self.imnet(torch.cat([rel, r], dim=-1)).view(b * q, feat.shape[1], 3)  # (BQ, 9C, 3)
        return torch.bmm(q_feat.reshape(b * q, 1, -1), weight).view(b, q, 3)

    def query_rgb_fast(self, coord: Tensor, cell: Tensor) -> Tensor:
        """query_rgb_plain restructured: with hidden = relu(layer0(rel, r)) (H wide) and the last
        layer W2 (9C*3, H), b2, the output q_feat . Wq is sum_j hidden_j P[o, j] + Pb[o], where
        P = q_feat . W2 and Pb = q_feat . b2 depend only on the latent cell: a 3x3 convolution of
        the grid (3H + 3 channels, fast_state) gathered per query (query_state), instead of a
        9C x 3 matrix per query."""
        params = list(self.imnet.parameters())  # the cache's key, and checked for NaN with the table
        state, finite = cached_projection(self, self.feat, params,
                                          lambda: with_finiteness(self.fast_state(), params))
        out = self.query_state(state, coord, cell, finite)
        return self.query_rgb_plain(coord, cell) if out is None else out  # plain: keeps a NaN

    def fast_state(self) -> dict[str, Tensor]:
        """What the fast query reads, from the last gen_feat: {'table': (B, h, w, 3H + 3)}, the
        last layer's weights (rows o*H + j) and bias (3 rows) contracted with every latent cell's
        unfolded code."""
        last_w, last_b = self.imnet.last_layer()  # (9C*3, H), (9C*3,)
        c, n_hidden = self.feat.shape[1], last_w.shape[1]
        # Rows o*H + j of the projection hold W2[(c*9 + k)*3 + o, j] over columns c*9 + k.
        w2 = last_w.view(c, 9, 3, n_hidden).permute(2, 3, 0, 1).reshape(3 * n_hidden, 9 * c)
        b2 = last_b.view(c, 9, 3).permute(2, 0, 1).reshape(3, 9 * c)
        return {'table': cell_table(project_feat(self.feat, torch.cat([w2, b2]), True))}

    def query_state(self, state: dict[str, Tensor], coord: Tensor, cell: Tensor,
                    finite: bool = True) -> Optional[Tensor]:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from fast_state's table; None when the queries'
        inputs are not all finite (`finite`: whether the state and weights are)."""
        table = state['table']  # (B, h, w, 3H + 3)
        (b, h, w), q = table.shape[:3], coord.shape[1]
        n_hidden = self.imnet.last_layer()[0].shape[1]
        corners = cell_positions((h, w), top_left=True, device=coord.device)  # (h*w, 2)
        coord_ = coord - cell / 2
        index = nearest_index((coord_ + 1e-6).clamp(-1 + 1e-6, 1 - 1e-6), (h, w))  # (B, Q)
        rel = to_latent_units(coord_ - corners[index], (h / 2, w / 2))
        r = cell[..., :1] * (h / 2)
        x = torch.cat([rel, r], dim=-1).view(b * q, 3)  # (BQ, 3)
        if not inputs_finite(finite, x):
            return None
        rows, table = flat_index(index, h * w), table_rows(table)  # (BQ,), (B*h*w, 3H + 3)
        outs = []
        for span in fast_query.row_spans(b * q):
            hidden = self.imnet.hidden(x[span])  # (n, H)
            proj = fast_query.gather_rows(table, rows[span])  # (n, 3H + 3)
            p = proj[:, :3 * n_hidden].reshape(-1, 3, n_hidden)  # (n, 3, H)
            outs.append(torch.baddbmm(proj[:, 3 * n_hidden:].unsqueeze(-1), p, hidden.unsqueeze(-1)))
        out = torch.cat(outs).view(b, q, 3)
        return out.to(torch.promote_types(out.dtype, torch.float32))

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
