"""Rendering: encode once, query the decoder in chunks, write the output in row bands. A render
in which any prediction is NaN or inf is refused (a UserError), never returned as black pixels.

Shared by evaluation (`batched_predict`) and demo.py (`render`). Memory stays bounded however large
the output: besides the latent grid and the uint8 result (3 bytes per output pixel), only one
band of float predictions (`band_rows` x W x 3) and one chunk of `bsize` queries are alive.
"""
import contextlib
from typing import Callable, Iterator, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor
from tqdm import tqdm

from utils.coords import coord_block, make_cell
from utils.errors import UserError
from utils.precision import autocast

from .norm import DataNorm
from .options import check_bsize
from .groups import couples_queries, group_rows, query_group, whole_grid
from .tiling import encode_tiled
from .window import cell_clip, mirror_pad, padded_grid, window_frame

# A band holds about this many output pixels: 12 MB of float predictions.
BAND_PIXELS = 1 << 20


def resolve_cell_scale_max(model: Optional[nn.Module], configured: Optional[float] = None) -> Optional[float]:
    """The cell clip's scale: the configured one (a test config's cell_scale_max), else the one the
    model declares (its attribute `cell_scale_max`: LMF's 4, as its authors' test.py and demo.py
    clip), else None (no clip)."""
    return configured if configured is not None else getattr(model, 'cell_scale_max', None)


@torch.no_grad()
def batched_predict(model: nn.Module, inp: Tensor, coord: Tensor, cell: Tensor, bsize: int,
                    group: Optional[int] = None) -> Tensor:
    """inp (B, 3, h, w), coord and cell (B, Q, 2) -> pred (B, Q, 3), querying `bsize` coords at a
    time after one encoder pass. A model whose queries attend to each other (inference/groups.py)
    attends over groups of `group` consecutive queries (None: all Q of a sample)."""
    model.gen_feat(inp)
    n = coord.shape[1]
    if couples_queries(model):
        group = group_rows(model, group) or n
        preds = [query_group(model, coord[:, i:i + group], cell[:, i:i + group], bsize) for i in range(0, n, group)]
    else:
        preds = [model.query_rgb(coord[:, i:i + bsize], cell[:, i:i + bsize]) for i in range(0, n, bsize)]
    return torch.cat(preds, dim=1)


def region_coord(out_hw: Sequence[int], top: int, left: int, height: int, width: int, device=None,
                 frame: Sequence[float] = (1.0, 1.0)) -> Tensor:
    """Pixel centres of rows top .. top+height-1 and columns left .. left+width-1 of the full (H, W)
    output grid: (height * width, 2), row-major, (row, col) — that block of make_coord((H, W)) bit
    for bit, without building the full grid. With a window frame (inference/window.py) the output
    covers only the top-left (fh, fw) fraction of [-1, 1]."""
    ranges = ((-1, -1 + 2 * frame[0]), (-1, -1 + 2 * frame[1]))
    return coord_block(out_hw, (top, left), (height, width), ranges, device=device)


def band_coord(out_hw: Sequence[int], r0: int, r1: int, device=None,
               frame: Sequence[float] = (1.0, 1.0)) -> Tensor:
    """Pixel centres of rows r0 .. r1-1 of the full (H, W) output grid: ((r1 - r0) * W, 2), the
    region_coord of whole rows, so a render in bands queries exactly the points of one in one shot."""
    return region_coord(out_hw, r0, 0, r1 - r0, out_hw[1], device=device, frame=frame)


def frame_cell(out_hw: Sequence[int], coord: Tensor, frame: Sequence[float] = (1.0, 1.0)) -> Tensor:
    """make_cell for an (H, W) output, scaled into a window frame: (2 / H * fh, 2 / W * fw)."""
    cell = make_cell(out_hw, coord)
    if tuple(frame) != (1.0, 1.0):
        cell *= cell.new_tensor(frame)
    return cell


def band_queries(out_hw: Sequence[int], r0: int, r1: int, device=None,
                 frame: Sequence[float] = (1.0, 1.0), cell_factor: float = 1.0) -> tuple[Tensor, Tensor]:
    """(coord, cell), each (1, (r1 - r0) * W, 2): band_coord and frame_cell of rows r0 .. r1-1, the
    cell times `cell_factor` (the cell clip, window.cell_clip)."""
    coord = band_coord(out_hw, r0, r1, device=device, frame=frame).unsqueeze(0)
    cell = frame_cell(out_hw, coord, frame)
    return coord, cell if cell_factor == 1 else cell * cell_factor


def band_spans(height: int, band_rows: int) -> list[tuple[int, int]]:
    """Rows [r0, r1) of each band covering 0 .. height-1."""
    return [(r0, min(r0 + band_rows, height)) for r0 in range(0, height, band_rows)]


def default_band_rows(out_hw: Sequence[int]) -> int:
    """Rows per band so that a band holds about BAND_PIXELS pixels (at least one row)."""
    return max(1, min(out_hw[0], BAND_PIXELS // out_hw[1]))


class _FixedFeat(nn.Module):
    """Stands in for an encoder and returns a precomputed latent grid."""

    def __init__(self, feat: Tensor, out_dim: int):
        super().__init__()
        self.feat, self.out_dim = feat, out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.feat


@contextlib.contextmanager
def fixed_feat(model: nn.Module, feat: Tensor) -> Iterator[None]:
    """Within the context, model.encoder returns `feat` whatever its input: model.gen_feat(inp)
    then prepares the queries of a latent grid computed elsewhere (in tiles, or by another graph)."""
    encoder = model.encoder
    model.encoder = _FixedFeat(feat, getattr(encoder, 'out_dim', feat.shape[1]))
    try:
        yield
    finally:
        model.encoder = encoder


@torch.no_grad()
def encode(model: nn.Module, inp: Tensor, tile: Optional[int] = None, precision: str = 'fp32',
           progress: bool = False) -> Tensor:
    """model.gen_feat(inp) for inp (1, 3, h, w) -> latent grid (1, C, h', w'). With `tile`, an
    input larger than tile x tile is encoded in overlapping tiles (utils.tiling), and the
    stitched grid is handed to gen_feat so that the model prepares its queries as usual."""
    with autocast(inp.device, precision):
        h, w = inp.shape[-2:]
        if tile is None or (h <= tile and w <= tile):
            return model.gen_feat(inp)
        n_tiles = -(-h // tile) * -(-w // tile)
        with tqdm(total=n_tiles, unit='tile', desc='encode', delay=1.0,
                  disable=not progress, leave=False) as bar:
            feat = encode_tiled(model.encoder, inp, tile, progress=bar.update)
        with fixed_feat(model, feat):
            return model.gen_feat(inp)


class Cancelled(Exception):
    """A render stopped between two chunks because its `cancelled` callback said so."""


@torch.no_grad()
def query_chunks(model: nn.Module, coord: Tensor, cell: Tensor, bsize: int, precision: str = 'fp32',
                 cancelled: Optional[Callable[[], bool]] = None) -> Tensor:
    """After `encode`: coord, cell (1, Q, 2) -> pred (Q, 3) float32 in the model's normalised output
    space, querying `bsize` points at a time. `cancelled`, if given, is asked before each chunk;
    when it returns True the render stops with Cancelled."""
    pred = torch.empty(coord.shape[1], 3, device=coord.device)  # (Q, 3)
    with autocast(coord.device, precision):
        for i in range(0, coord.shape[1], bsize):
            if cancelled is not None and cancelled():
                raise Cancelled()
            pred[i:i + bsize] = model.query_rgb(coord[:, i:i + bsize], cell[:, i:i + bsize])[0]
    return pred


@torch.no_grad()
def query_bands(model: nn.Module, out_hw: Sequence[int], bsize: int, band_rows: Optional[int] = None,
                precision: str = 'fp32', device=None, frame: Sequence[float] = (1.0, 1.0),
                cell_factor: float = 1.0) -> Iterator[tuple[int, int, Tensor]]:
    """After `encode`: yields (r0, r1, pred (r1 - r0, W, 3) float32) band by band, in the model's
    normalised output space, querying `bsize` pixels at a time with cell = (2 / H, 2 / W) (both
    scaled into a window frame, if given; the cell times `cell_factor`, the cell clip)."""
    h, w = out_hw
    band_rows = band_rows or default_band_rows(out_hw)
    for r0, r1 in band_spans(h, band_rows):
        coord, cell = band_queries(out_hw, r0, r1, device, frame, cell_factor)  # (1, Q, 2) each
        pred = query_chunks(model, coord, cell, bsize, precision)
        yield r0, r1, pred.view(r1 - r0, w, 3)


@torch.no_grad()
def attention_bands(model: nn.Module, out_hw: Sequence[int], grid_hw: Sequence[int], bsize: int,
                    rows: Optional[int], precision: str = 'fp32', device=None,
                    frame: Sequence[float] = (1.0, 1.0), cell_factor: float = 1.0) -> Iterator[tuple[int, int, Tensor]]:
    """query_bands for a model whose queries depend on each other (inference/groups.py): the
    (H', W') query grid `grid_hw` in `frame` (the padded grid under a window, else out_hw), in
    groups of `rows` rows (None: all), each group's chunks of whole rows (at least one, about
    `bsize` queries) sharing its attention context; a model that renders whole grids gets the
    whole grid in one call. Yields (r0, r1, pred (r1 - r0, W, 3)) for the top-left (H, W) =
    out_hw only. device None: the CPU, where band_queries puts the queries."""
    h, w = out_hw
    device = torch.device('cpu') if device is None else device
    rows = group_rows(model, rows) or grid_hw[0]
    step = grid_hw[0] if whole_grid(model) else max(1, bsize // grid_hw[1])
    for g0, g1 in band_spans(grid_hw[0], rows):
        if g0 >= h:
            break
        chunks = [(a, min(a + step, g1)) for a in range(g0, g1, step)]
        with autocast(device, precision):
            context = None if len(chunks) == 1 else model.query_context(
                lambda: (band_queries(grid_hw, a, b, device, frame, cell_factor) for a, b in chunks))
        for a, b in chunks:
            if a >= h:
                break
            with autocast(device, precision):
                coord, cell = band_queries(grid_hw, a, b, device, frame, cell_factor)
                pred = model.query_rgb(coord, cell) if context is None else model.query_rgb(coord, cell, context=context)
            yield a, min(b, h), pred[0].float().view(b - a, grid_hw[1], 3)[:min(b, h) - a, :w]


def output_bands(model: nn.Module, in_hw: Sequence[int], out_hw: Sequence[int], bsize: int, precision: str = 'fp32',
                 device=None, window: Optional[int] = None, attention_rows: Optional[int] = None,
                 band_rows: Optional[int] = None) -> Iterator[tuple[int, int, Tensor]]:
    """After `encode` of an (h, w) = in_hw input (mirror-padded to `window`, if any): the (H, W) =
    out_hw output as bands (r0, r1, pred (r1 - r0, W, 3)) in normalised units: query_bands, or
    attention_bands for a model whose queries depend on each other (inference/groups.py). The
    cell is clipped as the model declares (resolve_cell_scale_max: LMF's beyond x4)."""
    clip = cell_clip(out_hw[0] / in_hw[0], resolve_cell_scale_max(model))
    if couples_queries(model):
        grid_hw, grid_frame = padded_grid(out_hw, in_hw, window)
        return attention_bands(model, out_hw, grid_hw, bsize, attention_rows, precision, device, grid_frame, clip)
    return query_bands(model, out_hw, bsize, band_rows, precision, device=device,
                       frame=window_frame(in_hw, window)[1], cell_factor=clip)


@torch.no_grad()
def render(model: nn.Module, img: Tensor, out_hw: Sequence[int], norm: DataNorm, bsize: int = 30000,
           band_rows: Optional[int] = None, precision: str = 'fp32', progress: bool = False,
           tile: Optional[int] = None, out: Optional[np.ndarray] = None,
           window: Optional[int] = None, attention_rows: Optional[int] = None) -> np.ndarray:
    """img (1, 3, h, w) in [0, 1] -> the (H, W) = out_hw output as uint8 numpy (H, W, 3), written
    band by band into `out` (allocated if None). `norm` is the model's normalisation (its
    checkpoint's, DataNorm.from_checkpoint): the input is normalised and the predictions
    de-normalised with it. With `window`, the input is mirror-padded to the window as the LTE
    authors evaluate window encoders (inference/window.py). A model whose queries attend to each
    other is queried in groups of `attention_rows` output rows (None: the whole image), over the
    padded grid under a window (inference/groups.py). `progress` shows a tqdm bar (rows, with ETA)
    once a render takes over a second."""
    if img.dim() != 4 or img.shape[0] != 1:
        raise ValueError(f'render expects one image (1, 3, h, w), got {tuple(img.shape)}')
    check_bsize(bsize, 'render')
    h, w = out_hw
    if out is None:
        out = np.empty((h, w, 3), dtype=np.uint8)
    elif out.shape != (h, w, 3) or out.dtype != np.uint8:
        raise ValueError(f'out must be uint8 {(h, w, 3)}, got {out.dtype} {out.shape}')
    (pad_h, pad_w), _ = window_frame(img.shape[-2:], window)
    encode(model, mirror_pad(norm.inp(img), pad_h, pad_w), tile=tile, precision=precision, progress=progress)
    bands = output_bands(model, img.shape[-2:], out_hw, bsize, precision, img.device, window, attention_rows,
                         band_rows)
    bad = 0
    with tqdm(total=h, unit='row', desc='render', delay=1.0, disable=not progress, leave=False) as bar:
        for r0, r1, pred in bands:
            bad += count_non_finite(pred)
            out[r0:r1] = norm.pred_to_uint8(pred)
            bar.update(r1 - r0)
    if bad:
        raise non_finite_error(bad, h * w, precision, 'the image is not written')
    return out


def non_finite_error(bad: int, total: int, precision: str, consequence: str) -> UserError:
    """The one-line refusal of predictions of which `bad` of `total` pixels are NaN or inf."""
    return UserError(f'the model predicted NaN or inf for {bad:,} of {total:,} pixels (damaged weights, '
                     f'or an overflow at precision {precision}); {consequence}')


def count_non_finite(pred: Tensor) -> int:
    """Pixels of pred (..., 3) with any NaN or inf channel: they would become black or white."""
    return int((~torch.isfinite(pred)).any(-1).sum())
