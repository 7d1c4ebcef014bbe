"""The rendering options of the library (inference/upscale.py) and of the entry points built on it,
validated in one place with utils.config.Checker: the library refuses what its command lines
refuse, in one line naming the option (`Upscaler: bsize: expected an integer >= 1, got 0`).

Numbers may be Python or numpy scalars; booleans, strings and tensors are refused."""
import os
from typing import Any, Optional, Sequence

import torch.nn as nn

from utils.config import Checker
from utils.errors import UserError

from .tiling import receptive_radius

MAX_BSIZE = 1 << 24  # queries per decoder call: 16M x 256 floats of activations is already 16 GB
# A side no image this project renders exceeds (outputs over 500 megapixels need --force).
MAX_SIDE = 2 ** 31 - 1


def check_scale(scale: Any, where: str = 'upscale') -> tuple[float, float]:
    """S or (SY, SX): positive finite numbers -> (SY, SX)."""
    c = Checker(where)
    if isinstance(scale, (list, tuple)):
        if len(scale) != 2:
            c.fail('scale', f'expected a number or two (SY, SX), got {len(scale)} values')
        return c.number(scale[0], 'scale[0]', positive=True), c.number(scale[1], 'scale[1]', positive=True)
    s = c.number(scale, 'scale', positive=True)
    return s, s


def check_resolution(resolution: Any, where: str = 'upscale') -> tuple[int, int]:
    """(H, W): two integers from 1 to MAX_SIDE."""
    c = Checker(where)
    if not isinstance(resolution, (list, tuple)) or len(resolution) != 2:
        c.fail('resolution', f'expected (H, W), two integers, got {c.got(resolution)}')
    return tuple(c.integer(v, f'resolution[{i}]', 1, MAX_SIDE) for i, v in enumerate(resolution))


def output_size(in_hw: Sequence[int], scale: Any = None, resolution: Any = None,
                where: str = 'upscale') -> tuple[int, int]:
    """(H, W) of the output: `resolution` (H, W), or in_hw times `scale` (S or (SY, SX)) rounded
    half up, at least 1 pixel. Sizes no format can hold are refused later (check_output_size)."""
    if (scale is None) == (resolution is None):
        raise UserError('give exactly one of scale and resolution')
    if resolution is not None:
        return check_resolution(resolution, where)
    sy, sx = check_scale(scale, where)
    # Capped so that an absurd scale (1e300) gives a size the size checks refuse, not an overflow.
    return tuple(max(1, int(min(n * s, 2.0 ** 62) + 0.5)) for n, s in zip(in_hw, (sy, sx)))


def min_tile(model: nn.Module) -> Optional[int]:
    """The smallest tile worth encoding with: the encoder's receptive field (2R + 1 pixels), below
    which every tile recomputes more context than it keeps. None when the encoder cannot be tiled."""
    try:
        return 2 * receptive_radius(model.encoder) + 1
    except (ValueError, AttributeError):
        return None


def check_tile(tile: Any, model: nn.Module, where: str = 'Upscaler') -> Optional[int]:
    """None or 0 (never tile), or an integer of at least min_tile(model) pixels."""
    if tile is None:
        return None
    c = Checker(where)
    c.integer(tile, 'tile', minimum=0)
    if tile == 0:
        return None
    least = min_tile(model)
    if least is not None and tile < least:
        c.fail('tile', f'expected 0 (never tile) or at least {least} pixels (the encoder\'s receptive field: '
                       f'smaller tiles recompute more than they keep), got {tile}')
    return int(tile)


def check_path(path: Any, key: str, where: str) -> str:
    """A file path: a str or os.PathLike (pathlib.Path); returned as given."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        Checker(where).fail(key, f'expected a file path (str or pathlib.Path), got {path!r} ({type(path).__name__})')
    return path


def check_bsize(bsize: Any, where: str = 'Upscaler', key: str = 'bsize') -> int:
    """Queries per decoder call: an integer from 1 to MAX_BSIZE."""
    return Checker(where).integer(bsize, key, 1, MAX_BSIZE)
