"""Render an image at any scale or resolution with a LIIF model.

    python demo.py --input lr.png --scale 30
    python demo.py --input lr.png --scale 2,3.5 --output wide.webp
    python demo.py --input lr.png --resolution 1080,1920 --model save/run/epoch-best.pth

Output size: --scale S (or SY,SX) gives round(H * SY) x round(W * SX), halves rounded up, at
least 1 pixel; --resolution H,W (height first) gives exactly that. Without --output the result
goes next to the input as <stem>_x<S>.<ext> (or <stem>_<H>x<W>.<ext>). Inputs over 4 megapixels
(MAX_INPUT_MEGAPIXELS, checked from the header before decoding) and outputs over 500 megapixels
need --force; sizes no format or no memory can hold are refused even then. See utils/images.py
for how each image mode is handled.
"""
import argparse
import math
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

from inference.norm import DataNorm
from inference.render import render
from inference.tiling import receptive_radius
from models.loading import build_model, require_implicit
from utils.checkpoints import load_checkpoint
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.files import check_output, refuse_inputs
from utils.images import (check_output_size, compose, output_format, read_image, storable_mode,
                            upscale_alpha, write_image)
from utils.precision import PRECISIONS, check_precision

DEFAULT_MODEL = Path(__file__).resolve().parent / 'pretrained' / 'edsr-baseline-liif-sample.pth'
MAX_MEGAPIXELS = 500  # output; 3 bytes per pixel are kept whole
# Input budget: encoding keeps the latent grid and the decoder's projection of it, about 1.3 KB per
# input pixel for EDSR-baseline-LIIF (64 + 256 float32 channels): 4 megapixels take about 5 GB.
MAX_INPUT_MEGAPIXELS = 4
# Derived output names keep the input's extension when it is one of these, else use .png.
_KEEP_EXT = {'.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.bmp'}


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one-line UserErrors (exit 2 through run_cli)."""

    def error(self, message: str):
        raise UserError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(description='Render an image at any scale with a LIIF model.')
    p.add_argument('--input', required=True, help='the image to upscale (any common format)')
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument('--scale', help='S or SY,SX: any positive real factor (e.g. 30, 3.7, 0.5)')
    size.add_argument('--resolution', help='H,W: output height and width in pixels')
    p.add_argument('--model', help=f'checkpoint (default: {DEFAULT_MODEL.relative_to(DEFAULT_MODEL.parents[1])})')
    p.add_argument('--output', help='output image; the format follows the extension')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--precision', default='fp32', choices=PRECISIONS)
    p.add_argument('--bsize', type=int, default=30000, help='queries per decoder call')
    p.add_argument('--tile', type=int, default=512,
                   help='encode inputs larger than TILE x TILE pixels in overlapping tiles (0: never)')
    p.add_argument('--force', action='store_true', help=f'allow inputs over {MAX_INPUT_MEGAPIXELS} and outputs '
                   f'over {MAX_MEGAPIXELS} megapixels')
    return p


def _numbers(text: str, flag: str, count: Sequence[int], cast) -> list:
    parts = text.split(',')
    if len(parts) not in count:
        want = ' or '.join(str(c) for c in count)
        raise UserError(f'{flag} expects {want} comma-separated numbers, got {text!r}')
    try:
        values = [cast(p.strip()) for p in parts]
    except ValueError:
        raise UserError(f'{flag} expects numbers, got {text!r}') from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise UserError(f'{flag} expects positive finite numbers, got {text!r}')
    return values


def parse_scale(text: str) -> tuple[float, float]:
    """'30' -> (30, 30); '2,3.5' -> (2, 3.5) as (row, col) factors."""
    values = _numbers(text, '--scale', (1, 2), float)
    return (values[0], values[-1])


def parse_resolution(text: str) -> tuple[int, int]:
    """'1080,1920' -> (1080, 1920): height, width."""
    return tuple(_numbers(text, '--resolution', (2,), int))


def output_size(in_hw: Sequence[int], scale: Optional[Sequence[float]] = None,
                resolution: Optional[Sequence[int]] = None) -> tuple[int, int]:
    """(H, W) of the output: `resolution`, or in_hw times `scale` rounded half up, at least 1."""
    if resolution is not None:
        return tuple(resolution)
    # Capped so that an absurd scale (1e300) gives a size check_output_size refuses, not an overflow.
    return tuple(max(1, math.floor(min(n * s, 2.0 ** 62) + 0.5)) for n, s in zip(in_hw, scale))


def default_output(inp: Path, scale: Optional[Sequence[float]], resolution: Optional[Sequence[int]]) -> Path:
    """<stem>_x<S>.<ext> (or _x<SY>x<SX>, or _<H>x<W>) next to the input."""
    ext = inp.suffix.lower() if inp.suffix.lower() in _KEEP_EXT else '.png'
    if resolution is not None:
        tag = f'{resolution[0]}x{resolution[1]}'
    elif scale[0] == scale[1]:
        tag = f'x{scale[0]:g}'
    else:
        tag = f'x{scale[0]:g}x{scale[1]:g}'
    return inp.with_name(f'{inp.stem}_{tag}{ext}')


def load_renderer(path: Optional[str], device: torch.device) -> tuple[torch.nn.Module, DataNorm]:
    """The model of checkpoint `path` (default: the bundled one) and its normalisation."""
    if path is None:
        if not DEFAULT_MODEL.is_file():
            raise UserError(f'no --model given and the bundled default {DEFAULT_MODEL} is missing; '
                            "pass --model CKPT (e.g. one of the LIIF paper's released checkpoints, "
                            'linked from the yinboc/liif code repository)')
        path = DEFAULT_MODEL
    ckpt = load_checkpoint(path)
    model = require_implicit(build_model(ckpt, path, device), ckpt['model']['name'], path)
    return model, DataNorm.from_checkpoint(ckpt, str(path))


def _note(msg: str) -> None:
    print(f'note: {msg}', file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> Path:
    """Parse argv, render, write the output; returns its path. Mistakes raise UserError."""
    args = build_parser().parse_args(argv)
    scale = parse_scale(args.scale) if args.scale is not None else None
    resolution = parse_resolution(args.resolution) if args.resolution is not None else None
    if args.bsize < 1:
        raise UserError(f'--bsize must be at least 1, got {args.bsize}')
    inp_path = Path(args.input)
    out_path = Path(args.output) if args.output else default_output(inp_path, scale, resolution)
    inputs = {'input': inp_path, 'model checkpoint': args.model}
    refuse_inputs(out_path, inputs, 'output')

    # The budget is checked from the file's header, before anything is decoded.
    budget = None if args.force else MAX_INPUT_MEGAPIXELS
    image = read_image(inp_path, allow_huge=args.force, max_megapixels=budget, hint='; pass --force to read it anyway')
    h, w = image.rgb.shape[:2]
    out_hw = output_size((h, w), scale, resolution)
    check_output(out_path, inputs, 'output')
    fmt = output_format(out_path)
    check_output_size(out_hw, fmt, MAX_MEGAPIXELS, args.force)
    mode, mode_note = storable_mode(fmt, image.mode)

    device = resolve_device(args.gpu)
    check_precision(args.precision, device)
    model, norm = load_renderer(args.model, device)
    tile = args.tile if args.tile > 0 else None
    if tile is not None and (h > tile or w > tile):
        try:
            receptive_radius(model.encoder)
        except (ValueError, AttributeError) as e:
            _note(f'encoding the whole input at once ({e})')
            tile = None

    start = time.time()
    x = torch.from_numpy(image.rgb).to(device).permute(2, 0, 1).float().div_(255).unsqueeze(0)  # (1, 3, h, w)
    rgb = render(model, x, out_hw, norm, bsize=args.bsize, precision=args.precision,
                 progress=True, tile=tile)
    del x, model
    alpha = upscale_alpha(image.alpha, out_hw) if image.alpha is not None else None
    img = compose(rgb, alpha, image.gray)
    del rgb, alpha
    if mode != img.mode:
        _note(mode_note)
        img = img.convert(mode)
    write_image(img, out_path, fmt)
    print(f'wrote {out_path}: {out_hw[0]}x{out_hw[1]} (HxW) {mode} in {time.time() - start:.1f} s')
    return out_path


if __name__ == '__main__':
    run_cli(main)
