"""Reading and writing images of every common mode; every failure is a UserError.

Reading (demo.py, and the datasets behind training and test.py, through the same function): the
header is checked first (a size budget, PIL's decompression-bomb limit), then EXIF orientation is
applied, then the image is split into 8-bit RGB (what the model sees) and an optional 8-bit
alpha. Grayscale ('1', 'L', 'LA', 16/32-bit 'I', float 'F') is repeated to three channels and
remembered, so the result is saved as grayscale again. Palette images become RGB, or RGBA when
they carry transparency. Outputs are always 8 bits per channel. One rule per mode (utils/pixels.py):

| mode | read as |
|---|---|
| '1' | 0 or 255 |
| 'L', 'P', 'RGB', 'RGBA', 'CMYK', 'YCbCr', ... (8 bits) | the values (PIL's conversion to RGB) |
| 16 bits per channel: 'I;16*' grey, 16-bit RGB, RGBA, grey + alpha (PNG, TIFF) | value / 257, rounded (all 16 bits read) |
| 'I' (32-bit integers) | by range: 0..255 as 8-bit values, 0..65535 / 257; otherwise refused |
| 'F' (32-bit floats) | by range: 0..1 x 255, 0..255 as 8-bit values; negative, larger or NaN refused |

Writing: the format comes from the file extension. A format that cannot hold the image's mode
(JPEG and alpha, say) gets the nearest mode it can hold — alpha dropped — with a note. The file
is written to a temporary name in the same folder and renamed over the target, so a failure
never leaves a half-written file at the output path.
"""
import functools
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import UserError
from .files import atomic_write
from .pixels import by_range, deep_to_image, from_16bit, sixteen_bit_channels
from .png_chunks import metadata_after_pixels

# Files the datasets and demo.py treat as images (by extension).
IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')


def is_image_name(name: str) -> bool:
    """Whether a folder's datasets and demo.py take the file `name` as an image: an image
    extension, and not hidden (`.DS_Store`, macOS's `._photo.png` resource forks)."""
    return not name.startswith('.') and name.lower().endswith(IMAGE_EXTENSIONS)
_GRAY_MODES = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')
_ALPHA_MODES = ('RGBA', 'RGBa', 'LA', 'La', 'PA')
# Modes to try, in order, when a format cannot store the image's own mode.
_FALLBACKS = {'RGBA': ('RGBA', 'RGB'), 'LA': ('LA', 'RGBA', 'L', 'RGB'), 'L': ('L', 'RGB'),
              'RGB': ('RGB',)}


@dataclass
class LoadedImage:
    """rgb (H, W, 3) uint8; alpha (H, W) uint8 or None; gray: save the result as grayscale."""
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    gray: bool
    source_mode: str

    @property
    def mode(self) -> str:
        """The mode the result is saved in: L, LA, RGB or RGBA."""
        return ('L' if self.gray else 'RGB') + ('A' if self.alpha is not None else '')


class EmptyImage(UserError):
    """An image of zero width or height."""


def _to_uint8(img: Image.Image, what: str) -> np.ndarray:
    """A single-channel image of any depth -> (H, W) uint8 by the rule of its mode (module doc)."""
    if img.mode in ('1', 'L'):
        return np.asarray(img.convert('L'))
    if img.mode in ('I', 'F'):
        return by_range(np.asarray(img), img.mode, what)
    return from_16bit(np.asarray(img))  # 'I;16', 'I;16L', 'I;16B', 'I;16N'


def split_channels(img: Image.Image, what: str = 'the image') -> LoadedImage:
    """A PIL image (already EXIF-transposed) -> LoadedImage by the rules of the module doc. Raises
    UserError when it is empty or its values fit no rule (naming `what`)."""
    w, h = img.size
    if w == 0 or h == 0:
        raise EmptyImage(f'the image is empty ({w}x{h} pixels)')
    mode = img.mode
    if mode == 'P':
        img = img.convert('RGBA' if 'transparency' in img.info else 'RGB')
    elif mode in ('RGBa', 'PA'):
        img = img.convert('RGBA')
    elif mode == 'La':
        img = img.convert('LA')
    alpha = None
    if img.mode in _ALPHA_MODES:
        alpha = np.asarray(img.getchannel('A'))
        img = img.convert('L' if img.mode == 'LA' else 'RGB')
    if img.mode in _GRAY_MODES:
        gray = _to_uint8(img, what)
        return LoadedImage(np.repeat(gray[:, :, None], 3, axis=2), alpha, True, mode)
    return LoadedImage(np.array(img if img.mode == 'RGB' else img.convert('RGB')), alpha, False, mode)


def _header_exif(img: Image.Image) -> Image.Exif:
    """The EXIF of an opened image without decoding its pixels. PIL's PNG getexif() decodes the
    whole image to reach chunks that may follow the pixels; the chunk headers say whether any does
    (utils/png_chunks.py), and only then is it called. A PNG cut short is an OSError."""
    if img.format == 'PNG' and 'exif' not in img.info and img.tile:
        if not metadata_after_pixels(img.fp, img.tile[0][2]):  # tile: (codec, box, offset, mode)
            return Image.Image.getexif(img)  # EXIF and XMP of the chunks already parsed
    return img.getexif()


def image_size(path, what: str = 'image') -> tuple[int, int]:
    """(H, W) of an image file as read_image returns it (EXIF orientation applied), from its header
    alone (a PNG's chunk headers too: one cut short is found here); a UserError naming the file
    when it cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with Image.open(path) as img:
                w, h = img.size
                orientation = _header_exif(img).get(0x0112)
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError) as e:
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f'cannot read {what} {path} ({msg})') from None
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def read_image(path, allow_huge: bool = False, max_megapixels: Optional[float] = None,
               what: str = 'input', hint: str = '') -> LoadedImage:
    """Open, decode and split an image file (see LoadedImage): the one reader of demo.py, test.py
    and the datasets. Missing, unreadable, corrupt and empty files are UserErrors naming the file
    (`what` says what it is); so are images over `max_megapixels`, refused from the header before
    anything is decoded, and files past PIL's decompression-bomb limit unless allow_huge. `hint`
    ends those two messages (how to override them)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f'{what} not found: {path}')
    if not path.is_file():
        raise UserError(f'{what} is not a file: {path}')
    limit = Image.MAX_IMAGE_PIXELS
    try:
        if allow_huge:
            Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter('error', Image.DecompressionBombWarning)
            # A damaged EXIF block is read as far as it goes (no orientation): PIL's warning about
            # it would be a second, unasked-for line on stderr.
            warnings.filterwarnings('ignore', category=UserWarning, module=r'PIL\.')
            with Image.open(path) as img:  # lazy: only the header is read so far
                w, h = img.size
                if max_megapixels is not None and w * h > max_megapixels * 1e6:
                    raise UserError(f'{what} {path} is {w}x{h} pixels ({w * h / 1e6:,.1f} megapixels), '
                                    f'over the {max_megapixels:g}-megapixel budget{hint}')
                deep = sixteen_bit_channels(img, lambda: Image.open(path))
                if deep is not None:
                    return split_channels(deep_to_image(deep, img.getexif().get(0x0112)), f'{what} {path}')
                img.load()
                img = ImageOps.exif_transpose(img)
                return split_channels(img, f'{what} {path}')
    except UnidentifiedImageError:
        raise UserError(f'cannot read {what} {path}: not an image PIL can read (or an empty/corrupt '
                        'one)') from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f'cannot read {what} {path}: too many pixels for a safe decode (PIL limit '
                        f'{limit / 1e6:.0f} megapixels){hint}') from None
    except EmptyImage as e:
        raise UserError(f'cannot read {what} {path}: {e}') from None
    except (OSError, ValueError, SyntaxError) as e:
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f'cannot read {what} {path}: cannot decode the image ({msg})') from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_rgb(path) -> np.ndarray:
    """The datasets' reader: read_image's RGB pixels (alpha dropped), uint8 (H, W, 3)."""
    return read_image(path, what='image').rgb


def upscale_alpha(alpha: np.ndarray, out_hw) -> np.ndarray:
    """alpha (h, w) uint8 -> (H, W) uint8 resized with PIL's bicubic filter."""
    return np.asarray(Image.fromarray(alpha, 'L').resize((out_hw[1], out_hw[0]), Image.BICUBIC))


def output_format(path) -> str:
    """The PIL format name that the extension of `path` asks for; UserError if none can write."""
    ext = Path(path).suffix.lower()
    fmt = Image.registered_extensions().get(ext)
    if not ext or fmt is None or fmt not in Image.SAVE:
        what = f'unknown image extension {ext!r}' if ext else 'no file extension'
        raise UserError(f'output {path}: {what}; use .png, .jpg, .webp, .tif, .bmp or another '
                        'format PIL writes')
    return fmt


# The largest side a format stores (PIL fails only after the render, or for ICO silently downscales).
FORMAT_MAX_SIDE = {'JPEG': 65535, 'WEBP': 16383, 'GIF': 65535, 'ICO': 256, 'PNG': 2 ** 31 - 1}
MAX_SIDE = 2 ** 31 - 1  # any format: PIL's and the codecs' coordinates are 32-bit


def physical_memory() -> Optional[int]:
    """Bytes of RAM in this machine, or None where the platform does not say."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError):
        return None


def check_output_size(out_hw, fmt: Optional[str], max_megapixels: float, force: bool) -> None:
    """Before rendering: UserError for an output size `fmt` cannot store or this machine cannot
    hold (even with force), or over `max_megapixels` without force."""
    h, w = out_hw
    limit = FORMAT_MAX_SIDE.get(fmt, MAX_SIDE)
    if max(h, w) > limit:
        raise UserError(f'output {h:,}x{w:,} (HxW): {fmt or "an image"} stores at most {limit:,} pixels per '
                        'side; choose a smaller size' + (' or another format' if fmt else ''))
    megapixels = h * w / 1e6
    if megapixels > max_megapixels and not force:
        raise UserError(f'output {h}x{w} (HxW) is {megapixels:,.0f} megapixels, over the '
                        f'{max_megapixels:g}-megapixel limit; pass --force (force=True) to render it')
    memory = physical_memory()
    if memory is not None and h * w * 3 > memory:
        raise UserError(f'output {h:,}x{w:,} (HxW) needs {h * w * 3 / 1e9:,.1f} GB for its 8-bit pixels '
                        f'alone, more than the {memory / 1e9:,.1f} GB of memory of this machine')


# PNM extensions name what a file holds; PIL writes P6 (colour) or P5 (grey) by mode, whatever it says.
_PNM_MODES = {'.pbm': (), '.pgm': ('L',), '.ppm': ('RGB',)}
_GREY = ('1', 'L', 'LA', 'La', 'I', 'I;16', 'I;16L', 'I;16B', 'I;16N', 'F')


@functools.lru_cache(maxsize=None)
def _probe(fmt: str, mode: str) -> Optional[str]:
    """Save a small image of `mode` (3x2, varied pixels) as `fmt` and read it back: None when the
    file holds it (its size, its colour, its alpha; values may be lossy), 'mode' when this mode
    cannot be saved or comes back without its colour or alpha, else why the format holds no image
    of a chosen size at all."""
    n = len(mode)
    a = (np.arange(6 * n).reshape(2, 3, n) * 37 % 256).astype(np.uint8)
    img = Image.fromarray(a[..., 0] if n == 1 else a, mode)
    buf = io.BytesIO()
    try:
        img.save(buf, format=fmt, **({'sizes': [img.size]} if fmt == 'ICO' else {}))
    except (OSError, KeyError, ValueError, TypeError):
        return 'mode'
    buf.seek(0)
    try:
        with Image.open(buf) as back:
            back.load()
            size, back_mode, info = back.size, back.mode, back.info
    except Exception:  # noqa: BLE001  (PIL fails in many ways on formats it writes but cannot read)
        return f'{fmt} files cannot be read back here to check that they hold the image'
    if size != img.size:
        return f'{fmt} keeps sizes of its own (a {img.size[0]}x{img.size[1]} image came back {size[0]}x{size[1]})'
    if 'A' in mode and not ('A' in back_mode or 'transparency' in info):
        return 'mode'
    if mode.startswith('RGB') and back_mode in _GREY:
        return 'mode'
    return None


def check_format(fmt: str, path) -> None:
    """Before any work: a UserError when the `fmt` file `path` cannot hold a rendered image of any
    mode (see storable_mode): fixed sizes, not readable back, a `.pbm` extension."""
    if Path(path).suffix.lower() == '.pbm':
        raise UserError(f'output {path}: a .pbm file holds black-and-white images only; use .ppm (colour), '
                        '.pgm (grey) or .png')
    for mode in ('RGB', 'L'):
        problem = _probe(fmt, mode)
        if problem not in (None, 'mode'):
            raise UserError(f'output {path}: {problem}; choose .png, .jpg, .webp, .tif or .bmp')


def storable_mode(fmt: str, mode: str, path=None) -> tuple[str, Optional[str]]:
    """The first mode, of `mode` and its fallbacks, that a `fmt` file holds (probed by saving and
    reading back a small image: its size, colour and alpha survive), and a note if it differs. A
    format that holds no image of the size asked for (ICNS's fixed icon sizes), cannot be read
    back, or whose extension names a kind the image is not (`.pgm` grey, `.pbm` black and white,
    `.ppm` colour: PIL would write another kind under that name) is a UserError."""
    ext = Path(path).suffix.lower() if path is not None else ''
    for m in _FALLBACKS[mode]:
        if ext in _PNM_MODES and m not in _PNM_MODES[ext]:
            continue
        problem = _probe(fmt, m)
        if problem == 'mode':
            continue
        if problem is not None:
            raise UserError(f'output {path or fmt}: {problem}; choose .png, .jpg, .webp, .tif or .bmp')
        if m == mode:
            return m, None
        lost = 'transparency dropped' if 'A' in mode and 'A' not in m else 'stored as ' + m
        return m, f'{fmt} cannot store {mode} images: {lost}'
    if ext in _PNM_MODES:
        holds = {'.pbm': 'black-and-white', '.pgm': 'grey', '.ppm': 'colour'}[ext]
        raise UserError(f'output {path}: a {ext} file holds {holds} images only, and this one is {mode}; '
                        'use .ppm (colour), .pgm (grey) or .png')
    raise UserError(f'cannot write {mode} images as {fmt}; choose another output extension')


def compose(rgb: np.ndarray, alpha: Optional[np.ndarray], gray: bool) -> Image.Image:
    """uint8 rgb (H, W, 3) [+ alpha (H, W)] -> a PIL image in mode L, LA, RGB or RGBA."""
    img = Image.fromarray(rgb, 'RGB')
    if gray:
        img = img.convert('L')
    if alpha is not None:
        img.putalpha(Image.fromarray(alpha, 'L'))
    return img


LOSSY = ('JPEG', 'WEBP', 'JPEG2000', 'AVIF')  # formats with a quality setting


def write_image(img: Image.Image, path, fmt: Optional[str] = None, quality: Optional[int] = None,
                png_compression: Optional[int] = None) -> None:
    """Save `img` at `path` atomically (utils/files.py); lossy formats at `quality` (1-100), PNG at
    zlib level `png_compression` (0-9; None: PIL's defaults). Any failure is a UserError and
    leaves `path` untouched."""
    path = Path(path)
    fmt = fmt or output_format(path)
    # PIL's ICO writer keeps only its standard sizes up to the image's (100 px -> 64 px): ask for ours.
    options = {'sizes': [img.size]} if fmt == 'ICO' else {}
    if quality is not None and fmt in LOSSY:
        options['quality'] = quality
    if png_compression is not None and fmt == 'PNG':
        options['compress_level'] = png_compression
    try:
        atomic_write(path, lambda f: img.save(f, format=fmt, **options))
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f'cannot write {path} ({str(e).splitlines()[0] if str(e) else type(e).__name__})') from None
