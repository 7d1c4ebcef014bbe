"""Render images at any scale or resolution with a LIIF-family model.

    python demo.py --input lr.png --scale 30
    python demo.py --input lr.png --scale 2,3.5 --output wide.webp --quality 90
    python demo.py --input lr.png --resolution 1080x1920 --model save/run/epoch-best.pth
    python demo.py --input phone.jpg --scale 4 --model real     # the bundled real-world model
    python demo.py --input photos/ more.png 'scans/*.tif' --scale 4 --output out/
    python demo.py --input lr.png --scale 4 --backend onnxruntime --model model.onnx

Sizes are always height x width. Output size: --scale S (or SY,SX) gives round(H * SY) x
round(W * SX), halves rounded up, at least 1 pixel; --resolution HxW (or H,W) gives exactly that.
Inputs: files, folders (their images, sorted) and glob patterns. One input without --output: the
result goes next to it as <stem>_x<S>.<ext> (or <stem>_<H>x<W>.<ext>); with several inputs
--output is a folder that receives those names. `{model}` in --output is replaced by the model's
name (its checkpoint stem, with its run folder for epoch-*.pth: `--output out/{model}/`). An
existing output is never replaced without --overwrite: every output is checked before anything is
rendered. The model used (checkpoint, family, data_norm) is printed once. Lossy formats (.jpg, .webp) are written at
--quality (default 95), PNG at --png-compression (zlib level, default 4). Inputs over 4
megapixels (MAX_INPUT_MEGAPIXELS, checked from the header before decoding) and outputs over 500
megapixels need --force; sizes no format or no memory can hold are refused even then. A bad input is one line and exit status 2; with several inputs the others
are still rendered. See utils/images.py for how each image mode is handled.
"""
import argparse
import glob
import math
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from tqdm import tqdm

from inference.options import MAX_BSIZE
from inference.groups import group_note, parse_attention_rows
from inference.upscale import BACKENDS, BUNDLED_MODEL, Upscaler
from inference.window import resolve_window
from utils.checkpoints import checkpoint_label
from utils.errors import ArgumentParser, UserError, run_cli
from utils.files import check_output, refuse_existing
from utils.images import IMAGE_EXTENSIONS, is_image_name
from utils.precision import PRECISIONS

DEFAULT_MODEL = BUNDLED_MODEL
MAX_MEGAPIXELS = 500  # output; 3 bytes per pixel are kept whole
# Input budget: encoding keeps the latent grid and the decoder's projection of it, about 1.3 KB per
# input pixel for EDSR-baseline-LIIF (64 + 256 float32 channels): 4 megapixels take about 5 GB.
MAX_INPUT_MEGAPIXELS = 4
# Derived output names keep the input's extension when it is one of these, else use .png.
_KEEP_EXT = {'.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.bmp'}


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description='Render images at any scale with a LIIF-family model.')
    p.add_argument('--input', required=True, nargs='+',
                   help='images to upscale: files, folders (their images) or glob patterns')
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument('--scale', help='S or SY,SX: any positive real factor (e.g. 30, 3.7, 0.5)')
    size.add_argument('--resolution', help='HxW or H,W: output height and width in pixels')
    p.add_argument('--model', help='checkpoint, or a bundled model: sample (the default, '
                   f'{DEFAULT_MODEL.relative_to(DEFAULT_MODEL.parents[1])}, trained on bicubic downsampling) or '
                   'real (trained on blur, noise and JPEG: for photos from phones and the web); with '
                   '--backend onnxruntime an export of scripts/export_onnx.py')
    p.add_argument('--backend', default='pytorch', choices=BACKENDS,
                   help='what runs the model: pytorch (a checkpoint), or onnxruntime (an exported .onnx file; '
                        'CPU, fp32, the same tiling, chunks and bands)')
    p.add_argument('--output', help='output image (one input; the format follows the extension), or a '
                                    "folder for several inputs; '{model}' is replaced by the model's name")
    p.add_argument('--overwrite', action='store_true', help='replace outputs that exist (refused otherwise)')
    p.add_argument('--quality', type=int, default=95, help='quality of lossy outputs (.jpg, .webp), 1-100')
    p.add_argument('--png-compression', type=int, default=4,
                   help="zlib level of PNG outputs, 0-9 (default 4: 2.8x faster to write than PIL's 6 for "
                        '1%% larger files, benchmarks/bench_png.py; 9: smallest, slowest)')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--precision', default='fp32', choices=PRECISIONS)
    p.add_argument('--bsize', type=int, default=30000, help='queries per decoder call')
    p.add_argument('--tile', type=int, default=512,
                   help='encode inputs larger than TILE x TILE pixels in overlapping tiles (0: never)')
    p.add_argument('--window', default='auto',
                   help="mirror-pad the input to the encoder's attention window (SwinIR) as the LTE "
                        "authors evaluate: 'auto' (when the encoder has a window_size), 'off', or a size")
    p.add_argument('--cmsr', metavar='TABLES', default=None,
                   help="LMF models: render beyond x4 with CMSR, the authors' multi-scale approximation, "
                        'using these threshold tables (configs/cmsr/*.yaml)')
    p.add_argument('--attention-rows', default='whole',
                   help="SRNO/HIIF: output rows that attend together ('whole', the default: the whole image, as "
                        "the SRNO demo, computed in bounded memory; N: blocks of N rows, the authors' chunked test)")
    p.add_argument('--force', action='store_true', help=f'allow inputs over {MAX_INPUT_MEGAPIXELS} and outputs '
                   f'over {MAX_MEGAPIXELS} megapixels')
    return p


def _numbers(text: str, flag: str, count: Sequence[int], cast, seps: str = ',') -> list:
    parts = [text]
    for sep in seps:
        if sep in text:
            parts = text.split(sep)
            break
    if len(parts) not in count:
        want = ' or '.join(str(c) for c in count)
        raise UserError(f'{flag} expects {want} numbers separated by {" or ".join(repr(s) for s in seps)}, got {text!r}')
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
    """'1080x1920' or '1080,1920' -> (1080, 1920): height, width."""
    return tuple(_numbers(text.lower(), '--resolution', (2,), int, seps='x,'))


def default_output(inp: Path, scale: Optional[Sequence[float]], resolution: Optional[Sequence[int]],
                   folder: Optional[Path] = None) -> Path:
    """<stem>_x<S>.<ext> (or _x<SY>x<SX>, or _<H>x<W>) next to the input, or in `folder`."""
    ext = inp.suffix.lower() if inp.suffix.lower() in _KEEP_EXT else '.png'
    if resolution is not None:
        tag = f'{resolution[0]}x{resolution[1]}'
    elif scale[0] == scale[1]:
        tag = f'x{scale[0]:g}'
    else:
        tag = f'x{scale[0]:g}x{scale[1]:g}'
    return (folder or inp.parent) / f'{inp.stem}_{tag}{ext}'


def expand_inputs(items: Sequence[str]) -> list[Path]:
    """Files as given, folders as their image files (sorted), glob patterns as their matches; a
    UserError for an item that names nothing."""
    found = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            images = sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p.name))
            if not images:
                raise UserError(f'input folder {path} holds no images ({", ".join(IMAGE_EXTENSIONS)})')
            found += images
        elif path.exists():
            found.append(path)
        elif not glob.has_magic(item):
            raise UserError(f'input not found: {path}')
        else:
            matches = sorted(Path(m) for m in glob.glob(item) if Path(m).is_file())
            if not matches:
                raise UserError(f'input pattern {item!r} matches no file')
            found += matches
    return list(dict.fromkeys(found))  # each file once, first order kept


def plan_outputs(inputs: list[Path], output: Optional[str], scale, resolution) -> list[Path]:
    """The output path of each input; several inputs need --output to be a folder (made here)."""
    if len(inputs) == 1 and not (output and (output.endswith(('/', '\\')) or Path(output).is_dir())):
        return [Path(output) if output else default_output(inputs[0], scale, resolution)]
    folder = Path(output) if output else None
    if folder is not None:
        if folder.exists() and not folder.is_dir():
            raise UserError(f'--output {folder} is a file; with several inputs give a folder')
        folder.mkdir(parents=True, exist_ok=True)
    outs = [default_output(p, scale, resolution, folder) for p in inputs]
    clash = {o for o in outs if outs.count(o) > 1}
    if clash:
        raise UserError(f'two inputs would both be written to {sorted(clash)[0]}; rename one or render them apart')
    return outs


MODEL_PLACEHOLDER = '{model}'


def fill_model_name(output: Optional[str], model: Optional[str]) -> Optional[str]:
    """--output with every '{model}' replaced by the model's name (utils.checkpoints.checkpoint_label,
    '/' as '-': one path component)."""
    if output is None or MODEL_PLACEHOLDER not in output:
        return output
    name = checkpoint_label(model if model is not None else DEFAULT_MODEL).replace('/', '-')
    return output.replace(MODEL_PLACEHOLDER, name)


def _note(msg: str) -> None:
    print(f'note: {msg}', file=sys.stderr)


def main(argv: Optional[Sequence[str]] = None) -> list[Path]:
    """Parse argv, render every input, write the outputs; returns their paths. Mistakes raise
    UserError (with several inputs: after the others are done, naming how many failed)."""
    args = build_parser().parse_args(argv)
    scale = parse_scale(args.scale) if args.scale is not None else None
    resolution = parse_resolution(args.resolution) if args.resolution is not None else None
    resolve_window(args.window, None)  # a malformed --window fails before any work
    attention_rows = parse_attention_rows(args.attention_rows)
    if not 1 <= args.bsize <= MAX_BSIZE:
        raise UserError(f'--bsize must be from 1 to {MAX_BSIZE}, got {args.bsize}')
    if args.tile < 0:
        raise UserError(f'--tile must be 0 (never tile) or a size in pixels, got {args.tile}')
    if not 1 <= args.quality <= 100:
        raise UserError(f'--quality must be from 1 to 100, got {args.quality}')
    if not 0 <= args.png_compression <= 9:
        raise UserError(f'--png-compression must be from 0 to 9, got {args.png_compression}')
    inputs = expand_inputs(args.input)
    outputs = plan_outputs(inputs, fill_model_name(args.output, args.model), scale, resolution)
    protected = {}
    for inp, out in zip(inputs, outputs):  # every output checked before any is rendered
        protected[out] = {f'input {other}': other for other in inputs if other != inp}
        check_output(out, {'input': inp, 'model checkpoint': args.model or DEFAULT_MODEL, 'CMSR tables': args.cmsr,
                           **protected[out]}, 'output')
        if not args.overwrite:
            refuse_existing(out, 'output', 'pass --overwrite to replace it, or name another --output; '
                                           "'{model}' in --output adds the model's name")

    upscaler = Upscaler.load(args.model, args.gpu, backend=args.backend, precision=args.precision,
                             window=args.window, tile=args.tile, bsize=args.bsize,
                             progress=len(inputs) == 1, attention_rows=attention_rows, cmsr=args.cmsr)
    print(f'model: {upscaler.describe()}')
    if group_note(upscaler.model, attention_rows):
        _note(group_note(upscaler.model, attention_rows))
    written, failed = [], []
    bar = tqdm(list(zip(inputs, outputs)), unit='image', desc='demo', disable=len(inputs) == 1)
    for inp, out in bar:
        start = time.time()
        try:
            out_hw, note = upscaler.upscale_file(inp, out, scale, resolution, args.quality, args.force,
                                                 MAX_INPUT_MEGAPIXELS, MAX_MEGAPIXELS, args.png_compression,
                                                 overwrite=args.overwrite, protect=protected[out])
        except UserError as e:
            if len(inputs) == 1:
                raise
            tqdm.write(f'error: {e}', file=sys.stderr)
            failed.append(inp)
            continue
        if note:
            _note(note)
        tqdm.write(f'wrote {out}: {out_hw[0]}x{out_hw[1]} (HxW) in {time.time() - start:.1f} s')
        written.append(out)
    if failed:
        raise UserError(f'{len(failed)} of {len(inputs)} inputs failed (each named above); the others were written')
    return written


if __name__ == '__main__':
    run_cli(main)
