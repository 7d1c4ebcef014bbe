"""Checking that a data folder has the layout the configs expect, and saying what is missing.

Kinds: 'div2k' (load/div2k), 'benchmark' (load/benchmark, the EDSR benchmark pack) and
'sample' (load/sample, made by scripts/prepare_sample_data.py).
Command line: python -m datasets.layout <root> <kind>
"""
import os
from pathlib import Path

from utils.errors import ArgumentParser, UserError, run_cli

from .image_folder import name_key
from .image_store import IMAGE_EXTENSIONS

BENCHMARK_SETS = {'Set5': 5, 'Set14': 14, 'B100': 100, 'Urban100': 100}
SCALES = (2, 3, 4)
KINDS = ('div2k', 'benchmark', 'sample')


def _images(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))


def _check_ids(folder: str, ids: list[str], suffix: str = '') -> list[str]:
    """Problems with folder holding exactly <id><suffix>.png for each id."""
    if not os.path.isdir(folder):
        return [f'missing folder {folder}']
    present = set(_images(folder))
    missing = [f'{i}{suffix}.png' for i in ids if f'{i}{suffix}.png' not in present]
    if missing:
        return [f'{folder}: {len(ids) - len(missing)} of {len(ids)} images; missing {missing[0]}'
                + (f' and {len(missing) - 1} more' if len(missing) > 1 else '')]
    return []


def _check_set(set_root: str, expected: int = None) -> list[str]:
    """Problems with <set_root>/HR and its LR_bicubic/X{2,3,4}/<name>x<s>.png partners."""
    hr = os.path.join(set_root, 'HR')
    if not os.path.isdir(hr):
        return [f'missing folder {hr}']
    stems = [name_key(n, False) for n in _images(hr)]
    problems = []
    if expected is not None and len(stems) != expected:
        problems.append(f'{hr}: {len(stems)} images, expected {expected}')
    elif not stems:
        problems.append(f'{hr}: no images')
    for s in SCALES:
        problems += _check_ids(os.path.join(set_root, 'LR_bicubic', f'X{s}'), stems, f'x{s}')
    return problems


def check_layout(root: str, kind: str) -> list[str]:
    """One line per problem (missing folder, missing or surplus images) of `root` as a data
    folder of `kind`; an empty list means complete."""
    if kind not in KINDS:
        raise UserError(f'unknown data layout {kind!r}; expected one of {", ".join(KINDS)}')
    if not os.path.isdir(root):
        return [f'missing folder {root}']
    if kind == 'div2k':
        train = [f'{i:04d}' for i in range(1, 801)]
        valid = [f'{i:04d}' for i in range(801, 901)]
        problems = _check_ids(os.path.join(root, 'DIV2K_train_HR'), train)
        problems += _check_ids(os.path.join(root, 'DIV2K_valid_HR'), valid)
        for s in SCALES:
            problems += _check_ids(os.path.join(root, 'DIV2K_valid_LR_bicubic', f'X{s}'), valid, f'x{s}')
        return problems
    if kind == 'benchmark':
        return [p for name, n in BENCHMARK_SETS.items() for p in _check_set(os.path.join(root, name), n)]
    problems = []
    for folder in ('train_HR', 'valid_HR'):
        path = os.path.join(root, folder)
        if not os.path.isdir(path) or not _images(path):
            problems.append(f'missing folder {path}' if not os.path.isdir(path) else f'{path}: no images')
    bench = os.path.join(root, 'benchmark')
    sets = sorted(os.listdir(bench)) if os.path.isdir(bench) else []
    if not sets:
        problems.append(f'missing folder {bench} (or it has no sets)')
    for name in sets:
        problems += _check_set(os.path.join(bench, name))
    return problems


# How each kind of data folder is made (the layout checker below says what is missing).
MAKE = {'div2k': 'bash scripts/download_data.sh div2k', 'benchmark': 'bash scripts/download_data.sh benchmark',
        'sample': 'python scripts/prepare_sample_data.py'}


def data_hint(path: str) -> str:
    """What to run when `path` (a dataset folder of a config) is missing: the command that makes
    its data folder and the layout check, e.g. for load/div2k/DIV2K_train_HR 'get it with `bash
    scripts/download_data.sh div2k`, check it with `python -m datasets.layout load/div2k div2k`'."""
    parts = Path(path).parts
    for i, part in enumerate(parts):
        if part in MAKE:
            root = str(Path(*parts[:i + 1]))
            make, where = MAKE[part], ''
            if part == 'sample' and root != 'load/sample':
                make += f' --root {root}'
            elif part != 'sample' and root != f'load/{part}':
                where = ' (it writes to load/)'
            return f'get it with `{make}`{where}, check it with `python -m datasets.layout {root} {part}`'
        if part.lower() == 'celebahq':
            return 'make it with `python scripts/prepare_celebahq.py data1024x1024` (README, Train)'
    return 'the README\'s Data section says how each data folder is made'


def main() -> None:
    parser = ArgumentParser(description='Check a data folder against the expected layout.')
    parser.add_argument('root', help='e.g. load/div2k, load/benchmark, load/sample')
    parser.add_argument('kind', choices=KINDS)
    args = parser.parse_args()
    problems = check_layout(args.root, args.kind)
    for p in problems:
        print(p)
    if problems:
        raise UserError(f'{args.root} is not a complete {args.kind} folder ({len(problems)} problems above)')
    print(f'{args.root}: complete {args.kind} layout')


if __name__ == '__main__':
    run_cli(main)
