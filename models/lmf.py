"""LMF: latent modulated functions (He and Jin, CVPR 2024), docs/design.md §2.5: `lmliif` and `lmlte`.

LIIF and LTE run a wide decoder once per query and corner. LMF moves the wide part to the latent
grid: a latent MLP (`hypernet`) runs once per latent cell and predicts a scale and a shift for
every hidden layer of a narrow render MLP (`imnet`, an `lmmlp`), and, with `mod_input`, the
compressed code the render MLP reads. Each query then runs only the render MLP on its cell's code
and relative position, modulated by that cell's scales and shifts. Corners, the nearest-cell rule,
relative coordinates and the opposite-area ensemble are LIIF's (§2.1).

The latent MLP also reads the output pixel's size (the cell). It runs per latent cell, not per
query, so it takes one cell per image: the first query's. The release takes, for latent cell p,
the cell of query p; the two agree whenever an image's queries share one cell, as in every
training sample, test protocol and render (§2.5).
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import (latent_centres, make_coord, sample_bilinear, sample_nearest, shift_coord,
                          to_latent_units, unfold3x3)
from .cmsr import CMSR, mean_abs_shift
from .fast_query import (TRAIN_ROW_CHUNK, all_finite, cached_projection, cell_rows, encoder_input, flat_index,
                         gather_rows, nearest_index, project_feat, use_fast)
from .liif import ENSEMBLE_CORNERS, corner_area, opposite_area_weights
from .lte import decoder_input
from .registry import make, register

# Rows of the render MLP run at a time without gradients (its activations are only 16 wide).
LMF_ROW_CHUNK = 16384


def mod_layout(imnet_spec: dict) -> tuple[int, int]:
    """(d, mod_dim) of a render MLP spec: its hidden width and its modulation width, d * L per
    kind (scale, shift) switched on, read from the spec before the MLP is built (as the release)."""
    args = imnet_spec.get('args') or {}
    d, depth = args['hidden_dim'], args['hidden_depth']
    return d, d * depth * (int(args.get('mod_scale', True)) + int(args.get('mod_shift', True)))


class LatentModulated(nn.Module):
    """What LM-LIIF and LM-LTE share: encoding, the latent MLP's table of modulations, the corner
    loop (plain) and its batched form (fast), CMSR. A subclass says what the latent MLP reads
    (`latent_input`, `latent_first`), what the render MLP reads (`render_source`, `render_input`,
    `table_source`, `render_first`) and what is added to the blend (`residual`)."""

    max_scale = 4  # the largest training scale: LMF's cell clip (test.py, demo.py) and CMSR's switch
    cell_scale_max = max_scale  # read by inference/render.py: the cell of scale 4 beyond it

    def setup(self, encoder_spec: dict, hypernet_spec: Optional[dict], imnet_spec: Optional[dict],
              local_ensemble: bool, cell_decode: bool, mod_input: bool, cmsr_spec: Optional[dict]) -> None:
        """Common attributes; the subclass builds the modules in the release's order."""
        if hypernet_spec is None or imnet_spec is None:
            raise ValueError(f'{type(self).__name__.lower()} needs a hypernet_spec and an imnet_spec')
        self.local_ensemble, self.cell_decode, self.mod_input = local_ensemble, cell_decode, mod_input
        self.encoder = make(encoder_spec)
        self.cmsr = CMSR.from_spec(cmsr_spec)

    @property
    def whole_grid_queries(self) -> bool:
        """With CMSR tables a query's colour depends on the whole grid queried with it (levels are
        rendered and upsampled over it): read by inference/render.py, which then queries whole grids."""
        return self.cmsr is not None

    def set_cmsr(self, tables: Optional[dict]) -> None:
        """Use CMSR with these threshold tables {scale: {decode scale: threshold}} (None: off)."""
        self.cmsr = CMSR.from_spec(None if tables is None else {'s2m_tables': tables})

    def corners(self) -> tuple[tuple[tuple[int, int], ...], float]:
        """The (dr, dc) corners visited for each query and the eps nudge that breaks ties."""
        return (ENSEMBLE_CORNERS, 1e-6) if self.local_ensemble else (((0, 0),), 0.0)

    def gen_feat(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> latent grid (B, C, h, w); keeps inp (the LR skip, CMSR) and the
        subclass's grids for query_rgb."""
        self.inp = inp
        self.feat = self.encoder(encoder_input(inp))
        self.prepare_grids(self.feat)
        return self.feat

    def prepare_grids(self, feat: Tensor) -> None:
        """Grids the subclass derives from feat once per image (LM-LTE: coef, freq)."""

    def image_rel_cell(self, cell: Optional[Tensor]) -> Optional[Tensor]:
        """The one cell per image that the latent MLP reads, in latent units: (B, 2), or None
        without cell decoding."""
        if not self.cell_decode:
            return None
        if cell is None:
            raise ValueError(f'{type(self).__name__.lower()} with cell_decode needs the cell')
        return to_latent_units(cell[:, 0], self.feat.shape[-2:])

    def modulations(self, cell: Optional[Tensor]) -> Tensor:
        """The latent MLP on every latent cell: (B, Dm, h, w), Dm = mod_dim (+ the render source
        with mod_input). The definition; the fast path computes the same rows (`fast_table`)."""
        b, _, h, w = self.feat.shape
        mod = self.hypernet(self.latent_input(self.image_rel_cell(cell)))  # (B, h*w, Dm)
        return mod.view(b, h, w, -1).permute(0, 3, 1, 2)

    def query_rgb(self, coord: Tensor, cell: Optional[Tensor] = None, fast: Optional[bool] = None) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from the last gen_feat: the fast path unless
        `fast=False` or inside fast_query.fast_path(False); with CMSR tables, in eval mode and
        beyond the training scales (Q > 16 h w), CMSR's approximation (models/cmsr.py)."""
        h_in, w_in = self.inp.shape[-2:]
        if self.cmsr is not None and not self.training and coord.shape[1] > self.max_scale ** 2 * h_in * w_in:
            return self.query_rgb_cmsr(coord, cell)
        if use_fast(fast):
            return self.query_rgb_fast(coord, cell)
        return self.query_rgb_plain(coord, cell)

    def query_rgb_plain(self, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """docs/design.md §2.5 step by step: the executable definition of LMF's query."""
        mod = self.modulations(cell)
        n_mod = self.imnet.mod_dim
        source = self.render_source(mod)  # (B, S, h, w)
        hw = source.shape[-2:]
        centres = latent_centres(source)  # (B, 2, h, w)
        rel_cell = to_latent_units(cell, hw) if self.cell_decode else None
        corners, eps = self.corners()
        preds, areas = [], []
        for dr, dc in corners:
            coord_ = shift_coord(coord, dr, dc, hw, eps)
            q_source = sample_nearest(source, coord_)  # (B, Q, S)
            q_mod = sample_nearest(mod[:, :n_mod], coord_)  # (B, Q, mod_dim)
            rel_coord = to_latent_units(coord - sample_nearest(centres, coord_), hw)
            preds.append(self.imnet(self.render_input(q_source, rel_coord, rel_cell), q_mod))  # (B, Q, 3)
            areas.append(corner_area(rel_coord))
        out = preds[0] if len(preds) == 1 else \
            (torch.stack(preds) * opposite_area_weights(torch.stack(areas)).unsqueeze(-1)).sum(0)
        return self.residual(out, coord, self.inp)

    def fast_table(self, cell: Optional[Tensor]) -> tuple[Tensor, Tensor, bool]:
        """(table (B*h*w, S' + 2 L d), mm (B, 1, h, w), finite): one row per latent cell holding
        what the render MLP reads from that cell (`table_source`) and its modulations as
        1 + scale, shift (`table_columns`); mm is CMSR's complexity measure. Cached per image and
        cell while gradients are off. `finite` is False when the latent MLP's first layer or the
        weights hold a NaN or inf, which the fused layers would hide (then use the plain path)."""
        rel_cell = self.image_rel_cell(cell)
        params = list(self.parameters())

        def compute():
            pre = self.latent_first(rel_cell)  # (B*h*w, H1)
            finite = torch.is_grad_enabled() or all_finite([pre, *params])
            mod = self.hypernet.from_first(pre)  # (B*h*w, Dm)
            n_mod = self.imnet.mod_dim
            b, _, h, w = self.feat.shape
            mm = mean_abs_shift(mod[:, :n_mod]).view(b, 1, h, w)
            return torch.cat([self.table_source(mod), self.imnet.table_columns(mod[:, :n_mod])], 1), mm, finite
        extra = () if rel_cell is None else tuple(rel_cell.flatten().tolist())
        return cached_projection(self, self.feat, params, compute, extra)

    def query_rgb_fast(self, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """query_rgb_plain restructured: the latent MLP once per image into a table of rows
        (`fast_table`; its first layer a convolution of the grid, as LIIF's fast path), each corner's
        row gathered by the same nearest rule, the render MLP's first layer split between the table
        and the per-query columns, the corners as one batch. Same function up to float rounding."""
        table, _, finite = self.fast_table(cell)
        if not finite:
            return self.query_rgb_plain(coord, cell)
        return self.query_table(table, coord, cell, self.inp)

    def query_table(self, table: Tensor, coord: Tensor, cell: Optional[Tensor], inp: Tensor) -> Tensor:
        """The render MLP at coord, cell (B, Q, 2) from a fast_table of the same B images (inp
        (B, 3, h, w) for the residual) -> rgb (B, Q, 3)."""
        hw = self.feat.shape[-2:]
        corners, eps = self.corners()
        coord_ = torch.stack([shift_coord(coord, dr, dc, hw, eps) for dr, dc in corners], 1)  # (B, K, Q, 2)
        b, k, q = coord_.shape[:3]
        index = nearest_index(coord_.view(b, k * q, 2), hw)  # (B, K*Q)
        q_coord = make_coord(hw, device=coord.device)[index].view(b, k, q, 2)
        rel_coord = to_latent_units(coord.unsqueeze(1) - q_coord, hw)  # (B, K, Q, 2)
        rel_cell = None
        if self.cell_decode:
            rel_cell = to_latent_units(cell, hw).unsqueeze(1).expand(b, k, q, 2).reshape(-1, 2)  # (B*K*Q, 2)
        rows, rel = flat_index(index, hw[0] * hw[1]), rel_coord.reshape(-1, 2)
        n_source = table.shape[1] - 2 * self.imnet.hidden_dim * self.imnet.hidden_depth
        chunk = TRAIN_ROW_CHUNK if torch.is_grad_enabled() else LMF_ROW_CHUNK
        preds = []
        for i in range(0, rows.shape[0], chunk):
            part = rows[i:i + chunk]
            gathered = F.embedding(part, table) if torch.is_grad_enabled() else gather_rows(table, part)  # (n, T)
            pre = self.render_first(gathered[:, :n_source], rel[i:i + chunk],
                                    None if rel_cell is None else rel_cell[i:i + chunk])  # (n, d)
            preds.append(self.imnet.from_first(pre, gathered[:, n_source:]))  # (n, 3)
        pred = torch.cat(preds).view(b, k, q, -1)
        if k == 1:
            out = pred[:, 0]
        else:
            weights = opposite_area_weights(corner_area(rel_coord).transpose(0, 1))  # (K, B, Q)
            out = (pred.transpose(0, 1) * weights.unsqueeze(-1)).sum(0)  # (B, Q, 3)
        return self.residual(out.to(torch.promote_types(out.dtype, torch.float32)), coord, inp)

    def query_rgb_cmsr(self, coord: Tensor, cell: Optional[Tensor]) -> Tensor:
        """CMSR (models/cmsr.py) image by image, the modulations from the call's own cell."""
        table, mm, _ = self.fast_table(cell)
        n_cells = table.shape[0] // coord.shape[0]
        outs = []
        for i in range(coord.shape[0]):
            rows, inp = table[i * n_cells:(i + 1) * n_cells], self.inp[i:i + 1]
            outs.append(self.cmsr.render(mm[i:i + 1], inp, coord[i:i + 1], self.feat.shape[-2:], self.max_scale,
                                         lambda c, s: self.query_table(rows, c, s, inp), self.keep_matching_grid))
        return torch.cat(outs)

    keep_matching_grid = False  # CMSR's last-level rule, see CMSR.render

    def residual(self, out: Tensor, coord: Tensor, inp: Tensor) -> Tensor:
        """What is added to the blended prediction (B, Q, 3): nothing (LM-LTE: the LR skip)."""
        return out

    def forward(self, inp: Tensor, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)


@register('lmliif')
class LMLIIF(LatentModulated):
    """LM-LIIF: LIIF with a latent modulated render MLP (docs/design.md §2.5).

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

    def table_source(self, mod: Tensor) -> Tensor:
        """(B*h*w, d): the render MLP's first Linear applied to each cell's code (or feature), bias in."""
        weight, bias = self.imnet.first_layer()
        source = mod[:, self.imnet.mod_dim:] if self.mod_input else cell_rows(self.feat)  # (B*h*w, S)
        return torch.addmm(bias, source, weight[:, :source.shape[1]].t())

    def render_first(self, source: Tensor, rel_coord: Tensor, rel_cell: Optional[Tensor]) -> Tensor:
        """The first Linear's output (n, d): the gathered projection plus the per-query columns."""
        weight, _ = self.imnet.first_layer()
        rel = rel_coord if rel_cell is None else torch.cat([rel_coord, rel_cell], -1)  # (n, 2 or 4)
        return torch.addmm(source, rel, weight[:, weight.shape[1] - rel.shape[1]:].t())


@register('lmlte')
class LMLTE(LatentModulated):
    """LM-LTE: LTE with a latent modulated render MLP (docs/design.md §2.5).

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

    def table_source(self, mod: Tensor) -> Tensor:
        """(B*h*w, 2S): the amplitude and frequency rows the render MLP reads."""
        return mod[:, self.imnet.mod_dim:] if self.mod_input else cell_rows(self.render_source(mod))

    def render_first(self, source: Tensor, rel_coord: Tensor, rel_cell: Optional[Tensor]) -> Tensor:
        """The first Linear's output (n, d) on the gathered rows' Fourier input."""
        weight, bias = self.imnet.first_layer()
        return F.linear(self.render_input(source, rel_coord, rel_cell), weight, bias)

    def residual(self, out: Tensor, coord: Tensor, inp: Tensor) -> Tensor:
        """LTE's LR skip: the input sampled bilinearly at coord, added."""
        return out + sample_bilinear(inp, coord)

