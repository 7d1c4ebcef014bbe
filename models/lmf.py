"""LMF: latent modulated functions (He and Jin, CVPR 2024), docs/design.md §2.6: what LM-LIIF
(models/lmliif.py) and LM-LTE (models/lmlte.py) share.

LIIF and LTE run a wide decoder once per query and corner. LMF moves the wide part to the latent
grid: a latent MLP (`hypernet`) runs once per latent cell and predicts a scale and a shift for
every hidden layer of a narrow render MLP (`imnet`, an `lmmlp`), and, with `mod_input`, the
compressed code the render MLP reads. Each query then runs only the render MLP on its cell's code
and relative position, modulated by that cell's scales and shifts. Corners, the nearest-cell rule,
relative coordinates and the opposite-area ensemble are LIIF's (§2.1).

The latent MLP also reads the output pixel's size (the cell). It runs per latent cell, not per
query, so it takes one cell per image: the first query's. The release takes, for latent cell p,
the cell of query p; the two agree whenever an image's queries share one cell, as in every
training sample, test protocol and render (§2.6).
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import (latent_centres, make_cell, make_coord, sample_bilinear, sample_nearest, shift_coord,
                          to_latent_units)
from .cmsr import CMSR, CMSR_QUERY_CHUNK, Table, candidate_means, mean_abs_shift, update_table
from .fast_query import (ROW_CHUNK, TRAIN_ROW_CHUNK, all_finite, cached_projection, corner_picks, encoder_input,
                         flat_index, gather_rows, use_fast)
from .liif import ENSEMBLE_CORNERS, blend_corners
from .registry import make

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
    `table_source`, `render_linear`) and what is added to the blend (`residual`)."""

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
        """docs/design.md §2.6 step by step: the executable definition of LMF's query."""
        mod = self.modulations(cell)
        n_mod = self.imnet.mod_dim
        source = self.render_source(mod)  # (B, S, h, w)
        hw = source.shape[-2:]
        centres = latent_centres(source)  # (B, 2, h, w)
        rel_cell = to_latent_units(cell, hw) if self.cell_decode else None
        corners, eps = self.corners()
        preds, rel_coords = [], []
        for dr, dc in corners:
            coord_ = shift_coord(coord, dr, dc, hw, eps)
            q_source = sample_nearest(source, coord_)  # (B, Q, S)
            q_mod = sample_nearest(mod[:, :n_mod], coord_)  # (B, Q, mod_dim)
            rel_coords.append(to_latent_units(coord - sample_nearest(centres, coord_), hw))
            preds.append(self.imnet(self.render_input(q_source, rel_coords[-1], rel_cell), q_mod))  # (B, Q, 3)
        out = blend_corners(torch.stack(preds, 1), torch.stack(rel_coords, 1))  # (B, Q, 3)
        return self.residual(out, coord, self.inp)

    def fast_table(self, cell: Optional[Tensor]) -> tuple[list[Tensor], Tensor, bool]:
        """(tables, mm (B, 1, h, w), finite): tables with one row per latent cell, first what the
        render MLP reads from that cell (`table_source`, (B*h*w, S), S possibly 0), then its
        modulations with the layers' biases folded in, one (B*h*w, 2d) table per layer
        (lmmlp.table_columns); mm is CMSR's complexity measure. Cached per image and
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
            source, first_bias = self.table_source(mod)
            return [source, *self.imnet.table_columns(mod[:, :n_mod], first_bias)], mm, finite
        extra = () if rel_cell is None else tuple(rel_cell.flatten().tolist())
        return cached_projection(self, self.feat, params, compute, extra)

    def query_rgb_fast(self, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """query_rgb_plain restructured: the latent MLP once per image into a table of rows
        (`fast_table`; its first layer a convolution of the grid, as LIIF's fast path), each corner's
        row gathered by the same nearest rule, the render MLP's first layer split between the table
        and the per-query columns (LM-LIIF), its layers' biases and modulations folded into one
        multiply-add per layer, the corners as one batch. Same function up to float rounding."""
        table, _, finite = self.fast_table(cell)
        if not finite:
            return self.query_rgb_plain(coord, cell)
        return self.query_table(table, coord, cell, self.inp)

    def query_table(self, table: list[Tensor], coord: Tensor, cell: Optional[Tensor], inp: Tensor) -> Tensor:
        """The render MLP at coord, cell (B, Q, 2) from the fast_table tables of the same B images
        (inp (B, 3, h, w) for the residual) -> rgb (B, Q, 3)."""
        hw = self.feat.shape[-2:]
        index, rel_coord = corner_picks(coord, hw, *self.corners())  # (B, K*Q), (B, K, Q, 2)
        b, k, q = rel_coord.shape[:3]
        rel = rel_coord
        if self.cell_decode:
            rel = torch.cat([rel_coord, to_latent_units(cell, hw).unsqueeze(1).expand(b, k, q, 2)], -1)
        rows, rel = flat_index(index, hw[0] * hw[1]), rel.reshape(b * k * q, -1)  # (B*K*Q, 2 or 4)
        source, layers = table[0], table[1:]
        chunk = TRAIN_ROW_CHUNK if torch.is_grad_enabled() else ROW_CHUNK
        preds = []
        for i in range(0, rows.shape[0], chunk):
            part = rows[i:i + chunk]
            gathered = None  # (n, S) the rows of what the render MLP reads from its cell (LM-LIIF: nothing)
            if source.shape[1]:
                gathered = F.embedding(part, source) if torch.is_grad_enabled() else gather_rows(source, part)
            lin = self.render_linear(gathered, rel[i:i + chunk])  # (n, d)
            preds.append(self.imnet.from_linear(lin, layers, part))  # (n, 3)
        out = blend_corners(torch.cat(preds).view(b, k, q, -1), rel_coord)  # (B, Q, 3)
        return self.residual(out.to(torch.promote_types(out.dtype, torch.float32)), coord, inp)

    def query_rgb_cmsr(self, coord: Tensor, cell: Optional[Tensor]) -> Tensor:
        """CMSR (models/cmsr.py) image by image, the modulations from the call's own cell."""
        table, mm, _ = self.fast_table(cell)
        n_cells = table[1].shape[0] // coord.shape[0]
        outs = []
        for i in range(coord.shape[0]):
            rows, inp = [t[i * n_cells:(i + 1) * n_cells] for t in table], self.inp[i:i + 1]
            outs.append(self.cmsr.render(mm[i:i + 1], inp, coord[i:i + 1], self.feat.shape[-2:], self.max_scale,
                                         lambda c, s: self.query_table(rows, c, s, inp), self.keep_matching_grid))
        return torch.cat(outs)

    keep_matching_grid = False  # CMSR's last-level rule, see CMSR.render
    cmsr_candidates = candidate_means(1)  # the measures CMSR's calibration tries (LM-LTE: up to 0.5)

    @torch.no_grad()
    def calibrate_cmsr(self, table: Table, coord: Tensor, cell: Tensor, threshold: float) -> Table:
        """After gen_feat of one image: CMSR's calibration step for its target grid coord (1, Q, 2)
        with cell (1, Q, 2) (clipped as for rendering): the exact render, each cell's measure at
        the grid's points, and each decode scale's plain grid render upsampled onto them
        (cmsr.update_table). Returns the updated table {decode scale: threshold}."""
        rows, mm, _ = self.fast_table(cell)
        h, w = self.feat.shape[-2:]

        def render(c: Tensor, s: Tensor) -> Tensor:
            return torch.cat([self.query_table(rows, c[:, i:i + CMSR_QUERY_CHUNK], s[:, i:i + CMSR_QUERY_CHUNK],
                                               self.inp) for i in range(0, c.shape[1], CMSR_QUERY_CHUNK)], 1)

        def level(s: float) -> Tensor:
            size = (int(h * s), int(w * s))
            grid = make_coord(size, device=coord.device).unsqueeze(0)  # (1, qh*qw, 2)
            img = render(grid, make_cell(size, grid)).view(1, *size, 3).permute(0, 3, 1, 2)  # (1, 3, qh, qw)
            return sample_bilinear(img, coord)[0]  # (Q, 3)
        exact = render(coord, cell)[0]  # (Q, 3)
        scale = math.sqrt(coord.shape[1] / h / w)
        return update_table(table, scale, exact, sample_nearest(mm, coord)[0, :, 0], level, threshold,
                            self.cmsr_candidates)

    def residual(self, out: Tensor, coord: Tensor, inp: Tensor) -> Tensor:
        """What is added to the blended prediction (B, Q, 3): nothing (LM-LTE: the LR skip)."""
        return out

    def forward(self, inp: Tensor, coord: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3)."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
