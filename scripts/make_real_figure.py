"""The README's real-world picture: one degraded x4 input and what bicubic interpolation, the
bicubic-trained bundled model and the real-world bundled model make of it, beside the ground truth.

    python scripts/make_real_figure.py [--photo /usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg]
        [--crop 96,96,96,96] [--seed 3] [--out docs/x4-real-world.jpg]

The photo (one the models never saw) becomes the HR image as in scripts/eval_real.py and is
degraded by its held-out recipe (Gaussian blur, antialiased bicubic x4 shrink, Gaussian noise,
JPEG) from --seed; --crop TOP,LEFT,H,W (HR pixels) is shown, enlarged --zoom times, each panel
captioned with its PSNR on the crop (RGB).
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_crop import GAP, crop_psnr, panel, parse_crop  # noqa: E402
from eval_real import crop_to_multiple, held_out_degrade, hr_image, render  # noqa: E402
from inference.upscale import Upscaler  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_output  # noqa: E402
from utils.images import write_image  # noqa: E402

SCALE = 4
PHOTO = '/usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg'


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--photo', default=PHOTO, help='a photo the models never saw')
    p.add_argument('--crop', default='96,96,96,96', help='TOP,LEFT,H,W of the region shown, HR pixels')
    p.add_argument('--seed', type=int, default=3)
    p.add_argument('--side', type=int, default=384)
    p.add_argument('--zoom', type=int, default=2)
    p.add_argument('--out', default=str(Path(__file__).resolve().parents[1] / 'docs' / 'x4-real-world.jpg'))
    args = p.parse_args(argv)
    if not Path(args.photo).is_file():
        raise UserError(f'photo not found: {args.photo} (apt-get install python-matplotlib-data, or pass --photo)')
    top, left, h, w = parse_crop(args.crop)
    check_output(args.out, {'--photo': args.photo}, '--out')
    hr, lr_hw = crop_to_multiple(hr_image(Path(args.photo), args.side), SCALE)
    if top + h > hr.shape[0] or left + w > hr.shape[1] or top % SCALE or left % SCALE or h % SCALE or w % SCALE:
        raise UserError(f'--crop must lie inside the {hr.shape[0]}x{hr.shape[1]} HR image on multiples of {SCALE}')
    lr, params = held_out_degrade(hr, lr_hw, np.random.default_rng(args.seed))
    outs = {'bicubic': render('bicubic', lr, hr.shape[:2]),
            'bicubic-trained model': render(Upscaler.load('sample', 'cpu'), lr, hr.shape[:2]),
            'real-world model': render(Upscaler.load('real', 'cpu'), lr, hr.shape[:2])}
    gt = hr[top:top + h, left:left + w]
    lr_cut = lr[top // SCALE:(top + h) // SCALE, left // SCALE:(left + w) // SCALE]
    panels = [panel(lr_cut, args.zoom * SCALE, f'input x{SCALE} (degraded)')]
    psnrs = {}
    for name, out in outs.items():
        cut = out[top:top + h, left:left + w]
        psnrs[name] = crop_psnr(cut, gt)
        panels.append(panel(cut, args.zoom, f'{name} {psnrs[name]:.2f} dB'))
    panels.append(panel(gt, args.zoom, 'ground truth'))
    fig = Image.new('RGB', (sum(q.width for q in panels) + GAP * (len(panels) - 1), panels[0].height), 'white')
    x = 0
    for q in panels:
        fig.paste(q, (x, 0))
        x += q.width + GAP
    write_image(fig, Path(args.out), quality=92)
    print(f'wrote {args.out}: degradation {params}; ' + ', '.join(f'{k} {v:.2f} dB' for k, v in psnrs.items()))
    return psnrs


if __name__ == '__main__':
    run_cli(main)
