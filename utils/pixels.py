"""Pixel values of every depth and type to 8 bits: the rules of the one reader (utils/images.py,
which documents them per image mode) and of the library's in-memory arrays.

- 8 bits (uint8; PIL 'L', 'RGB', 'P', 'CMYK', ...): as they are. 1 bit ('1', bool): 0 or 255.
- 16 bits per channel (uint16; PIL 'I;16*', and 16-bit RGB, RGBA and grey+alpha files, whose
  low bytes PIL's decoding drops and which are decoded again here to keep them): value / 257,
  rounded half to even.
- 32-bit integers (PIL 'I', e.g. int32 TIFFs): by range. Values 0..255 are 8-bit values,
  0..65535 (with one above 255) 16-bit values (/ 257); negative values or values above 65535 are
  refused (no range to read them in).
- 32-bit floats (PIL 'F', e.g. float TIFFs): by range. Values 0..1 are [0, 1] (x 255), 0..255
  (with one above 1) 8-bit values; negative, larger, NaN or inf values are refused.
- In-memory arrays (the library, inference/upscale.py): uint8, bool, uint16 as above; float
  arrays (any float type) must be finite and within [0, 1] (x 255, rounded), as documented; other
  types and values are refused.
Every refusal is a UserError naming `what`.
"""
import sys
from typing import Callable, Optional

import numpy as np
from PIL import Image

from .errors import UserError

# PIL's raw modes of 16-bit-per-channel colour data (its decoder keeps only the high bytes), and
# the raw mode that yields the low bytes instead: the other byte order, or, for grey + alpha, the
# four bytes as they are (L hi, L lo, A hi, A lo in R, G, B, A).
_NATIVE = 'L' if sys.byteorder == 'little' else 'B'
_LOW_BYTES = {f'{m};16{o}': f'{m};16{"B" if (o if o != "N" else _NATIVE) == "L" else "L"}'
              for m in ('RGB', 'RGBA') for o in 'BLN'}
_LOW_BYTES['LA;16B'] = 'RGBA'


def round_to_uint8(a: np.ndarray) -> np.ndarray:
    """Values already on the 0..255 scale -> uint8, rounded half to even."""
    return np.round(a).astype(np.uint8)


def from_16bit(a: np.ndarray) -> np.ndarray:
    """16-bit values (0..65535) -> uint8: value / 257, rounded."""
    return round_to_uint8(a.astype(np.float64) / 257)


def by_range(a: np.ndarray, mode: str, what: str) -> np.ndarray:
    """A PIL 'I' (32-bit integer) or 'F' (float) channel -> uint8 by the range of its values (see
    the module doc); a UserError when no range fits."""
    if a.size == 0:
        return a.astype(np.uint8)
    if mode == 'F' and not np.isfinite(a).all():
        raise UserError(f'{what}: a float image holding NaN or inf values')
    lo, hi = float(a.min()), float(a.max())
    if lo < 0:
        raise UserError(f'{what}: a {"float" if mode == "F" else "32-bit"} image with negative values '
                        f'({lo:g}); expected 0..1 or 0..255' + ('' if mode == 'F' else ' or 0..65535'))
    if mode == 'F':
        if hi <= 1:
            return round_to_uint8(a.astype(np.float64) * 255)
        if hi <= 255:
            return round_to_uint8(a)
        raise UserError(f'{what}: a float image with values up to {hi:g}; expected 0..1 or 0..255')
    if hi <= 255:
        return a.astype(np.uint8)
    if hi <= 65535:
        return from_16bit(a)
    raise UserError(f'{what}: a 32-bit image with values up to {hi:g}, beyond 16 bits; expected 0..255 or 0..65535')


def array_to_uint8(a: np.ndarray, what: str) -> np.ndarray:
    """An in-memory image array (the library's input) -> uint8 of the same shape (module doc)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return from_16bit(a)
    if np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise UserError(f'{what}: holds NaN or inf values; expected floats in [0, 1]')
        lo, hi = float(a.min()), float(a.max())
        if lo < 0 or hi > 1:
            raise UserError(f'{what}: float values from {lo:g} to {hi:g}, outside [0, 1]; divide 0..255 '
                            'values by 255 (or pass uint8)')
        return round_to_uint8(a * 255)
    raise UserError(f'{what}: unsupported pixel type {a.dtype}; expected uint8, uint16, bool or float in [0, 1]')


# EXIF orientation (tag 0x0112) -> the transposition that displays the image upright.
ORIENTATION = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def deep_to_image(channels: np.ndarray, orientation: Optional[int] = None) -> Image.Image:
    """uint16 channels (H, W, 2, 3 or 4: grey + alpha, RGB, RGBA) -> an 8-bit PIL image (LA, RGB or
    RGBA) by the 16-bit rule, turned upright by its EXIF `orientation`."""
    mode = {2: 'LA', 3: 'RGB', 4: 'RGBA'}[channels.shape[-1]]
    img = Image.fromarray(from_16bit(channels), mode)
    return img.transpose(ORIENTATION[orientation]) if orientation in ORIENTATION else img


def sixteen_bit_channels(img: Image.Image, reopen: Callable[[], Image.Image]) -> Optional[np.ndarray]:
    """For an opened, not yet loaded image whose data is 16 bits per colour channel (RGB, RGBA,
    grey + alpha), the full uint16 channels (H, W, C): PIL decodes only the high bytes, so the file
    is decoded a second time (`reopen()`, an unloaded copy) with the low bytes' raw mode. None for
    every other image. Loads `img`."""
    rawmodes = [t.args if isinstance(t.args, str) else (t.args[0] if t.args else None) for t in img.tile]
    if not rawmodes or any(r not in _LOW_BYTES for r in rawmodes):
        return None
    img.load()
    high = np.asarray(img).astype(np.uint16)
    with reopen() as low_img:
        low_img.tile = [t._replace(args=_LOW_BYTES[r] if isinstance(t.args, str) else (_LOW_BYTES[r], *t.args[1:]))
                        for t, r in zip(low_img.tile, rawmodes)]
        low_img.load()
        low = np.asarray(low_img).astype(np.uint16)
    if rawmodes[0] == 'LA;16B':  # high: (L, L, L, A) high bytes; low: the raw bytes
        return np.stack([low[..., 0] << 8 | low[..., 1], low[..., 2] << 8 | low[..., 3]], axis=-1)
    return high << 8 | low
