"""Bicubic resizing of 8-bit images: PIL's (the default, what the paper's numbers use) and a
MATLAB-`imresize`-compatible one (what the EDSR benchmark pack's LR images were made with)."""
import math
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image
from torch import Tensor

from utils.errors import UserError

from .image_store import to_tensor, to_uint8

RESIZE_METHODS = ('pil', 'matlab')
PIL_BICUBIC = getattr(Image, 'Resampling', Image).BICUBIC  # Pillow < 9.1 has no Resampling


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (support [-2, 2])."""
    ax = np.abs(x)
    ax2, ax3 = ax ** 2, ax ** 3
    return ((1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2)))


def matlab_contributions(in_len: int, out_len: int, scale: float,
                         antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """What MATLAB's imresize takes along one axis: float64 weights (out_len, P) and 0-based
    input indices (out_len, P). Output pixel i (1-based) sits at input position
    u = i / scale + (1 - 1 / scale) / 2; when shrinking, the kernel is widened by 1 / scale;
    taps beyond the edges are mirrored (symmetric padding)."""
    if scale < 1 and antialias:
        def kernel(x): return scale * cubic(scale * x)
        width = 4.0 / scale
    else:
        kernel, width = cubic, 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)  # (out,)
    left = np.floor(u - width / 2)
    taps = left[:, None] + np.arange(math.ceil(width) + 2)[None, :]  # (out, P), 1-based
    weights = kernel(u[:, None] - taps)
    weights /= weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    indices = mirror[np.mod(taps - 1, 2 * in_len).astype(np.int64)]
    used = np.any(weights != 0, axis=0)  # MATLAB drops all-zero tap columns
    return weights[:, used], indices[:, used]


def resize_axis(x: np.ndarray, out_len: int, scale: float, axis: int) -> np.ndarray:
    """x float64 resized along `axis` to out_len, MATLAB-style. A gather and a weighted sum,
    not a matrix product: BLAS threads crawl on a busy machine and in loader workers."""
    weights, indices = matlab_contributions(x.shape[axis], out_len, scale)
    x = np.moveaxis(x, axis, 0)
    gathered = x[indices]  # (out, P, ...)
    out = (weights.reshape(*weights.shape, *([1] * (x.ndim - 1))) * gathered).sum(axis=1)  # (out, ...)
    return np.moveaxis(out, 0, axis)


def matlab_out_size(in_size: Sequence[int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ceil(in * scale) per axis (1e-9 guards floats
    like 60 * (1/3))."""
    return tuple(max(1, math.ceil(n * scale - 1e-9)) for n in in_size)


def imresize_matlab(img: np.ndarray, scale: Optional[float] = None,
                    size: Optional[Sequence[int]] = None) -> np.ndarray:
    """img (H, W[, C]) -> float64 (h, w[, C]) like MATLAB's imresize(img, scale, 'bicubic')
    before its rounding: by `scale` (output ceil(in * scale)) or to `size` (h, w) (then the
    scale per axis is out / in). Rows are resized first, as MATLAB does for equal scales."""
    x = np.asarray(img, dtype=np.float64)
    if (scale is None) == (size is None):
        raise ValueError('give exactly one of scale and size')
    if size is None:
        size = matlab_out_size(x.shape[:2], scale)
        scales = (scale, scale)
    else:
        scales = (size[0] / x.shape[0], size[1] / x.shape[1])
    x = resize_axis(x, size[0], scales[0], axis=0)  # (h, W[, C])
    return resize_axis(x, size[1], scales[1], axis=1)  # (h, w[, C])


def round_uint8(x: np.ndarray) -> np.ndarray:
    """float64 in 0..255 -> uint8 like MATLAB: clip, then round half away from zero."""
    return np.floor(np.clip(x, 0, 255) + 0.5).astype(np.uint8)


def imresize_matlab_uint8(img: np.ndarray, scale: Optional[float] = None,
                          size: Optional[Sequence[int]] = None) -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (h, w, C): MATLAB's imresize(img, scale, 'bicubic') on a uint8
    image, rounded as MATLAB rounds. This is how the EDSR benchmark pack's LR were made."""
    return round_uint8(imresize_matlab(img, scale=scale, size=size))


def resize_uint8(arr: np.ndarray, size: Sequence[int], method: str = 'pil') -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (h, w, 3), bicubic by `method` ('pil' or 'matlab')."""
    h, w = size
    if method == 'pil':
        return np.asarray(Image.fromarray(arr).resize((w, h), PIL_BICUBIC))
    if method == 'matlab':
        return imresize_matlab_uint8(arr, size=(h, w))
    raise UserError(f'unknown resize method {method!r}; expected one of {", ".join(RESIZE_METHODS)}')


def resize_fn(img: Tensor, size: Union[int, Sequence[int]], method: str = 'pil') -> Tensor:
    """img (3, H, W) float in [0, 1] -> (3, h, w) float in [0, 1] on img's device: the image
    rounded to 8 bits, resized bicubically ('pil': PIL's Image.resize(BICUBIC), with its
    antialiasing; 'matlab': MATLAB-compatible), and divided by 255. An int size is square."""
    h, w = (size, size) if isinstance(size, int) else size
    return to_tensor(resize_uint8(to_uint8(img), (h, w), method)).to(img.device)


def check_resize_method(method: str) -> str:
    """Refuse an unknown resize method by name; return it."""
    if method not in RESIZE_METHODS:
        raise UserError(f'unknown resize method {method!r}; expected one of {", ".join(RESIZE_METHODS)}')
    return method


# PIL's fixed-point resampling (libImaging/Resample.c): weights scaled by 2^22, two extra bits
# for sums that overshoot, 8 bits for the result.
PIL_PRECISION_BITS = 22


def pil_cubic(x: np.ndarray) -> np.ndarray:
    """PIL's bicubic filter (Keys, a = -0.5), its operations in its order, so the weights round to
    the same fixed-point values as PIL's."""
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def pil_bicubic_taps(in_len: int, out_len: int, start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's bicubic resize of an axis of in_len pixels to out_len, for output pixels start ..
    start+count-1: input indices (count, K) and fixed-point weights (count, K) int64 (0 past the
    taps a pixel uses). Output pixel i is centred at input position (i + 0.5) * in_len / out_len;
    when shrinking, the kernel widens by in_len / out_len; taps beyond the edges are dropped and
    the rest renormalised."""
    scale = in_len / out_len
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    k = int(math.ceil(support)) * 2 + 1
    centre = (np.arange(start, start + count) + 0.5) * scale  # (count,)
    first = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)
    last = np.minimum(np.trunc(centre + support + 0.5), in_len).astype(np.int64)
    taps = np.arange(k)[None, :]  # (1, K)
    weights = pil_cubic(((taps + first[:, None]) - centre[:, None] + 0.5) * (1.0 / filterscale))  # (count, K)
    weights = np.where(taps < (last - first)[:, None], weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    weights = np.divide(weights, total, out=weights, where=total != 0)
    fixed = weights * (1 << PIL_PRECISION_BITS)
    fixed = np.trunc(np.where(fixed < 0, fixed - 0.5, fixed + 0.5)).astype(np.int64)
    return np.minimum(first[:, None] + taps, in_len - 1), fixed


def _pil_pass(x: np.ndarray, index: np.ndarray, fixed: np.ndarray, axis: int) -> np.ndarray:
    """One fixed-point pass of PIL's resampling along `axis` of uint8 x, rounded and clipped to 8
    bits as PIL does between and after its passes."""
    x = np.moveaxis(x, axis, 0)
    acc = np.full((index.shape[0], *x.shape[1:]), 1 << (PIL_PRECISION_BITS - 1), dtype=np.int64)
    shape = (-1,) + (1,) * (x.ndim - 1)
    for t in range(index.shape[1]):  # tap by tap: memory stays one output, however wide the kernel
        acc += fixed[:, t].reshape(shape) * x[index[:, t]]
    out = np.clip(acc >> PIL_PRECISION_BITS, 0, 255).astype(np.uint8)
    return np.moveaxis(out, 0, axis)


def pil_bicubic_region(img: np.ndarray, out_hw: Sequence[int], top: int, left: int, height: int,
                       width: int) -> np.ndarray:
    """Rows top .. top+height-1 and columns left .. left+width-1 of PIL's bicubic resize of uint8
    img (H, W[, C]) to out_hw, computed for those pixels only, and the same whatever region asks:
    PIL's fixed-point weights and its two passes, each row resized first and rounded to 8 bits,
    then the columns. When enlarging this is Image.fromarray(img).resize(out_hw[::-1], BICUBIC)
    bit for bit; when shrinking, recent Pillow may run the columns first, which rounds elsewhere
    (a few levels, up to a dozen at sharp edges). PIL's own resize of a box cannot serve: it
    stores the box in float32 and picks the pass order by the box's size, so neighbouring regions
    would disagree by a level or two."""
    in_h, in_w = img.shape[:2]
    out_h, out_w = out_hw
    rows, row_w = pil_bicubic_taps(in_h, out_h, top, height)
    cols, col_w = pil_bicubic_taps(in_w, out_w, left, width)
    horizontal = (out_w, left, width) != (in_w, 0, in_w)  # PIL skips a pass that changes nothing
    vertical = (out_h, top, height) != (in_h, 0, in_h)
    r0, r1 = int(rows.min()), int(rows.max()) + 1  # the input rows the second pass reads
    x = img[r0:r1]
    if horizontal:
        x = _pil_pass(x, cols, col_w, axis=1)
    return _pil_pass(x, rows - r0, row_w, axis=0) if vertical else x
