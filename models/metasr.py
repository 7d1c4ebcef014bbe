"""The Meta-SR meta-upscale module (Hu et al., CVPR 2019) as adapted by the LIIF paper, SPEC §2.2."""
import torch
import torch.nn as nn
from torch import Tensor

from utils.coords import latent_centres, sample_nearest, to_latent_units, unfold3x3
from .registry import make, register


@register('metasr')
class MetaSR(nn.Module):
    def __init__(self, encoder_spec: dict):
        super().__init__()
        self.encoder = make(encoder_spec)
        imnet_spec = {'name': 'mlp', 'args': {'in_dim': 3, 'out_dim': self.encoder.out_dim * 9 * 3,
                                              'hidden_list': [256]}}
        self.imnet = make(imnet_spec)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, C, h, w), kept as self.feat for query_rgb."""
        self.feat = self.encoder(inp)
        return self.feat

    def query_rgb(self, coord: Tensor, cell: Tensor) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3): the unfolded feature of the latent cell that
        holds the output pixel's top-left corner, times weights predicted from its offset."""
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

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
