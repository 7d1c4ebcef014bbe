"""The one home of LIIF's coordinate conventions (docs/design.md §1).

Coordinates live in [-1, 1]; the last dimension is (row, col); pixel i of an axis of length N
has centre -1 + (2i + 1) / N. `F.grid_sample` wants (x, y) = (col, row): only this module flips.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def coord_seq(n: int, v0: float = -1, v1: float = 1, device=None) -> Tensor:
    """The n pixel centres of an axis spanning [v0, v1], float32, computed as the paper's code
    does (a float32 arange times 2r, plus v0 + r): models whose outputs jump at ulp-level
    differences (HIIF's bits, nearest picks) see exactly these values."""
    # The scalars v0 + r and 2r in float64, rounded once to float32, then float32 products: what
    # torch does with Python scalars, so the paper code's values exactly. The size is made a float64
    # tensor so that an exported graph, where it is symbolic, computes the same (its Python
    # arithmetic on a symbolic size would be float32).
    r = (v1 - v0) / (2 * torch.scalar_tensor(n, dtype=torch.float64, device=device))
    return (v0 + r).float() + (2 * r).float() * torch.arange(n, device=device).float()


def make_coord(shape: Sequence[int], ranges: Optional[Sequence[Sequence[float]]] = None,
               flatten: bool = True, device=None) -> Tensor:
    """Pixel-centre coordinates of a grid: (*shape, ndim), or (prod(shape), ndim) if flatten.
    Row-major order, last dim (row, col)."""
    seqs = [coord_seq(n, *((-1, 1) if ranges is None else ranges[i]), device=device) for i, n in enumerate(shape)]
    coord = torch.stack(torch.meshgrid(*seqs, indexing='ij'), dim=-1)  # (*shape, ndim)
    return coord.view(-1, coord.shape[-1]) if flatten else coord


def grid_rows(shape: Sequence[int], r0: int, r1: int, device=None) -> Tensor:
    """Rows r0 .. r1-1 of make_coord(shape) for shape (H, W): ((r1 - r0) * W, 2), the same floats,
    without building the other rows."""
    rows = coord_seq(shape[0], device=device)[r0:r1]
    cols = coord_seq(shape[1], device=device)
    return torch.stack(torch.meshgrid(rows, cols, indexing='ij'), dim=-1).view(-1, 2)  # ((r1 - r0) * W, 2)


def make_cell(shape: Sequence[int], coord: Tensor) -> Tensor:
    """Cell of an output grid of size shape = (H, W), one per query of `coord` (..., 2):
    (2 / H, 2 / W), same leading shape, device and dtype as `coord`."""
    cell = torch.ones_like(coord)
    cell[..., 0] *= 2 / shape[0]
    cell[..., 1] *= 2 / shape[1]
    return cell


def to_pixel_samples(img: Tensor) -> tuple[Tensor, Tensor]:
    """img (3, H, W) -> coord (H*W, 2), rgb (H*W, 3), both in row-major pixel order."""
    coord = make_coord(img.shape[-2:], device=img.device)
    rgb = img.reshape(img.shape[0], -1).permute(1, 0)  # (H*W, 3)
    return coord, rgb


def sample_nearest(grid: Tensor, coord: Tensor) -> Tensor:
    """grid (B, C, h, w), coord (B, Q, 2) -> (B, Q, C): the grid value nearest to each coord,
    exactly as `F.grid_sample(mode='nearest', align_corners=False)` picks it (index
    round_half_even(((c + 1) * N - 1) / 2); outside the grid gives 0)."""
    out = F.grid_sample(grid, coord.flip(-1).unsqueeze(1), mode='nearest',
                        align_corners=False)  # (B, C, 1, Q)
    return out[:, :, 0, :].permute(0, 2, 1)


def sample_bilinear(img: Tensor, coord: Tensor) -> Tensor:
    """img (B, C, h, w), coord (B, Q, 2) -> (B, Q, C): img interpolated bilinearly at each coord
    (`F.grid_sample`, align_corners=False), the border pixels extended beyond the image."""
    out = F.grid_sample(img, coord.flip(-1).unsqueeze(1), mode='bilinear', padding_mode='border',
                        align_corners=False)  # (B, C, 1, Q)
    return out[:, :, 0, :].permute(0, 2, 1)


def cell_positions(hw: Sequence[int], top_left: bool = False, flatten: bool = True, device=None) -> Tensor:
    """Centres (or, with top_left, top-left corners) of the cells of an (h, w) grid: (h*w, 2)
    row-major, or (h, w, 2) without flatten."""
    h, w = hw
    coord = make_coord((h, w), flatten=False, device=device)  # (h, w, 2)
    if top_left:  # minus (1/h, 1/w), float64 rounded to float32 as in make_coord
        half = 1 / torch.stack([torch.scalar_tensor(n, dtype=torch.float64, device=device) for n in (h, w)])
        coord -= half.float()
    return coord.view(-1, 2) if flatten else coord


def latent_centres(feat: Tensor, top_left: bool = False) -> Tensor:
    """Centres (or, with top_left, top-left corners) of the latent cells of feat (B, C, h, w),
    as a grid (B, 2, h, w) for `sample_nearest`."""
    b, _, h, w = feat.shape
    coord = cell_positions((h, w), top_left, flatten=False, device=feat.device)  # (h, w, 2)
    return coord.permute(2, 0, 1).unsqueeze(0).expand(b, 2, h, w)


def unfold3x3(feat: Tensor) -> Tensor:
    """feat (B, C, h, w) -> (B, 9C, h, w): channel c*9 + k holds channel c at 3x3 position
    k = 3*dy + dx, zero padded (docs/design.md §2.1 step 2)."""
    b, c, h, w = feat.shape
    return F.unfold(feat, 3, padding=1).view(b, c * 9, h, w)


def shift_coord(coord: Tensor, dr: float, dc: float, hw: Sequence[int], eps: float) -> Tensor:
    """coord (..., 2) moved by dr latent rows and dc latent cols of an (h, w) grid, (1/h, 1/w)
    per unit, plus eps on both axes; clamped to [-1 + 1e-6, 1 - 1e-6] (docs/design.md §2.1 step 4)."""
    # Built out of place (no in-place writes to slices, which an exported graph turns into scatters).
    coord_ = torch.stack([coord[..., 0] + (dr / hw[0] + eps), coord[..., 1] + (dc / hw[1] + eps)], dim=-1)
    return coord_.clamp_(-1 + 1e-6, 1 - 1e-6)


def to_latent_units(delta: Tensor, hw: Sequence[int]) -> Tensor:
    """A (row, col) offset or size (..., 2) in [-1, 1] units -> in units of one latent cell's
    half-width: row times h, col times w. Used for rel_coord and rel_cell."""
    return torch.stack([delta[..., 0] * hw[0], delta[..., 1] * hw[1]], dim=-1)
