"""A side-by-side picture for papers and reports: bicubic | model ... | ground truth on a chosen crop,
each panel captioned with its name and PSNR against the ground truth (RGB, over the crop).

    python scripts/compare_crop.py --model CKPT --hr hr.png --scale 4 --crop 40,60,48,48 --out fig.png
    python scripts/compare_crop.py --model LIIF=liif.pth --model LTE=lte.pth --hr hr.png --scale 4 \
        --crop 40,60,48,48 --out fig.png                                   # bicubic | LIIF | LTE | GT
    python scripts/compare_crop.py --model CKPT --hr hr.png --lr lr_x4.png --crop 40,60,48,48 --zoom 4 --out fig.png

The LR input is --lr, or the HR image cropped to a multiple of --scale and shrunk with PIL's
bicubic (the data pipeline's resize). Each --model (a checkpoint, or NAME=CHECKPOINT; repeatable;
default the bundled demo model) renders the whole image at the HR size (its checkpoint's
normalisation, window padding for SwinIR); its panel is captioned NAME (default: the checkpoint's
name, utils.checkpoints.checkpoint_label). --crop TOP,LEFT,H,W (height first, HR pixels) is then
cut from each result and enlarged --zoom times with nearest neighbours.
"""
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.provenance import check_label  # noqa: E402
from inference.upscale import BUNDLED_MODEL, Upscaler  # noqa: E402
from utils.checkpoints import checkpoint_label  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import check_output  # noqa: E402
from utils.config import Checker  # noqa: E402
from utils.images import check_format, check_output_size, output_format, read_image, write_image  # noqa: E402

CAPTION = 14  # pixels of caption under each panel
MAX_FIGURE_MEGAPIXELS = 100
GAP = 4


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """'40,60,48,48' -> (top, left, height, width)."""
    try:
        top, left, h, w = (int(v) for v in text.split(','))
    except ValueError:
        raise UserError(f'--crop expects TOP,LEFT,H,W (four integers, height first), got {text!r}') from None
    if top < 0 or left < 0 or h < 1 or w < 1:
        raise UserError(f'--crop expects TOP,LEFT >= 0 and H,W >= 1, got {text!r}')
    return top, left, h, w


def crop_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """PSNR in dB of two uint8 crops (RGB, every pixel); inf when they are equal."""
    mse = np.mean((pred.astype(np.float64) - gt.astype(np.float64)) ** 2) / 255 ** 2
    return math.inf if mse == 0 else -10 * math.log10(mse)


def panel(crop: np.ndarray, zoom: int, caption: str) -> Image.Image:
    """A crop enlarged `zoom` times (nearest) with a caption strip under it."""
    img = Image.fromarray(crop).resize((crop.shape[1] * zoom, crop.shape[0] * zoom), Image.NEAREST)
    out = Image.new('RGB', (img.width, img.height + CAPTION), 'white')
    out.paste(img, (0, 0))
    ImageDraw.Draw(out).text((2, img.height + 1), caption, fill='black')
    return out


def split_model(item: str) -> tuple[str, str]:
    """'LTE=save/lte/epoch-best.pth' -> ('LTE', path); a bare path is named by checkpoint_label."""
    name, sep, path = item.partition('=')
    if sep and name and '/' not in name and not Path(item).exists():
        return check_label(name, f'--model {item}: NAME'), path
    return checkpoint_label(item), item


def compare(models: dict, hr: np.ndarray, lr: np.ndarray, crop: tuple[int, int, int, int],
            zoom: int) -> tuple[Image.Image, dict]:
    """(figure, {'bicubic': psnr, name: psnr, ...}) for `models` {name: Upscaler} and uint8 HR
    (H, W, 3) and LR images: panels bicubic, each model in order, ground truth."""
    top, left, h, w = crop
    if top + h > hr.shape[0] or left + w > hr.shape[1]:
        raise UserError(f'--crop {top},{left},{h},{w} reaches beyond the {hr.shape[0]}x{hr.shape[1]} (HxW) HR image')
    size = hr.shape[:2]
    results = {'bicubic': np.asarray(Image.fromarray(lr).resize((size[1], size[0]), Image.BICUBIC))}
    for name, up in models.items():
        results[name] = up(lr, resolution=size)
    gt = hr[top:top + h, left:left + w]
    psnrs = {k: crop_psnr(v[top:top + h, left:left + w], gt) for k, v in results.items()}
    panels = [panel(v[top:top + h, left:left + w], zoom, f'{k} {psnrs[k]:.2f} dB') for k, v in results.items()]
    panels.append(panel(gt, zoom, 'ground truth'))
    fig = Image.new('RGB', (sum(p.width for p in panels) + GAP * (len(panels) - 1), panels[0].height), 'white')
    x = 0
    for p in panels:
        fig.paste(p, (x, 0))
        x += p.width + GAP
    return fig, psnrs


def main(argv=None) -> dict:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', action='append', default=[],
                   help='checkpoint or NAME=CHECKPOINT, repeatable: one panel each, in order (default: the bundled '
                        'demo model)')
    p.add_argument('--hr', required=True, help='the ground-truth image')
    p.add_argument('--lr', help='the LR input (default: the HR image shrunk by --scale)')
    p.add_argument('--scale', type=float, help='with no --lr: the factor to shrink the HR image by')
    p.add_argument('--crop', required=True, help='TOP,LEFT,H,W of the region to show, in HR pixels')
    p.add_argument('--zoom', type=int, default=3, help='enlargement of the crops (nearest neighbour, default 3)')
    p.add_argument('--out', required=True, help='the figure (.png, .jpg, ...)')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    args = p.parse_args(argv)
    crop = parse_crop(args.crop)
    if (args.lr is None) == (args.scale is None):
        raise UserError('give --lr or --scale (the factor to make the LR input with)')
    if args.zoom < 1:
        raise UserError(f'--zoom must be at least 1, got {args.zoom}')
    named = [split_model(m) for m in args.model] or [(checkpoint_label(BUNDLED_MODEL), None)]
    names = [n for n, _ in named]
    if len(set(names)) < len(names) or 'bicubic' in names:
        raise UserError(f"--model names must differ from each other and from 'bicubic' (got {', '.join(names)}); "
                        'name them NAME=CHECKPOINT')
    fmt = output_format(args.out)
    check_format(fmt, args.out)
    check_output(args.out, {'--hr image': args.hr, '--lr image': args.lr,
                            **{f'--model {n}': path or BUNDLED_MODEL for n, path in named}}, '--out')
    # The figure: a panel per model, bicubic and the ground truth, each the crop enlarged --zoom times
    # and captioned, side by side.
    panels = len(named) + 2
    check_output_size((crop[2] * args.zoom + CAPTION, panels * crop[3] * args.zoom + (panels - 1) * GAP), fmt,
                      MAX_FIGURE_MEGAPIXELS, False)
    if args.scale is not None:
        Checker('compare_crop.py').number(args.scale, '--scale', positive=True)
        if not args.scale > 1:
            raise UserError(f'--scale must be > 1, got {args.scale:g}')
    hr = read_image(args.hr, what='--hr image').rgb
    if args.lr is not None:
        lr = read_image(args.lr, what='--lr image').rgb
    else:
        h, w = (math.floor(n / args.scale + 1e-9) for n in hr.shape[:2])
        if h < 1 or w < 1:
            raise UserError(f'--hr image {args.hr} is {hr.shape[0]}x{hr.shape[1]} (HxW): too small to shrink by '
                            f'--scale {args.scale:g}')
        hr = hr[:round(h * args.scale), :round(w * args.scale)]
        lr = np.asarray(Image.fromarray(hr).resize((w, h), Image.BICUBIC))
    models = {n: Upscaler.load(path, args.gpu) for n, path in named}
    fig, psnrs = compare(models, hr, lr, crop, args.zoom)
    write_image(fig, Path(args.out), fmt)
    print(f'wrote {args.out}: ' + ', '.join(f'{k} {v:.2f} dB' for k, v in psnrs.items()) + ' on the crop')
    return psnrs


if __name__ == '__main__':
    run_cli(main)
