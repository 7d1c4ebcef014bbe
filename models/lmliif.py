"""LM-LIIF (He and Jin, CVPR 2024), docs/design.md §2.6: LIIF whose decoder is LMF's latent
modulated render MLP (models/lmf.py)."""
from typing import Optional

import torch
from torch import Tensor

from utils.coords import unfold3x3
from .fast_query import cell_rows, project_feat
from .lmf import LatentModulated, mod_layout
from .registry import make, register


@register('lmliif')
class LMLIIF(LatentModulated):
    """LM-LIIF: LIIF with a latent modulated render MLP (docs/design.md §2.6).

    Config args (names and defaults as in the LMF release; its configs set mod_input true):
        encoder_spec (dict): model spec of the encoder (edsr-baseline, rdn, swinir, ... with
            no_upsampling).
        imnet_spec (dict): the render MLP, an `lmmlp` spec (hidden_dim d, hidden_depth L,
            mod_scale, mod_shift); its in_dim is derived: d (mod_input) or C, + 2 + 2 (cell).
        hypernet_spec (dict): the latent MLP, an `mlp` spec; its in_dim (9C or C, + 2 with
            cell_decode) and out_dim (mod_dim, + d with mod_input) are derived.
        local_ensemble (bool, default true): blend the four nearest cells by opposite areas.
        feat_unfold (bool, default true): the latent MLP reads each cell's 3x3 neighbourhood.
        cell_decode (bool, default true): both MLPs read the output pixel's size.
        mod_input (bool, default false): the render MLP reads a d-wide code the latent MLP
            predicts instead of the encoder's feature.
        cmsr_spec (dict or None): CMSR's threshold tables, {'s2m_tables': {scale: {decode scale:
            threshold}}} (other keys ignored); test.py and demo.py set it with --cmsr.
    """

    def __init__(self, encoder_spec: dict, imnet_spec: Optional[dict] = None, hypernet_spec: Optional[dict] = None,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True,
                 mod_input: bool = False, cmsr_spec: Optional[dict] = None):
        super().__init__()
        self.setup(encoder_spec, hypernet_spec, imnet_spec, local_ensemble, cell_decode, mod_input, cmsr_spec)
        self.feat_unfold = feat_unfold
        c = self.encoder.out_dim
        d, n_mod = mod_layout(imnet_spec)
        latent_in = c * (9 if feat_unfold else 1) + (2 if cell_decode else 0)
        self.hypernet = make(hypernet_spec, args={'in_dim': latent_in, 'out_dim': n_mod + (d if mod_input else 0)})
        render_in = (d if mod_input else c) + 2 + (2 if cell_decode else 0)
        self.imnet = make(imnet_spec, args={'in_dim': render_in, 'mod_up_merge': False})

    def latent_input(self, rel_cell: Optional[Tensor]) -> Tensor:
        """(B, h*w, 9C (or C) [+ 2]): each cell's (unfolded) feature and the image's cell."""
        feat = unfold3x3(self.feat) if self.feat_unfold else self.feat
        b, c, h, w = feat.shape
        x = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
        if rel_cell is None:
            return x
        return torch.cat([x, rel_cell.unsqueeze(1).expand(b, h * w, 2)], -1)

    def latent_first(self, rel_cell: Optional[Tensor]) -> Tensor:
        """The latent MLP's first Linear on every cell (B*h*w, H1) without unfolding: its feature
        columns as a 3x3 (or 1x1) convolution of the grid, its cell columns once per image."""
        weight, bias = self.hypernet.first_layer()  # (H1, Din), (H1,)
        n_feat = weight.shape[1] - (2 if self.cell_decode else 0)
        grid = project_feat(self.feat, weight[:, :n_feat], self.feat_unfold, bias)  # (B, H1, h, w)
        if rel_cell is not None:
            grid = grid + (rel_cell @ weight[:, n_feat:].t())[:, :, None, None]
        return cell_rows(grid)

    def render_source(self, mod: Tensor) -> Tensor:
        """The grid the render MLP reads (B, S, h, w): the code z (mod_input) or the feature."""
        return mod[:, self.imnet.mod_dim:] if self.mod_input else self.feat

    def render_input(self, q_source: Tensor, rel_coord: Tensor, rel_cell: Optional[Tensor]) -> Tensor:
        """(..., S + 2 [+ 2]): the cell's code, the relative coordinate and the cell."""
        return torch.cat([q_source, rel_coord] + ([] if rel_cell is None else [rel_cell]), -1)

    def table_source(self, mod: Tensor) -> tuple[Tensor, Tensor]:
        """(nothing to gather (B*h*w, 0), the render MLP's first Linear applied to each cell's code
        (or feature), bias in (B*h*w, d)): the code's part of the first layer moves onto the cells."""
        weight, bias = self.imnet.first_layer()
        source = mod[:, self.imnet.mod_dim:] if self.mod_input else cell_rows(self.feat)  # (B*h*w, S)
        return source[:, :0], torch.addmm(bias, source, weight[:, :source.shape[1]].t())

    def render_linear(self, source: Optional[Tensor], rel: Tensor) -> Tensor:
        """The rest of the first Linear (n, d): its columns of rel (n, 2 or 4), the relative
        coordinate and cell (the code's part is in the table: no source)."""
        weight, _ = self.imnet.first_layer()
        return torch.mm(rel, weight[:, weight.shape[1] - rel.shape[1]:].t())
