"""Regions of an upscaled image: the output pixels of rows [top, top + height) and columns [left,
left + width) of an input upscaled by S, rendered without the rest of the output (docs/design.md §10).

The output grid at scale S is demo.py's (`output_size`: round(h * S) x round(w * S)). A region's
queries are that block of the grid's pixel centres with the full grid's cell (render.region_coord),
so a region equals the same crop of the full render up to the float rounding of its coordinates
(at most one level of 8 bits). The latent grid is encoded once per image and model, as demo.py
encodes it (tiles for large inputs, mirror padding for window encoders), and kept: a region after
that costs only its own queries. Bicubic regions are PIL's bicubic resize computed for the region's
pixels only: from x1 up, equal to the crop of PIL's full resize bit for bit."""
import math
import numbers
import threading
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from datasets.resize import pil_bicubic_region
from utils.errors import UserError
from utils.images import LoadedImage, compose
from utils.precision import check_precision

from .groups import attends, whole_grid
from .render import (count_non_finite, encode, frame_cell, non_finite_error, query_chunks, region_coord,
                     resolve_cell_scale_max)
from .upscale import Upscaler, output_size
from .window import cell_clip, mirror_pad, window_frame

# Output sides beyond this are refused: float32 coordinates then still resolve a pixel to 1/16 of
# itself (the spacing 2 / 2^20 is 16 float32 steps at 1).
MAX_SIDE = 1 << 20
# Pixels one region may hold (1024 x 1024): about 6 s of EDSR-baseline-LIIF on two CPU cores.
MAX_REGION_PIXELS = 1 << 20


@dataclass(frozen=True)
class Region:
    """Rows [top, top + height) and columns [left, left + width) of an output grid."""
    top: int
    left: int
    height: int
    width: int

    def describe(self) -> str:
        """E.g. 'rows 0..9, columns 20..29 (10x10)'."""
        return (f'rows {self.top}..{self.top + self.height - 1}, columns {self.left}..'
                f'{self.left + self.width - 1} ({self.height}x{self.width})')


def region_output_size(in_hw: Sequence[int], scale: float) -> tuple[int, int]:
    """(H, W) of the output grid of an in_hw input at `scale` (demo.py's --scale S); a UserError for
    a scale that is not a positive finite number or gives a side over MAX_SIDE."""
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or not math.isfinite(scale) or scale <= 0:
        raise UserError(f'scale must be a positive finite number, got {scale!r}')
    out_hw = output_size(in_hw, float(scale))
    if max(out_hw) > MAX_SIDE:
        raise UserError(f'scale {scale:g} gives a {out_hw[0]}x{out_hw[1]} output; at most {MAX_SIDE:,} '
                        'pixels a side')
    return out_hw


def check_region(region: Region, out_hw: Sequence[int], max_pixels: int = MAX_REGION_PIXELS) -> Region:
    """`region` if it lies inside the out_hw grid and holds at most max_pixels pixels, else a
    UserError saying which."""
    values = (region.top, region.left, region.height, region.width)
    if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values):
        raise UserError(f'region bounds must be integers, got {values}')
    if region.height < 1 or region.width < 1:
        raise UserError(f'region size must be at least 1x1, got {region.height}x{region.width}')
    h, w = out_hw
    if region.top < 0 or region.left < 0 or region.top + region.height > h or region.left + region.width > w:
        raise UserError(f'region {region.describe()} is outside the {h}x{w} output')
    if region.height * region.width > max_pixels:
        raise UserError(f'region {region.height}x{region.width} holds {region.height * region.width:,} pixels, '
                        f'over the budget of {max_pixels:,} per request; ask for smaller tiles')
    return region


def bicubic_region(pixels: np.ndarray, out_hw: Sequence[int], region: Region) -> np.ndarray:
    """uint8 (h, w) or (h, w, 3) -> the region of its PIL bicubic resize to out_hw, same layout,
    computed for the region's pixels only (datasets.resize.pil_bicubic_region)."""
    return pil_bicubic_region(pixels, out_hw, region.top, region.left, region.height, region.width)


def coupled_queries(model: torch.nn.Module) -> Optional[str]:
    """Why a region of this model cannot equal the crop of its full render, or None when its
    queries are independent (LIIF, Meta-SR, A-LIIF, LTE): a model that renders the whole output grid
    in one call (attribute `whole_grid_queries`: LMF with CMSR) or couples the queries of a call
    (method `query_context`: the Galerkin attention of SRNO and HIIF)."""
    if whole_grid(model):
        return 'renders the whole output grid in one call (CMSR)'
    if attends(model):
        return 'couples the queries of a call (attention over the queried pixels)'
    return None


class BicubicRegions:
    """Regions of an image's bicubic upscaling (PIL's, as test.py's bicubic baseline)."""

    name = 'bicubic'

    def __init__(self, image: LoadedImage):
        self.image = image
        self.in_hw = image.rgb.shape[:2]

    def render(self, scale: float, region: Region, precision: str = 'fp32',
               cancelled: Optional[Callable[[], bool]] = None, max_pixels: int = MAX_REGION_PIXELS) -> Image.Image:
        """The region of the image upscaled by `scale` -> PIL image (L, LA, RGB or RGBA, as the
        input). `precision` is checked and otherwise ignored; the resize is in 8 bits."""
        check_precision(precision, torch.device('cpu'))
        out_hw = region_output_size(self.in_hw, scale)
        check_region(region, out_hw, max_pixels)
        alpha = self.image.alpha
        return compose(bicubic_region(self.image.rgb, out_hw, region),
                       None if alpha is None else bicubic_region(alpha, out_hw, region), self.image.gray)


class ModelRegions:
    """Regions of an image rendered by one model (an Upscaler): the latent grid is encoded once, on
    the first region or `encode()`, in fp32, and kept; each region queries only its own pixels, at
    the precision it asks for. Thread-safe: regions of one model are rendered one at a time, since
    the model keeps the latent grid (and its decoder's cached projection of it) as its state."""

    def __init__(self, upscaler: Upscaler, image: LoadedImage, name: str = 'model'):
        self.upscaler, self.image, self.name = upscaler, image, name
        self.check_independent()
        self.in_hw = image.rgb.shape[:2]
        self.pads, self.frame = window_frame(self.in_hw, upscaler.window_size())
        self._lock = threading.Lock()
        self._feat = None  # what encode() left on the model; another encode of it replaces it

    def check_independent(self) -> None:
        """A UserError when the model's regions could not equal its full render (coupled_queries)."""
        reason = coupled_queries(self.upscaler.model)
        if reason:
            raise UserError(f'{self.name}: this model {reason}, so a region of it would not equal its full '
                            'render; the viewer shows models whose queries are independent (render it with demo.py)')

    def encode(self) -> None:
        """Encode the image (once; again only if the model was used for another image since)."""
        with self._lock:
            self._encode()

    def _encode(self) -> None:
        model = self.upscaler.model
        if self._feat is not None and getattr(model, 'feat', None) is self._feat:
            return
        x = self.upscaler.norm.inp(self.upscaler.input_tensor(self.image))  # (1, 3, h, w)
        self._feat = encode(model, mirror_pad(x, *self.pads), tile=self.upscaler.tile_for(self.in_hw))

    def render(self, scale: float, region: Region, precision: str = 'fp32',
               cancelled: Optional[Callable[[], bool]] = None, max_pixels: int = MAX_REGION_PIXELS) -> Image.Image:
        """The region of the image upscaled by `scale` -> PIL image (L, LA, RGB or RGBA, as the
        input), the decoder run at `precision` (fp32 or bf16; fp16 on CUDA). `cancelled` is asked
        between chunks of queries (render.Cancelled when it says True). A region in which the
        model predicts NaN or inf is a UserError, as a full render is."""
        up = self.upscaler
        check_precision(precision, up.device)
        self.check_independent()
        out_hw = region_output_size(self.in_hw, scale)
        check_region(region, out_hw, max_pixels)
        # The cell clip a model may declare (LMF: the cell of x4 beyond it), as render applies it.
        clip = cell_clip(out_hw[0] / self.in_hw[0], resolve_cell_scale_max(up.model))
        with self._lock:
            self._encode()
            coord = region_coord(out_hw, region.top, region.left, region.height, region.width,
                                 device=up.device, frame=self.frame).unsqueeze(0)  # (1, Q, 2)
            cell = frame_cell(out_hw, coord, self.frame) * clip
            pred = query_chunks(up.model, coord, cell, up.bsize, precision, cancelled)
        bad = count_non_finite(pred)
        if bad:
            raise non_finite_error(bad, region.height * region.width, precision, 'the region is not rendered')
        rgb = up.norm.pred_to_uint8(pred.view(region.height, region.width, 3))
        alpha = self.image.alpha
        return compose(rgb, None if alpha is None else bicubic_region(alpha, out_hw, region), self.image.gray)
