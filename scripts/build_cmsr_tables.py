"""Calibrate CMSR's threshold tables for an LMF model (docs/design.md §2.7), as the LMF authors'
init_cmsr.py: for target scale S, over the images of a test config (downsampled by S on the fly),
find per decode scale the largest complexity measure up to which rendering at that scale and
upsampling stays within an MSE budget of the exact render.

    python scripts/build_cmsr_tables.py --config configs/test/test-div2k-6.yaml --model MODEL.pth \\
        --out configs/cmsr/my-model.yaml [--scale 6] [--mse 2e-5]

The authors calibrate on the DIV2K *training* images (a config whose image folder is
./load/div2k/DIV2K_train_HR) with --mse 2e-5, one run per scale (2, 3, 4, 6, 12, 18). --out
collects the scales: when it exists, its other scales are kept and this scale's table is refined
further from its current values (its thresholds only ever go down), then the file is rewritten
atomically. Use the result with test.py/demo.py --cmsr.
"""
import argparse
import math
import os
import sys
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from datasets import spec_inputs  # noqa: E402
from inference.eval_config import make_loader, read_test_config  # noqa: E402
from inference.norm import DataNorm  # noqa: E402
from inference.window import cell_clip, mirror_pad, resolve_window, window_frame  # noqa: E402
from models.cmsr import new_table, read_tables  # noqa: E402
from models.loading import load_model_checkpoint  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import atomic_write_text, check_output  # noqa: E402

DATA_ENV = 'LIIF_DATA'


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='a test config whose HR images calibrate (its scale: --scale)')
    p.add_argument('--model', required=True, help='an LMF checkpoint (lmliif, lmlte)')
    p.add_argument('--out', required=True, help='the table file to write (updated when it exists)')
    p.add_argument('--scale', type=float, default=None, help="the target scale (default: the config's)")
    p.add_argument('--mse', type=float, default=2e-5, help='the MSE budget per measure (the authors: 2e-5)')
    p.add_argument('--data-root', default=None, help=f'folder replacing ./load in the config (default: ${DATA_ENV})')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu'")
    p.add_argument('--window', default='auto', help="mirror padding for window encoders: 'auto', 'off' or a size")
    return p.parse_args(argv)


def table_text(tables: dict) -> str:
    """The tables as YAML, target and decode scales ascending (ints where whole)."""
    def key(v: float):
        return int(v) if float(v).is_integer() else float(v)
    ordered = {key(s): {key(k): t[k] for k in sorted(t)} for s, t in sorted(tables.items())}
    return '# CMSR threshold tables (scripts/build_cmsr_tables.py, docs/design.md §2.7)\n' + \
        yaml.safe_dump(ordered, sort_keys=False)


def main(argv=None) -> dict:
    """Calibrate; returns (and writes to --out) every table of the file."""
    args = parse_args(argv)
    if not (math.isfinite(args.mse) and args.mse > 0):
        raise UserError(f'--mse must be a positive number, got {args.mse}')
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    plan = read_test_config(args.config, data_root, DATA_ENV, args.scale)
    check_output(args.out, {'--model checkpoint': args.model, '--config file': args.config, **spec_inputs(plan.spec)})
    scale = plan.protocol.scale if args.scale is None else args.scale
    if scale is None or not scale > 1:
        raise UserError(f'{args.config}: give --scale (its eval_type names no scale)')
    device = resolve_device(args.gpu)
    ckpt, model = load_model_checkpoint(args.model, device)
    if not callable(getattr(model, 'calibrate_cmsr', None)):
        raise UserError(f"{args.model}: CMSR is calibrated for LMF models (lmliif, lmlte), not {ckpt['model']['name']!r}")
    norm = DataNorm.from_checkpoint(ckpt, args.model)
    window = resolve_window(args.window, model)
    tables = read_tables(args.out) if Path(args.out).is_file() else {}
    table = tables.get(scale, new_table(scale))
    for batch in tqdm(make_loader(plan.spec), desc=f'calibrate x{scale:g}', leave=False):
        x = norm.inp(batch['inp'].to(device))
        coord, cell = batch['coord'].to(device), batch['cell'].to(device)
        if window:  # as the authors: the padded input, its whole scale-times grid
            (pad_h, pad_w), _ = window_frame(x.shape[-2:], window)
            x = mirror_pad(x, pad_h, pad_w)
            size = (round(scale * x.shape[-2]), round(scale * x.shape[-1]))
            coord = make_coord(size, device=device).unsqueeze(0)
            cell = make_cell(size, coord)
        with torch.no_grad():
            model.gen_feat(x)
            table = model.calibrate_cmsr(table, coord, cell * cell_clip(scale, model.max_scale), args.mse)
    tables[scale] = table
    atomic_write_text(args.out, table_text(tables))
    print(f'x{scale:g}: {table_text({scale: table}).splitlines()[1:]}')
    print(f'wrote {args.out}')
    return tables


if __name__ == '__main__':
    run_cli(main)
