"""Prepare CelebA-HQ as the CelebA-HQ configs expect it, from the 1024x1024 images.

    python scripts/prepare_celebahq.py SRC [--root load/celebAHQ] [--split split.json | --val 5000]

SRC is the folder of the 30,000 1024x1024 images (`data1024x1024`, any format PIL reads). Writes
  <root>/256/<stem>.png   SRC resized to 256x256 with PIL's bicubic
  <root>/128, /64, /32    the 256x256 images resized the same way (as the LIIF authors made them)
  <root>/split.json       {'train': [...], 'val': [...]}, lists of file names
The LIIF authors' split is a file of their own (split.json, a separate download): pass it with
--split and it is copied (its names are checked against SRC). Without it the split is made here,
reproducibly: names sorted, the last --val of them for validation, the rest for training.
Existing outputs are kept (--force rewrites them). Every file is written atomically.
"""
import json
import os
import sys
from pathlib import Path

from PIL import Image
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datasets.image_store import IMAGE_EXTENSIONS  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import atomic_write, atomic_write_text, refuse_inputs  # noqa: E402

SIZES = (256, 128, 64, 32)  # 256 from the source, the others from 256
BICUBIC = getattr(Image, 'Resampling', Image).BICUBIC


def source_images(src: Path) -> list[Path]:
    """The image files directly in src, sorted by name; a UserError when there are none."""
    if not src.is_dir():
        raise UserError(f'source folder not found: {src}')
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith('.'))
    if not files:
        raise UserError(f'no images in {src} (expected the 1024x1024 CelebA-HQ images)')
    return files


def resize_to(src: Path, dst: Path, size: int) -> None:
    """src resized to size x size (PIL bicubic, RGB) and saved as PNG at dst, atomically."""
    try:
        with Image.open(src) as img:
            out = img.convert('RGB').resize((size, size), BICUBIC)
    except (OSError, ValueError) as e:
        raise UserError(f'cannot read {src} ({str(e).splitlines()[0] if str(e) else type(e).__name__})') from None
    atomic_write(dst, lambda f: out.save(f, format='PNG'))


def make_split(names: list[str], split_file: Path = None, n_val: int = 5000) -> dict:
    """{'train': [...], 'val': [...]}: the given split file's lists (each name must be one of
    `names`), or the last n_val of the sorted names for val and the rest for train."""
    if split_file is not None:
        try:
            split = json.loads(Path(split_file).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f'cannot read split file {split_file} ({e})') from None
        if not isinstance(split, dict) or not all(isinstance(split.get(k), list) for k in ('train', 'val')):
            raise UserError(f"split file {split_file}: expected a JSON object with 'train' and 'val' lists")
        known = set(names)
        missing = [n for k in ('train', 'val') for n in split[k] if n not in known]
        if missing:
            raise UserError(f'split file {split_file}: {missing[0]} is not among the prepared images '
                            f'({len(missing)} names missing)')
        return {'train': list(split['train']), 'val': list(split['val'])}
    if not 0 < n_val < len(names):
        raise UserError(f'--val must be between 1 and {len(names) - 1} for {len(names)} images, got {n_val}')
    names = sorted(names)
    return {'train': names[:-n_val], 'val': names[-n_val:]}


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src', help='folder of the 1024x1024 CelebA-HQ images (data1024x1024)')
    p.add_argument('--root', default='load/celebAHQ', help='output folder (default load/celebAHQ)')
    p.add_argument('--split', type=Path, help="the LIIF authors' split.json, to copy (checked)")
    p.add_argument('--val', type=int, default=5000, help='without --split: images for validation (default 5000)')
    p.add_argument('--force', action='store_true', help='rewrite existing outputs')
    args = p.parse_args(argv)
    files = source_images(Path(args.src))
    root = Path(args.root)
    refuse_inputs(root, {'source folder': args.src, '--split file': args.split}, '--root', folder=True)
    names = [f.stem + '.png' for f in files]
    if len(set(names)) != len(names):
        raise UserError(f'{args.src}: two source files share a name stem; rename one')
    split = make_split(names, args.split, args.val)  # checked before any image is written
    for size in SIZES:
        (root / str(size)).mkdir(parents=True, exist_ok=True)
    for f, name in tqdm(list(zip(files, names)), desc='resize', unit='image'):
        for size in SIZES:
            dst = root / str(size) / name
            if args.force or not dst.is_file():
                resize_to(f if size == SIZES[0] else root / str(SIZES[0]) / name, dst, size)
    atomic_write_text(root / 'split.json', json.dumps(split))
    print(f"wrote {root}/{{{','.join(map(str, SIZES))}}}/ ({len(names)} images each) and {root}/split.json "
          f"(train {len(split['train'])}, val {len(split['val'])})")


if __name__ == '__main__':
    run_cli(main)
