"""CMSR, LMF's controllable multi-scale rendering (docs/design.md §2.7): an approximation of the
exact render beyond the training scales, as the LMF release computes it.

Each latent cell gets a complexity measure, the mean absolute shift modulation (`mean_abs_shift`).
A threshold table for the target scale S splits that measure into intervals, one per decode scale
s < S (and S itself): a region whose measure falls in the interval of s is rendered exactly on a
grid of s times the input size, and everything finer comes from bilinear upsampling, level after
level. Smooth regions are thus decoded at low resolution. The tables come from a calibration
(`update_table`, scripts/build_cmsr_tables.py): s is trusted for a measure when upsampling its
render costs at most an MSE threshold against the exact render.
"""
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
import torch.nn as nn
from torch import Tensor

from utils.config import load_yaml
from utils.coords import make_cell, make_coord, resampled_centres, sample_bilinear, sample_nearest
from utils.errors import UserError

# Decode scales a new table starts from (the release's), each with threshold 1.
DECODE_SCALES = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
# Queries rendered per call of the exact path inside CMSR (bounds its intermediate tensors).
CMSR_QUERY_CHUNK = 1 << 18
Table = dict  # {decode scale: threshold}


def mean_abs_shift(mod: Tensor) -> Tensor:
    """mod (..., mod_dim) -> (...): the mean absolute value of the modulations' second half (the
    shifts, when both scales and shifts are on), CMSR's complexity measure of a latent cell."""
    return mod[..., mod.shape[-1] // 2:].abs().mean(-1)


def _number(value, what: str, where: str, zero_ok: bool = False) -> float:
    """value as a float, or a UserError unless it is a finite number > 0 (>= 0 with zero_ok)."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and (value > 0 or (zero_ok and value == 0))):
        raise UserError(f'{where}: a CMSR {what} must be a finite number {">= 0" if zero_ok else "> 0"}, got {value!r}')
    return float(value)


def check_tables(tables, where: str = 'cmsr tables') -> tuple:
    """{target scale: {decode scale: threshold}} (YAML numbers) -> a sorted tuple of (scale,
    ((decode scale, threshold), ...)); a UserError naming the first mistake."""
    if not isinstance(tables, dict) or not tables:
        raise UserError(f'{where}: expected a mapping {{target scale: {{decode scale: threshold}}}}, '
                        f'got {type(tables).__name__}')
    out = []
    for scale, table in tables.items():
        s = _number(scale, 'target scale', where)
        if not isinstance(table, dict) or not table:
            raise UserError(f'{where}: the table of scale {scale} must be a non-empty mapping '
                            '{decode scale: threshold}')
        rows = sorted((_number(k, 'decode scale', where), _number(v, 'threshold', where, zero_ok=True))
                      for k, v in table.items())
        out.append((s, tuple(rows)))
    return tuple(sorted(out))


def read_tables(path) -> dict:
    """The tables of a CMSR file (YAML {target scale: {decode scale: threshold}}, as the LMF
    release's configs/cmsr/result files and scripts/build_cmsr_tables.py write them), checked."""
    tables = load_yaml(path)
    check_tables(tables, str(path))
    return tables


def enable_cmsr(model: nn.Module, tables) -> None:
    """Switch CMSR on for a loaded model with `tables`: a table file's path (test.py's and
    demo.py's --cmsr, Upscaler's cmsr=) or the tables themselves {scale: {decode scale:
    threshold}}; a UserError for a model without CMSR (only LMF's have it) or anything else."""
    if not callable(getattr(model, 'set_cmsr', None)):
        raise UserError(f'--cmsr {tables}: CMSR is an option of LMF models (lmliif, lmlte); this model is '
                        f'{type(model).__name__}')
    if isinstance(tables, dict):
        check_tables(tables)
    elif isinstance(tables, (str, os.PathLike)):
        tables = read_tables(tables)
    else:
        raise UserError(f'cmsr: expected a table file or tables {{scale: {{decode scale: threshold}}}}, '
                        f'got {type(tables).__name__}')
    model.set_cmsr(tables)


@dataclass(frozen=True)
class CMSR:
    """Threshold tables, sorted by target scale, each sorted by decode scale (the release iterates
    them in file order; its files are sorted)."""
    tables: tuple

    @classmethod
    def from_spec(cls, spec: Optional[dict]) -> Optional['CMSR']:
        """From a model's cmsr_spec {'s2m_tables': ...} (the release's; other keys ignored), or None."""
        if spec is None:
            return None
        if not isinstance(spec, dict) or 's2m_tables' not in spec:
            raise UserError("cmsr_spec must be a mapping with 's2m_tables'")
        return cls(check_tables(spec['s2m_tables']))

    def levels(self, scale: float) -> tuple[list[float], list[float]]:
        """(decode scales, thresholds T) for target scale `scale`: the first table whose scale is
        >= it (else the last), its decode scales below `scale`, T = [0, their thresholds]; when
        the last threshold is below 1, `scale` itself is appended with threshold 1. Level i covers
        measures in [T_i, T_i+1]."""
        table = next((t for s, t in self.tables if s >= scale), self.tables[-1][1])
        scales = [s for s, _ in table if s < scale]
        thresholds = [0.0] + [t for s, t in table if s < scale]
        if thresholds[-1] < 1:
            scales.append(scale)
            thresholds.append(1.0)
        return scales, thresholds

    def render(self, mm: Tensor, inp: Tensor, coord: Tensor, hw: tuple, max_scale: float,
               query: Callable[[Tensor, Tensor], Tensor], keep_matching_grid: bool) -> Tensor:
        """One image: mm (1, 1, h, w) the measure per latent cell, inp (1, 3, h', w') the normalised
        input, coord (1, Q, 2) -> rgb (1, Q, 3). query(coord, cell) is the exact render.

        As the release: S = sqrt(Q / hw); level i's grid is resampled_centres at int(h s_i) x
        int(w s_i) (levels with s_i < 1 are skipped); the first level keeps measures <= T_1, the
        last those >= T_i, the others |m - mid| <= half-width (m sampled nearest); the kept points
        of all levels are rendered exactly in one pass, cell (2 / qh, 2 / qw) * max(s_i / 4, 1);
        then, from the input, each level with kept points upsamples the previous result bilinearly
        onto its grid and overwrites the kept points. The last level's grid is returned as it is
        when it is the grid asked for (coord equal to make_coord of its size; for the level S
        itself, or with `keep_matching_grid` (LM-LTE's rule) any level of Q points), else sampled
        bilinearly at coord. The release returns the level grid whenever it has Q points and
        ignores coord (and fails when the last level keeps nothing); those cases are defined here."""
        h, w = hw
        q = coord.shape[1]
        scale = math.sqrt(q / h / w)
        scales, thresholds = self.levels(scale)
        n_levels, start = len(thresholds) - 1, 0
        levels = []
        for i in range(n_levels):
            if scales[i] < 1:
                start += 1
                continue
            size = (int(h * scales[i]), int(w * scales[i]))
            grid = resampled_centres(hw, size, 1, coord.device)  # (1, qh*qw, 2)
            if i in (start, n_levels - 1):
                m = sample_nearest(mm, grid).flatten()
                keep = m >= thresholds[i] if i == n_levels - 1 else m <= thresholds[i + 1]
            else:
                lo, hi = thresholds[i], thresholds[i + 1]
                keep = sample_nearest((mm - (hi + lo) / 2).abs(), grid).flatten() <= (hi - lo) / 2
            levels.append((scales[i], size, grid, torch.nonzero(keep).flatten()))
        kept = [(s, size, grid[:, idx]) for s, size, grid, idx in levels if idx.numel()]
        pred = None
        if kept:
            coords = torch.cat([c for _, _, c in kept], 1)  # (1, N, 2)
            cells = torch.cat([make_cell(size, c) * max(s / max_scale, 1) for s, size, c in kept], 1)
            pred = torch.cat([query(coords[:, j:j + CMSR_QUERY_CHUNK], cells[:, j:j + CMSR_QUERY_CHUNK])
                              for j in range(0, coords.shape[1], CMSR_QUERY_CHUNK)], 1)[0]  # (N, 3)
        ret, offset, last = inp, 0, None
        for s, size, grid, idx in levels:
            if not idx.numel():
                continue  # the release skips an empty level: the next one upsamples the one before
            flat = sample_bilinear(ret, grid)[0]  # (qh*qw, 3)
            flat[idx] = pred[offset:offset + idx.numel()].to(flat.dtype)
            offset += idx.numel()
            ret = flat.view(1, *size, 3).permute(0, 3, 1, 2)  # (1, 3, qh, qw)
            last = (s, size)
        if last is not None and last[1][0] * last[1][1] == q and (last[0] >= scale or keep_matching_grid) \
                and torch.allclose(coord[0], make_coord(last[1], device=coord.device), rtol=0, atol=1e-6):
            return ret.permute(0, 2, 3, 1).reshape(1, q, 3)
        return sample_bilinear(ret, coord)


def candidate_means(top: float) -> list[float]:
    """The release's candidate measures: 101 values from 0 to `top` (1 for LM-LIIF, 0.5 for LM-LTE)."""
    return [top * i / 100 for i in range(101)]


def new_table(scale: float) -> Table:
    """The table a calibration of target scale `scale` starts from: every DECODE_SCALES entry up
    to it, threshold 1."""
    return {s: 1 for s in DECODE_SCALES if s <= scale}


def update_table(table: Table, scale: float, exact: Tensor, mm: Tensor, render_level: Callable[[float], Tensor],
                 threshold: float, candidates: Iterable[float], width: float = 0.001) -> Table:
    """One image's calibration step (the release's init_cmsr): exact (N, 3) the exact render of
    the target grid, mm (N,) the measure at each of its points (nearest cell), render_level(s) the
    render of the plain s grid (cell 2 / qh, unclipped) sampled bilinearly at the points.
    For each decode scale s < scale, in order: walk the candidates upwards, skipping those already
    accepted at a smaller s; a candidate m is accepted when the MSE between render_level(s) and
    exact over the points with |mm - m| <= width is <= threshold (no such points: skipped); the
    walk stops at the first failure. t_s becomes min(t_s, the last accepted m), and smaller decode
    scales are clipped to <= t_s. If candidates remain, the table gets (or updates) the key
    `scale` with the last one, with the same clipping. Returns the new table."""
    table, remaining = dict(table), list(candidates)
    for s in list(table):
        if s >= scale:
            break
        pred, best = render_level(s), table[s]
        for m in list(remaining):
            keep = (mm - m).abs() <= width
            if not bool(keep.any()):
                continue
            if torch.mean((pred[keep] - exact[keep]) ** 2) <= threshold:
                remaining.remove(m)
                best = m
            else:
                break
        table[s] = min(best, table[s])
        for other in table:
            if other < s and table[other] > table[s]:
                table[other] = table[s]
    if remaining:
        table[scale] = remaining[-1]
        for other in table:
            if other < scale and table[other] > table[scale]:
                table[other] = table[scale]
    return table
