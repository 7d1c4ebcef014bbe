"""Write a reproducible real-world test set: fixed-seed degraded LR images next to an HR folder.

    python scripts/make_degraded_testset.py load/benchmark/Set5/HR
    python scripts/make_degraded_testset.py load/sample/benchmark/Sample5/HR --scales 2 3 4 2.5 --seed 0
    python scripts/make_degraded_testset.py HR/ --options my_recipe.yaml --out elsewhere/LR_degraded

For every scale s and HR image <stem>.<ext> it writes <out>/X<s>/<stem>.png (default out: the HR
folder's sibling with HR at the end of its name replaced by LR_degraded: Set5/LR_degraded,
DIV2K_valid_LR_degraded), the LR of floor(H / s) x floor(W / s) pixels made from the HR's top
left round(h * s) x round(w * s) by the high-order degradation model of training
(sr-implicit-degraded; docs/design.md §3.1) with Real-ESRNet's ranges, or those of --options (a
YAML mapping of recipe keys). Each image's degradation follows from (--seed, file name, scale)
alone, so the same command gives the same files on any machine, in any order. <out>/recipe.json
records the options, seed and scales. The test configs configs/test/*-real-*.yaml and
scripts/test-real.sh evaluate on these folders.

Nothing is overwritten: a scale folder that exists is refused (remove it or give another --out).
Each scale is written to a hidden temporary folder and renamed into place when complete, so an
interrupted run leaves no partial X<s> folder.
"""
import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import zlib
from pathlib import Path

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datasets.degradations import degrade_seeded  # noqa: E402
from datasets.image_store import list_images, read_image, to_tensor, to_uint8  # noqa: E402
from datasets.recipe import make_recipe  # noqa: E402
from utils.config import load_yaml  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import atomic_write_text, same_file  # noqa: E402

DEFAULT_SCALES = (2, 3, 4, 2.5)


def scale_folder(s: float) -> str:
    """'X4' for 4, 'X2.5' for 2.5."""
    return f'X{s:g}'


def image_seed(seed: int, name: str, s: float) -> int:
    """The degradation seed of one image at one scale: (seed, file name, scale) alone."""
    return zlib.crc32(f'{seed}/{name}/{s:g}'.encode()) | (seed << 32)


def degraded_lr(hr_path: str, s: float, recipe, seed: int):
    """The degraded LR of one HR file at scale s, as a uint8 (h, w, 3) array."""
    hr = to_tensor(read_image(hr_path))
    h_lr, w_lr = math.floor(hr.shape[-2] / s + 1e-9), math.floor(hr.shape[-1] / s + 1e-9)
    if h_lr < 1 or w_lr < 1:
        raise UserError(f'{hr_path} is {hr.shape[-2]}x{hr.shape[-1]}, too small for scale {s:g}')
    crop = hr[:, :round(h_lr * s), :round(w_lr * s)]
    return to_uint8(degrade_seeded(crop, (h_lr, w_lr), recipe, image_seed(seed, os.path.basename(hr_path), s)))


def default_out(hr_root: Path) -> Path:
    """The HR folder's sibling with 'HR' at the end of its name replaced by 'LR_degraded'
    (Set5/HR -> Set5/LR_degraded, DIV2K_valid_HR -> DIV2K_valid_LR_degraded), else
    <name>_LR_degraded."""
    name = hr_root.resolve().name
    return hr_root.resolve().parent / (name[:-2] + 'LR_degraded' if name.endswith('HR') else name + '_LR_degraded')


def check_scales(scales) -> list[float]:
    """Finite scales > 1, each once."""
    for s in scales:
        if not math.isfinite(s) or s <= 1:
            raise UserError(f'--scales must be finite numbers > 1, got {s}')
    if len(set(scales)) != len(scales):
        raise UserError(f'--scales lists a scale twice: {scales}')
    return list(scales)


def write_scale(hr_root: Path, names: list[str], out: Path, s: float, recipe, seed: int) -> Path:
    """Write <out>/X<s>/ through a temporary sibling folder renamed into place; return it."""
    final = out / scale_folder(s)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{final.name}.', suffix='.tmp', dir=out))
    try:
        for name in names:
            lr = degraded_lr(str(hr_root / name), s, recipe, seed)
            Image.fromarray(lr).save(tmp / f'{Path(name).stem}.png')
        if final.exists():  # appeared while we worked: keep it
            raise UserError(f'{final} appeared while writing; nothing was replaced')
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('hr', help='folder of HR images')
    p.add_argument('--scales', type=float, nargs='+', default=list(DEFAULT_SCALES))
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--options', help='YAML mapping of degradation options (recipe keys; default Real-ESRNet)')
    p.add_argument('--out', help='output folder (default: LR_degraded beside the HR folder)')
    args = p.parse_args(argv)
    hr_root = Path(args.hr)
    names = list_images(str(hr_root))
    scales = check_scales(args.scales)
    if not 0 <= args.seed < 2 ** 31:
        raise UserError(f'--seed must be from 0 to 2^31 - 1, got {args.seed}')
    options = load_yaml(args.options) if args.options else {}
    recipe = make_recipe(options, args.options or 'degradation')
    out = Path(args.out) if args.out else default_out(hr_root)
    if out.exists() and same_file(out, hr_root):
        raise UserError(f'--out {out} is the HR folder itself; give another folder')
    busy = [str(out / scale_folder(s)) for s in scales if (out / scale_folder(s)).exists()]
    if busy:
        raise UserError(f'{", ".join(busy)} already exist{"s" if len(busy) == 1 else ""}; remove '
                        f'{"it" if len(busy) == 1 else "them"} or give another --out (nothing is overwritten)')
    try:
        out.mkdir(parents=True, exist_ok=True)
        meta = out / 'recipe.json'
        record = {'hr': str(hr_root), 'seed': args.seed, 'options': options, 'images': len(names)}
        if meta.exists():
            old = json.loads(meta.read_text())
            if {k: old.get(k) for k in ('seed', 'options')} != {'seed': args.seed, 'options': options}:
                raise UserError(f'{meta} records another seed or recipe; give another --out')
            scales_done = old.get('scales', [])
        else:
            scales_done = []
        written = [write_scale(hr_root, names, out, s, recipe, args.seed) for s in scales]
        atomic_write_text(meta, json.dumps({**record, 'scales': sorted(set(scales_done) | set(scales))}, indent=1))
    except OSError as e:
        raise UserError(f'cannot write under {out} ({e.strerror or e})') from None
    for folder in written:
        print(f'wrote {folder} ({len(names)} images)')
    return written


if __name__ == '__main__':
    run_cli(main)
