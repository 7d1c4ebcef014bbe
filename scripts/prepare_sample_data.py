"""Assemble a small real dataset in load/sample from the photographs scikit-image ships.

Layout (EDSR benchmark-pack style for the benchmark part):
  train_HR/<name>.png                           8 photos, full size (training crops)
  valid_HR/<name>.png                           2 photos, full size
  benchmark/<Set>/HR/<name>.png                 centre crops of at most 256x256
  benchmark/<Set>/LR_bicubic/X{2,3,4}/<name>x{s}.png
LR images: HR cropped at the top left to a multiple of s, then MATLAB-compatible bicubic by
1/s rounded to 8 bits, as the EDSR pack was made. Grayscale photos are stored as RGB. Train,
valid and benchmark photos are disjoint. No network: files are read from skimage's data folder.

Usage: python scripts/prepare_sample_data.py [--root load/sample] [--force]
"""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datasets.resize import imresize_matlab_uint8  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402

TRAIN = {'astronaut': 'astronaut.png', 'chelsea': 'chelsea.png', 'rocket': 'rocket.jpg',
         'hubble': 'hubble_deep_field.jpg', 'ihc': 'ihc.png', 'motorcycle': 'motorcycle_left.png',
         'brick': 'brick.png', 'gravel': 'gravel.png'}
VALID = {'coffee': 'coffee.png', 'grass': 'grass.png'}
BENCHMARK = {'Sample5': {'camera': 'camera.png', 'coins': 'coins.png', 'moon': 'moon.png',
                         'retina': 'retina.jpg', 'page': 'page.png'},
             'Sample3': {'text': 'text.png', 'cell': 'cell.png', 'clock': 'clock_motion.png'}}
SCALES = (2, 3, 4)
BENCHMARK_MAX_SIDE = 256  # keeps CPU evaluation quick


def skimage_photo(file_name: str) -> np.ndarray:
    """A photo from scikit-image's bundled data folder as uint8 (H, W, 3); never downloads."""
    try:
        from skimage import data
    except ImportError:
        raise UserError('scikit-image is needed to build the sample data (pip install scikit-image)') from None
    path = os.path.join(data.data_dir, file_name)
    if not os.path.isfile(path):
        raise UserError(f'{path} is missing from this scikit-image install (it must ship locally)')
    with Image.open(path) as im:
        return np.array(im.convert('RGB'))


def centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    """img (H, W, 3) -> its centre crop of at most side x side."""
    h, w = img.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top:top + side, left:left + side]


def benchmark_lr(hr: np.ndarray, s: int) -> np.ndarray:
    """HR (H, W, 3) uint8 -> LR (H // s, W // s, 3) uint8: HR cropped to a multiple of s,
    MATLAB-compatible bicubic by 1 / s, rounded."""
    h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
    return imresize_matlab_uint8(hr[:h, :w], scale=1 / s)


def planned_files(root: str) -> dict:
    """Every output path -> a function making its uint8 (H, W, 3) array."""
    plan = {}
    for folder, photos in (('train_HR', TRAIN), ('valid_HR', VALID)):
        for name, file_name in photos.items():
            plan[os.path.join(root, folder, f'{name}.png')] = lambda f=file_name: skimage_photo(f)
    for set_name, photos in BENCHMARK.items():
        set_root = os.path.join(root, 'benchmark', set_name)
        for name, file_name in photos.items():
            def hr(f=file_name): return centre_crop(skimage_photo(f), BENCHMARK_MAX_SIDE)
            plan[os.path.join(set_root, 'HR', f'{name}.png')] = hr
            for s in SCALES:
                plan[os.path.join(set_root, 'LR_bicubic', f'X{s}', f'{name}x{s}.png')] = \
                    lambda hr=hr, s=s: benchmark_lr(hr(), s)
    return plan


def write_png(path: str, img: np.ndarray) -> None:
    """Write img (H, W, 3) uint8 to path atomically."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp.png'
    Image.fromarray(img).save(tmp)
    os.replace(tmp, path)


def prepare(root: str, force: bool = False) -> list[str]:
    """Write the files of the sample layout that are missing (all with force); return them."""
    written = []
    for path, make_img in planned_files(root).items():
        if force or not os.path.isfile(path):
            write_png(path, make_img())
            written.append(path)
    return written


def main() -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='load/sample', help='output folder (default load/sample)')
    parser.add_argument('--force', action='store_true', help='rewrite every file')
    args = parser.parse_args()
    try:
        written = prepare(args.root, args.force)
    except OSError as e:
        raise UserError(f'cannot write the sample data under {args.root}: {e}') from None
    total = len(planned_files(args.root))
    if not written:
        print(f'{args.root}: complete ({total} files), nothing to do')
        return
    for path in written:
        with Image.open(path) as im:
            print(f'wrote {path} ({im.size[1]}x{im.size[0]} HxW)')
    print(f'{args.root}: {len(written)} of {total} files written')


if __name__ == '__main__':
    run_cli(main)
