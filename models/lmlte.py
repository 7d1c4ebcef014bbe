"""LM-LTE (He and Jin, CVPR 2024), docs/design.md §2.6: LTE whose decoder is LMF's latent modulated
render MLP (models/lmf.py), with its own phase for the predicted frequencies."""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.coords import sample_bilinear
from .cmsr import candidate_means
from .fast_query import cell_rows
from .lmf import LatentModulated, mod_layout
from .lte import decoder_input
from .registry import make, register


@register('lmlte')
class LMLTE(LatentModulated):
    """LM-LTE: LTE with a latent modulated render MLP (docs/design.md §2.6).

    Config args (names and defaults as in the LMF release; its configs set mod_input true):
        encoder_spec (dict): model spec of the encoder.
        imnet_spec (dict): the render MLP, an `lmmlp` spec; in_dim is derived (d with mod_input,
            else hidden_dim).
        hypernet_spec (dict): the latent MLP, an `mlp` spec; in_dim (hidden_dim) and out_dim
            (mod_dim, + 2d with mod_input) are derived.
        hidden_dim (int, default 128): H, the width of LTE's coef and freq grids.
        local_ensemble (bool, default true): blend the four nearest cells by opposite areas.
        cell_decode (bool, default true): the phases read the output pixel's size.
        mod_input (bool, default false): the render MLP reads an amplitude and frequency code
            (d each) that the latent MLP predicts, with its own phase `imphase`, instead of LTE's.
        cmsr_spec (dict or None): CMSR's threshold tables, as for lmliif.
    """

    keep_matching_grid = True
    cmsr_candidates = candidate_means(0.5)

    def __init__(self, encoder_spec: dict, imnet_spec: Optional[dict] = None, hypernet_spec: Optional[dict] = None,
                 hidden_dim: int = 128, local_ensemble: bool = True, cell_decode: bool = True,
                 mod_input: bool = False, cmsr_spec: Optional[dict] = None):
        super().__init__()
        self.setup(encoder_spec, hypernet_spec, imnet_spec, local_ensemble, cell_decode, mod_input, cmsr_spec)
        if hidden_dim % 2:
            raise ValueError(f'lmlte: hidden_dim must be even (cos and sin halves), got {hidden_dim}')
        d, n_mod = mod_layout(imnet_spec)
        self.coef = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.freq = nn.Conv2d(self.encoder.out_dim, hidden_dim, 3, padding=1)
        self.phase = nn.Linear(2, hidden_dim // 2, bias=False)
        self.hypernet = make(hypernet_spec, args={'in_dim': hidden_dim, 'out_dim': n_mod + (2 * d if mod_input else 0)})
        if mod_input:
            self.imphase = nn.Linear(2, d // 2, bias=False)
        self.imnet = make(imnet_spec, args={'in_dim': d if mod_input else hidden_dim, 'mod_up_merge': False})

    def prepare_grids(self, feat: Tensor) -> None:
        """LTE's amplitude and frequency grids (B, H, h, w)."""
        self.feat_coef, self.feat_freq = self.coef(feat), self.freq(feat)

    def latent_input(self, rel_cell: Optional[Tensor]) -> Tensor:
        """(B, h*w, H): each cell's LTE code at the offset (1, 1), with the image's cell phase."""
        b, n_h, h, w = self.feat_coef.shape
        coef = self.feat_coef.permute(0, 2, 3, 1).reshape(b, h * w, n_h)
        freq = self.feat_freq.permute(0, 2, 3, 1).reshape(b, h * w, n_h)
        phase = 0 if rel_cell is None else self.phase(rel_cell).unsqueeze(1)  # (B, 1, H/2)
        return decoder_input(coef, freq, freq.new_ones(1, 1, 2), phase)

    def latent_first(self, rel_cell: Optional[Tensor]) -> Tensor:
        """The latent MLP's first Linear on every cell: (B*h*w, H1)."""
        weight, bias = self.hypernet.first_layer()
        x = self.latent_input(rel_cell)
        return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight.t())

    def render_source(self, mod: Tensor) -> Tensor:
        """(B, 2S, h, w): amplitudes and frequencies the render MLP reads (predicted, or LTE's)."""
        return mod[:, self.imnet.mod_dim:] if self.mod_input else torch.cat([self.feat_coef, self.feat_freq], 1)

    def render_phase(self, rel_cell: Optional[Tensor]):
        """The phase (..., S/2) of an output pixel's size: imphase with mod_input, else LTE's."""
        if rel_cell is None:
            return 0
        return self.imphase(rel_cell) if self.mod_input else self.phase(rel_cell)

    def render_input(self, q_source: Tensor, rel_coord: Tensor, rel_cell: Optional[Tensor]) -> Tensor:
        """(..., S): the amplitudes times cos/sin of the frequencies dotted with rel_coord, plus the
        phase (LTE's decoder input, models/lte.py)."""
        n = q_source.shape[-1] // 2
        return decoder_input(q_source[..., :n], q_source[..., n:], rel_coord, self.render_phase(rel_cell))

    def table_source(self, mod: Tensor) -> tuple[Tensor, None]:
        """((B*h*w, 2S) the amplitude and frequency rows the render MLP reads, no per-cell bias)."""
        return (mod[:, self.imnet.mod_dim:] if self.mod_input else cell_rows(self.render_source(mod))), None

    def render_linear(self, source: Tensor, rel: Tensor) -> Tensor:
        """The first Linear's weight (n, d) on the Fourier input of the gathered rows (n, 2S) at
        rel (n, 2 or 4), the relative coordinate [and cell] (its bias is in the table)."""
        weight, _ = self.imnet.first_layer()
        rel_cell = rel[:, 2:] if self.cell_decode else None
        return torch.mm(self.render_input(source, rel[:, :2], rel_cell), weight.t())

    def residual(self, out: Tensor, coord: Tensor, inp: Tensor) -> Tensor:
        """LTE's LR skip: the input sampled bilinearly at coord, added."""
        return out + sample_bilinear(inp, coord)

