"""Window-padded evaluation and rendering (docs/design.md §5), as the LTE authors evaluate SwinIR:
the input is extended by mirroring at the bottom and right to a multiple of the encoder's window,
the model renders over the padded extent, and the result is cropped to the requested size.

Padding moves the meaning of [-1, 1]: it spans the padded input. A query for output pixel i of an
H-row image of an h-row input therefore lies at -1 + (2i + 1) / H * h / (h + pad) in the padded
frame, and its cell shrinks by the same factor `h / (h + pad)` (the frame). For an integer scale
s = H / h these are exactly the centres -1 + (2i + 1) / (s (h + pad)) and the cell 2 / (s (h + pad))
of the authors' padded grid, cropped to its top-left H x W; for other scales the same formula
still puts every query on the point of the unpadded image it stands for.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from utils.errors import UserError


def model_window(model: nn.Module) -> Optional[int]:
    """The window size of the model's encoder (SwinIR's `window_size`), or None for encoders that
    work on any size."""
    size = getattr(getattr(model, 'encoder', None), 'window_size', None)
    return int(size) if size else None


# The largest window --window takes (SwinIR's is 8): padding adds up to a window to each side.
MAX_WINDOW = 256


def resolve_window(option, model: Optional[nn.Module]) -> Optional[int]:
    """--window (or the library's `window`): 'auto' (the model's encoder's window, if any), '0',
    'off', 'none', 0 or None (never), or a size from 1 to MAX_WINDOW, which only a model whose
    encoder has an attention window takes (with `model` None, only the value is checked)."""
    if option is None:
        return None
    text = str(option).strip().lower()
    if text == 'auto':
        return model_window(model) if model is not None else None
    if text in ('0', 'off', 'none'):
        return None
    try:
        size = int(text) if not isinstance(option, bool) else 0
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_WINDOW:
        raise UserError(f"--window expects 'auto', 'off' or a window size in pixels (an integer from 1 to "
                        f'{MAX_WINDOW}), got {option!r}')
    if model is not None and model_window(model) is None:
        raise UserError(f'--window {size}: the model\'s encoder has no attention window, so padding its input '
                        "changes nothing but its cost; use --window auto or off (SwinIR encoders have one)")
    return size


def window_pad(n: int, window: int) -> int:
    """Rows (or columns) the authors' rule adds to n: up to the next multiple of the window, a
    whole window more when n is already one: (n // window + 1) * window - n, in 1 .. window."""
    return (n // window + 1) * window - n


def mirror_pad(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """x (B, C, h, w) -> (B, C, h + pad_h, w + pad_w), extended at the bottom and right by its
    mirror image (the image, then it flipped, then the image again, ... for pads beyond h)."""
    for dim, pad in ((-2, pad_h), (-1, pad_w)):
        if pad == 0:
            continue
        n = x.shape[dim]
        copies = [x, x.flip(dim)] * (-(-(n + pad) // (2 * n)))  # enough mirrored copies
        x = torch.cat(copies, dim=dim).narrow(dim, 0, n + pad)
    return x


def window_frame(in_hw: Sequence[int], window: Optional[int]) -> tuple[tuple[int, int], tuple[float, float]]:
    """((pad_h, pad_w), (h / (h + pad_h), w / (w + pad_w))) for an input of in_hw, or no padding
    and the identity frame without a window."""
    if not window:
        return (0, 0), (1.0, 1.0)
    pads = tuple(window_pad(n, window) for n in in_hw)
    return pads, tuple(n / (n + p) for n, p in zip(in_hw, pads))


def padded_grid(out_hw: Sequence[int], in_hw: Sequence[int],
                window: Optional[int]) -> tuple[tuple[int, int], tuple[float, float]]:
    """The output grid over the whole padded input, of which the (H, W) output is the top-left
    part, and its frame: for an integer scale s = H / h, (s (h + pad), s (w + pad)) in frame 1,
    the authors' padded grid itself; otherwise as many rows and columns of the output's spacing
    as fit in [-1, 1], floor(H (h + pad) / h), in the frame that spacing gives. Models whose
    queries attend to each other are queried over it (inference/groups.py). Without a window:
    (out_hw, (1, 1))."""
    if not window:
        return (int(out_hw[0]), int(out_hw[1])), (1.0, 1.0)
    grid, frame = [], []
    for out, n in zip(out_hw, in_hw):
        padded = n + window_pad(n, window)
        g = out * padded // n
        grid.append(g)
        frame.append(1.0 if g * n == out * padded else g * n / (out * padded))
    return (grid[0], grid[1]), (frame[0], frame[1])


def cell_clip(scale: float, scale_max: Optional[float]) -> float:
    """LTE's evaluation option for scales beyond training: the cell is multiplied by
    max(scale / scale_max, 1), so queries beyond scale_max see the cell of scale_max. 1 without it."""
    return 1.0 if scale_max is None else max(scale / scale_max, 1.0)
