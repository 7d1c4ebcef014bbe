"""The library entry point: load a checkpoint (its normalisation included) and upscale images.

    from inference.upscale import Upscaler
    up = Upscaler.load('pretrained/edsr-baseline-liif-sample.pth')   # or Upscaler.load() for it
    up = Upscaler.load('real')            # a bundled model by name: 'sample' (default) or 'real'
    out = up(image, scale=4)              # image: uint8 (H, W[, 3|4]) array, float [0, 1] array, or PIL
    out = up(image, resolution=(1080, 1920))                          # (H, W), height first
    up.upscale_file('lr.png', 'lr_x4.png', scale=4)                  # what demo.py does per file

    up = Upscaler.load('model.onnx', backend='onnxruntime')           # an export (scripts/export_onnx.py)

Arrays come back as uint8 (H, W, 3) (grayscale input: (H, W), or (H, W, 1) for (H, W, 1); with
alpha: (H, W, 4), the alpha upscaled bicubically), PIL images as PIL images of the same mode
family. Rendering is the bounded-memory path of demo.py: tiled encoding for large inputs, chunked queries, bands of rows, and
mirror padding for window encoders (SwinIR). SRNO and HIIF attend over the whole image
(`attention_rows` None, computed in bounded memory) or over blocks of that many output rows;
LMF models render beyond x4 with CMSR given `cmsr=` (a table file or the tables).
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from models.cmsr import enable_cmsr
from models.loading import describe_family, load_model_checkpoint
from utils.checkpoints import PathLike
from utils.device import resolve_device
from utils.config import Checker
from utils.errors import UserError
from utils.files import check_output, refuse_existing
from utils.pixels import array_to_uint8
from utils.images import (LoadedImage, check_format, check_output_size, compose, output_format, read_image, split_channels,
                          storable_mode, upscale_alpha, write_image)
from utils.precision import check_precision

from .groups import check_attention_rows
from .norm import DataNorm
from .onnx_backend import IDENTITY_NORM, load_onnx_model
from .render import render
from .options import check_bsize, check_path, check_tile, min_tile, output_size
from .window import resolve_window, window_frame

BACKENDS = ('pytorch', 'onnxruntime')
PRETRAINED = Path(__file__).resolve().parents[1] / 'pretrained'
# The bundled demo models by name (README, "The bundled models"): 'sample' (the default) was trained on
# bicubic downsampling, 'real' on Real-ESRGAN-style degradations (blur, resizes, noise, JPEG).
BUNDLED_MODEL = PRETRAINED / 'edsr-baseline-liif-sample.pth'
REAL_MODEL = PRETRAINED / 'edsr-baseline-liif-real.pth'
BUNDLED_NAMES = ('sample', 'real')
ImageLike = Union[np.ndarray, Image.Image, torch.Tensor]
MAX_OUTPUT_MEGAPIXELS = 500  # outputs above need force (3 bytes per pixel are kept whole)
OPTIONS = ('precision', 'window', 'tile', 'bsize', 'progress', 'attention_rows', 'cmsr')  # Upscaler.load's options (the fields)


def as_loaded(image: ImageLike) -> LoadedImage:
    """An array ((H, W), (H, W, 1), (H, W, 3) or (H, W, 4): uint8, uint16 (/ 257), bool, or float in
    [0, 1]), a tensor of the same types ((H, W) or (1|3|4, H, W)) or a PIL image (any mode, read by
    the rules of utils/images.py) -> the LoadedImage demo.py gets from a file. Values outside the
    range of their type, NaN, inf and other types are refused (utils/pixels.py), never clipped."""
    if isinstance(image, Image.Image):
        return split_channels(image, 'the PIL image')
    what = 'the image array'
    if isinstance(image, torch.Tensor):
        what, t = 'the image tensor', image.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # numpy has no bfloat16
        image = t.permute(1, 2, 0).numpy() if t.dim() == 3 else t.numpy()
    elif not isinstance(image, np.ndarray):
        raise UserError(f'expected an image: a numpy array, a tensor or a PIL image, got {type(image).__name__}')
    a = image
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]  # (H, W, 1): grayscale
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or a.size == 0:
        raise UserError(f'{what}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (tensors '
                        f'(1|3|4, H, W)), got {tuple(image.shape)}')
    a = array_to_uint8(a, what)
    mode = 'L' if a.ndim == 2 else ('RGB' if a.shape[2] == 3 else 'RGBA')
    return split_channels(Image.fromarray(np.ascontiguousarray(a), mode))


def resolve_checkpoint(checkpoint: Optional[PathLike]) -> Path:
    """The checkpoint path of a path or a bundled model's name (None: 'sample'). A name wins over a
    file of the same name in the current folder (write ./real for that); a missing bundled model
    is a UserError saying so."""
    name = 'sample' if checkpoint is None else str(checkpoint)
    if name not in BUNDLED_NAMES:
        return Path(checkpoint)
    path = BUNDLED_MODEL if name == 'sample' else REAL_MODEL
    if not path.is_file():
        raise UserError(f'the bundled {name!r} model {path} is missing; pass --model CKPT (a checkpoint, '
                        "e.g. one of the LIIF paper's released ones, linked from the yinboc/liif repository)")
    return path


@dataclass
class Upscaler:
    """A loaded implicit model with its normalisation and rendering options (see module doc)."""
    model: nn.Module
    norm: DataNorm
    device: torch.device
    precision: str = 'fp32'
    window: str = 'auto'
    tile: Optional[int] = 512
    bsize: int = 30000
    progress: bool = False
    source: Optional[str] = field(default=None, compare=False)  # the checkpoint file, if loaded from one
    family: str = field(default='model', compare=False)  # 'liif over edsr-baseline', for messages
    attention_rows: Optional[int] = None
    cmsr: Union[str, Path, dict, None] = None  # CMSR tables (a file or the tables), LMF models

    def __post_init__(self):
        self.check_options()
        if self.cmsr is not None:
            enable_cmsr(self.model, self.cmsr)

    def describe(self) -> str:
        """One line: the checkpoint, its model family and normalisation."""
        return f"{self.source or 'in-memory model'}: {self.family}, data_norm {self.norm.describe()}"

    def check_options(self) -> tuple[Optional[int], Optional[int]]:
        """Validate the rendering options (inference/options.py): precision for the device,
        window (one the model can take), tile (0/None or at least the encoder's receptive field),
        bsize, progress, attention_rows; returns (window size or None, tile or None). Run again by
        every render, so an option changed after construction is checked too."""
        c = Checker('Upscaler')
        check_precision(c.string(self.precision, 'precision'), self.device)
        c.boolean(self.progress, 'progress')
        check_bsize(self.bsize)
        check_attention_rows(self.attention_rows)
        return resolve_window(self.window, self.model), check_tile(self.tile, self.model)

    @classmethod
    def load(cls, checkpoint: Optional[PathLike] = None, device: Optional[str] = None, backend: str = 'pytorch',
             **options) -> 'Upscaler':
        """The model of `checkpoint` (a path, or the name of a bundled model: 'sample', the default,
        or 'real'), on `device` ('cpu', '0', ...; default CUDA when present), with its checkpoint's
        normalisation. `backend` 'onnxruntime' runs a file written by scripts/export_onnx.py instead
        (inference/onnx_backend.py: CPU, fp32; the same tiling, chunks and bands). `options`:
        precision, window, tile, bsize, progress, attention_rows, cmsr (a CMSR table file or the
        tables, LMF models; see the fields)."""
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise UserError(f'Upscaler.load: unknown option {unknown[0]!r}; expected one of {", ".join(OPTIONS)}')
        if backend not in BACKENDS:
            raise UserError(f'backend must be one of {", ".join(BACKENDS)}, got {backend!r}')
        if checkpoint is not None:
            checkpoint = check_path(checkpoint, 'checkpoint', 'Upscaler.load')
        if backend == 'onnxruntime':
            return cls.load_onnx(checkpoint, device, **options)
        path = resolve_checkpoint(checkpoint)
        dev = resolve_device(device, 'device')
        check_precision(options.get('precision', 'fp32'), dev)
        ckpt, model = load_model_checkpoint(path, dev)
        return cls(model, DataNorm.from_checkpoint(ckpt, str(path)), dev, source=str(path),
                   family=describe_family(ckpt['model']), **options)

    @classmethod
    def load_onnx(cls, path: Optional[PathLike], device: Optional[str] = None, **options) -> 'Upscaler':
        """The exported model at `path` run by onnxruntime on the CPU in fp32 (other devices and
        precisions are a UserError). The graph normalises itself: the renderer's norm is identity."""
        if path is None:
            raise UserError('the onnxruntime backend needs --model MODEL.onnx (written by scripts/export_onnx.py)')
        if device is not None and str(device).strip().lower() not in ('cpu', 'auto', ''):
            raise UserError(f'--gpu {device}: the onnxruntime backend runs on the CPU here; use --gpu cpu, '
                            'or the pytorch backend for a GPU')
        if options.get('precision', 'fp32') != 'fp32':
            raise UserError(f"--precision {options['precision']}: the onnxruntime backend runs the exported "
                            'fp32 graph; reduced precision is the pytorch backend\'s')
        return cls(load_onnx_model(path), IDENTITY_NORM, torch.device('cpu'), source=str(path), **options)

    def tile_for(self, in_hw: Sequence[int]) -> Optional[int]:
        """The tile size to encode an input of in_hw with: None when it fits one tile or the
        encoder's reach is unbounded (attention), which is then encoded whole."""
        tile = check_tile(self.tile, self.model)
        if tile is None or max(in_hw) <= tile or min_tile(self.model) is None:
            return None
        return tile

    def input_tensor(self, image: LoadedImage) -> torch.Tensor:
        """The RGB pixels of a LoadedImage as the model's input: (1, 3, h, w) float in [0, 1], on
        the upscaler's device (not yet normalised)."""
        return torch.from_numpy(image.rgb).to(self.device).permute(2, 0, 1).float().div_(255).unsqueeze(0)

    def window_size(self) -> Optional[int]:
        """The window the input is mirror-padded to (resolve_window of the `window` option), or None."""
        return resolve_window(self.window, self.model)

    def render_loaded(self, image: LoadedImage, out_hw: Sequence[int]) -> Image.Image:
        """A LoadedImage rendered at out_hw -> PIL image (L, LA, RGB or RGBA, as the input)."""
        window, _ = self.check_options()
        x = self.input_tensor(image)  # (1, 3, h, w)
        rgb = render(self.model, x, out_hw, self.norm, bsize=self.bsize, precision=self.precision,
                     progress=self.progress, tile=self.tile_for(image.rgb.shape[:2]), window=window,
                     attention_rows=self.attention_rows)
        del x
        alpha = upscale_alpha(image.alpha, out_hw) if image.alpha is not None else None
        return compose(rgb, alpha, image.gray)

    def __call__(self, image: ImageLike, scale: Union[float, Sequence[float], None] = None,
                 resolution: Optional[Sequence[int]] = None, force: bool = False,
                 max_output_megapixels: float = MAX_OUTPUT_MEGAPIXELS) -> Union[np.ndarray, Image.Image]:
        """Upscale an in-memory image by `scale` (S or (SY, SX)) or to `resolution` (H, W). Outputs
        over `max_output_megapixels` need `force`; sizes no memory can hold are refused even then."""
        c = Checker('upscale')
        c.boolean(force, 'force')
        c.number(max_output_megapixels, 'max_output_megapixels', positive=True)
        loaded = as_loaded(image)
        out_hw = output_size(loaded.rgb.shape[:2], scale, resolution)
        check_output_size(out_hw, None, max_output_megapixels, force)
        out = self.render_loaded(loaded, out_hw)
        if isinstance(image, Image.Image):
            return out
        a = np.asarray(out)
        return a[..., None] if a.ndim == 2 and np.ndim(image) == 3 else a  # (H, W, 1) in, (H, W, 1) out

    def upscale_file(self, src: PathLike, dst: PathLike, scale: Union[float, Sequence[float], None] = None,
                     resolution: Optional[Sequence[int]] = None, quality: int = 95, force: bool = False,
                     max_input_megapixels: Optional[float] = None, max_output_megapixels: float = 500,
                     png_compression: int = 4, overwrite: bool = False,
                     protect: Optional[Mapping[str, PathLike]] = None) -> tuple[tuple[int, int], Optional[str]]:
        """Read src, upscale it and write dst (format from its extension, lossy ones at `quality`,
        PNG at zlib level `png_compression`: 4 encodes a 1024x1024 photo 2.8x faster than PIL's 6
        for 1% more bytes, benchmarks/bench_png.py), atomically. Returns the output size (H, W) and a note when the format cannot hold the
        image's mode (e.g. JPEG and alpha). Checked before anything is decoded or rendered: dst is
        neither src nor the checkpoint (nor any of `protect`, {what: path}), its folder takes files,
        it does not exist (unless `overwrite`), its format and the sizes."""
        c = Checker('upscale_file')
        check_path(src, 'src', 'upscale_file')
        check_path(dst, 'dst', 'upscale_file')
        if protect is not None:
            c.mapping(protect, 'protect')
        c.integer(quality, 'quality', 1, 100)
        c.integer(png_compression, 'png_compression', 0, 9)
        c.boolean(force, 'force')
        c.boolean(overwrite, 'overwrite')
        if max_input_megapixels is not None:
            c.number(max_input_megapixels, 'max_input_megapixels', positive=True)
        c.number(max_output_megapixels, 'max_output_megapixels', positive=True)
        window, _ = self.check_options()
        fmt = output_format(dst)
        check_format(fmt, dst)
        tables = self.cmsr if isinstance(self.cmsr, (str, Path)) else None
        check_output(dst, {'input': src, 'model checkpoint': self.source, 'CMSR tables': tables, **(protect or {})},
                     'output')
        if not overwrite:
            refuse_existing(dst, 'output', 'pass overwrite=True to replace it')
        image = read_image(src, allow_huge=force, max_megapixels=None if force else max_input_megapixels,
                           hint='; pass --force to read it anyway')
        if window and max_input_megapixels is not None and not force:  # the padded input is what is encoded
            (ph, pw), _ = window_frame(image.rgb.shape[:2], window)
            h, w = image.rgb.shape[0] + ph, image.rgb.shape[1] + pw
            if h * w > max_input_megapixels * 1e6:
                raise UserError(f'input {src} padded to the window {window} is {h}x{w} pixels, over the '
                                f'{max_input_megapixels:g}-megapixel budget; pass --force to render it anyway')
        out_hw = output_size(image.rgb.shape[:2], scale, resolution)
        check_output_size(out_hw, fmt, max_output_megapixels, force)
        mode, note = storable_mode(fmt, image.mode, dst)
        img = self.render_loaded(image, out_hw)
        if mode != img.mode:
            img = img.convert(mode)
        write_image(img, dst, fmt, quality=quality, png_compression=png_compression)
        return out_hw, note


def upscale(image: ImageLike, scale: Union[float, Sequence[float], None] = None,
            resolution: Optional[Sequence[int]] = None, checkpoint: Optional[PathLike] = None,
            device: Optional[str] = None, **options) -> Union[np.ndarray, Image.Image]:
    """One call: load `checkpoint` (default: the bundled model) and upscale `image` by `scale` or to
    `resolution` (H, W). For many images, load an Upscaler once instead."""
    return Upscaler.load(checkpoint, device, **options)(image, scale, resolution)
