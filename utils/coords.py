"""The one home of LIIF's coordinate conventions (docs/design.md §1).

Coordinates live in [-1, 1]; the last dimension is (row, col); pixel i of an axis of length N
has centre -1 + (2i + 1) / N. `F.grid_sample` wants (x, y) = (col, row): only this module flips.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def axis_centres(n: int, span: Sequence[float] = (-1, 1), start: int = 0, stop: Optional[int] = None,
                 device=None) -> Tensor:
    """Centres of pixels start .. stop-1 (default: all n) of an axis of n pixels spanning
    [span[0], span[1]]: float32 (stop - start,). Every entry is computed by the same float32
    operations whatever start and stop are, so a slice equals that slice of the whole axis bit for
    bit (a band or a region of an output queries exactly the points of the full grid)."""
    # The paper's code: a float32 arange times 2r, plus v0 + r, the scalars in float64 rounded once
    # to float32 (what torch does with Python scalars). The size is made a float64 tensor so that an
    # exported graph, where it is symbolic, computes the same values (a symbolic size's Python
    # arithmetic would be float32; docs/design.md §11): models whose outputs jump at ulp-level
    # differences (HIIF's bits, nearest picks) see exactly these values in every runtime.
    v0, v1 = span
    r = (v1 - v0) / (2 * torch.scalar_tensor(n, dtype=torch.float64, device=device))
    steps = torch.arange(start, n if stop is None else stop, device=device).float()
    return (v0 + r).float() + (2 * r).float() * steps


def make_coord(shape: Sequence[int], ranges: Optional[Sequence[Sequence[float]]] = None,
               flatten: bool = True, device=None) -> Tensor:
    """Pixel-centre coordinates of a grid: (*shape, ndim), or (prod(shape), ndim) if flatten.
    Row-major order, last dim (row, col)."""
    return coord_block(shape, [0] * len(shape), shape, ranges, flatten, device)


def coord_block(shape: Sequence[int], starts: Sequence[int], sizes: Sequence[int],
                ranges: Optional[Sequence[Sequence[float]]] = None, flatten: bool = True, device=None) -> Tensor:
    """The block of make_coord(shape, ranges) that starts at index `starts` and has `sizes` pixels
    per axis (rows top .. top+height-1 and columns left .. left+width-1 of a 2-D grid): (*sizes,
    ndim), or (prod(sizes), ndim) if flatten; equal to that block of the whole grid bit for bit,
    without building it."""
    seqs = [axis_centres(n, (-1, 1) if ranges is None else ranges[i], a, a + m, device)
            for i, (n, a, m) in enumerate(zip(shape, starts, sizes))]
    coord = torch.stack(torch.meshgrid(*seqs, indexing='ij'), dim=-1)  # (*sizes, ndim)
    return coord.view(-1, coord.shape[-1]) if flatten else coord


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


def resampled_centres(hw: Sequence[int], size: Sequence[int], batch: int = 1, device=None) -> Tensor:
    """The latent centres of an (h, w) grid, make_coord's table, resampled bilinearly to a grid of
    `size` (F.interpolate, align_corners=False): (batch, size[0] * size[1], 2), row-major. Inside,
    these are the centres of a `size` grid (up to rounding); rows and columns within half a latent
    cell of the border are clamped to the outermost latent centres. CMSR's level grids
    (docs/design.md §2.7): computed exactly so, as the release does, the clamped bottom/right rows
    land on (or one ulp off) the last centre row, which decides their ensemble weights."""
    centres = make_coord(hw, flatten=False, device=device).permute(2, 0, 1).unsqueeze(0)  # (1, 2, h, w)
    grid = F.interpolate(centres.expand(batch, 2, *hw), size=tuple(size), mode='bilinear',
                         align_corners=False)  # (batch, 2, H', W')
    return grid.permute(0, 2, 3, 1).reshape(batch, -1, 2)
