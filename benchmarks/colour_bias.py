"""Colour fidelity of a model on flat colours: an LR image of one colour should upscale to the same
colour. For every colour of a grid (each channel in --levels), a --size^2 flat LR patch is
rendered at x--scale (every output pixel, fp32, clamped to [0, 1] as the demo does, not rounded)
and the mean output minus the colour is its cast, in 8-bit levels per channel.

    python benchmarks/colour_bias.py [--model CKPT] [--scale 4] [--levels 0 64 128 192 255]

Prints the worst colours, then over all colours: the largest |cast| of any channel, the RMS cast,
and how many colours have a channel off by more than 1 and by more than 4 levels. The bicubic
baseline's cast is 0 by construction (its weights sum to 1 on a flat image), so any cast is the
model's. Default model: the bundled pretrained/edsr-baseline-liif-sample.pth.
"""
import argparse
import itertools
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.upscale import BUNDLED_MODEL, Upscaler  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from inference.render import batched_predict  # noqa: E402
from inference.norm import DataNorm  # noqa: E402


@torch.no_grad()
def colour_casts(model, data_norm: DataNorm, colours: torch.Tensor, size: int, scale: int) -> torch.Tensor:
    """colours (N, 3) in [0, 255] -> casts (N, 3) in levels: mean rendered colour minus colour."""
    lr = (colours / 255).view(-1, 3, 1, 1).expand(-1, 3, size, size)
    out_hw = (size * scale, size * scale)
    coord = make_coord(out_hw).view(1, -1, 2).expand(len(colours), -1, -1)
    cell = make_cell(out_hw, coord)
    pred = batched_predict(model, data_norm.inp(lr), coord, cell, 30000)  # (N, Q, 3)
    return data_norm.pred_to_rgb(pred).mul(255).mean(1) - colours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', default=str(BUNDLED_MODEL), help='checkpoint (default: the bundled model)')
    parser.add_argument('--scale', type=int, default=4, help='upscaling factor (default 4)')
    parser.add_argument('--size', type=int, default=16, help='side of the flat LR patch (default 16)')
    parser.add_argument('--levels', type=int, nargs='+', default=[0, 64, 128, 192, 255],
                        help='8-bit values each channel takes (default 0 64 128 192 255)')
    parser.add_argument('--worst', type=int, default=5, help='how many of the worst colours to list')
    args = parser.parse_args()
    if args.scale < 1 or args.size < 1 or any(not 0 <= v <= 255 for v in args.levels):
        raise UserError('--scale and --size must be >= 1 and --levels within 0..255')
    up = Upscaler.load(args.model, 'cpu')
    model, norm = up.model, up.norm
    model.eval()
    colours = torch.tensor(list(itertools.product(args.levels, repeat=3)), dtype=torch.float32)
    casts = torch.cat([colour_casts(model, norm, c, args.size, args.scale) for c in colours.split(25)])
    worst = casts.abs().amax(1)
    print(f'{args.model}: x{args.scale}, {len(colours)} flat colours of {args.size}x{args.size}')
    for i in worst.argsort(descending=True)[:args.worst].tolist():
        c = [int(v) for v in colours[i].tolist()]
        print(f'  colour {c}: cast {[round(v, 2) for v in casts[i].tolist()]} levels')
    print(f'max |cast| {worst.max():.2f} levels, RMS cast {casts.pow(2).mean().sqrt():.2f} levels, '
          f'colours off by > 1 level: {int((worst > 1).sum())}/{len(colours)}, '
          f'> 4 levels: {int((worst > 4).sum())}/{len(colours)}')


if __name__ == '__main__':
    run_cli(main)
