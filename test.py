"""Evaluate a model (or plain bicubic) on a test set: PSNR and SSIM under the paper's protocols.

    python test.py --config configs/test/test-div2k-4.yaml --model save/edsr-baseline-liif.pth
    python test.py --config configs/test/test-set5-2.yaml --model bicubic --data-root load/sample

The last line printed is `result: <mean PSNR>` (the paper's script prints the same; the
benchmark scripts parse it), preceded by `ssim: <mean SSIM>`. `--out` writes per-image and
mean values as JSON. The bicubic baseline upsamples the LR input with PIL's bicubic on the
8-bit image (datasets.resize.resize_fn 'pil', the same resize the data pipeline downsamples with).
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

import datasets
from datasets.resize import resize_fn
from utils.checkpoint import load_model
from utils.config import load_yaml
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.metrics import Protocol, parse_eval_type, psnr, ssim
from utils.precision import PRECISIONS, autocast, check_precision
from utils.render import batched_predict
from utils.trainer_data import DataNorm

BICUBIC = 'bicubic'
DATA_ENV = 'LIIF_DATA'
LOAD_PREFIX = 'load'  # configs name their data ./load/...; --data-root replaces this folder


def rewrite_data_root(spec, data_root: Optional[str]):
    """A copy of a dataset spec whose paths under ./load are moved under data_root
    ('./load/benchmark/Set5/HR' -> '<data_root>/benchmark/Set5/HR'); other values untouched."""
    if isinstance(spec, dict):
        return {k: rewrite_data_root(v, data_root) for k, v in spec.items()}
    if isinstance(spec, list):
        return [rewrite_data_root(v, data_root) for v in spec]
    if data_root is None or not isinstance(spec, str):
        return spec
    parts = Path(spec).parts
    if parts and parts[0] == LOAD_PREFIX:
        return str(Path(data_root, *parts[1:]))
    return spec


def data_paths(spec) -> list[str]:
    """Every folder (root_path*) and split file a dataset spec reads from."""
    if isinstance(spec, dict):
        found = []
        for k, v in spec.items():
            if isinstance(v, str) and (k.startswith('root_path') or k == 'split_file'):
                found.append(v)
            else:
                found += data_paths(v)
        return found
    if isinstance(spec, list):
        return [p for v in spec for p in data_paths(v)]
    return []


def load_test_spec(cfg: dict, config: str) -> dict:
    """The config's test_dataset block, checked: dataset and wrapper specs, batch_size."""
    spec = cfg.get('test_dataset')
    if not isinstance(spec, dict):
        raise UserError(f"{config}: missing 'test_dataset' (with 'dataset', 'wrapper' and 'batch_size')")
    for key in ('dataset', 'wrapper'):
        if not (isinstance(spec.get(key), dict) and isinstance(spec[key].get('name'), str)):
            raise UserError(f"{config}: test_dataset.{key} must be a spec with a 'name' (and 'args')")
    bs = spec.get('batch_size', 1)
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise UserError(f'{config}: test_dataset.batch_size must be a positive integer, got {bs!r}')
    return spec


def hr_size(cell: Tensor, n_query: int) -> tuple[int, int]:
    """(H, W) of the HR grid behind a full-image sample: cell = (2 / H, 2 / W) for every query."""
    h, w = round(2 / cell[0, 0, 0].item()), round(2 / cell[0, 0, 1].item())
    if h * w != n_query:
        raise UserError(f'the test wrapper gave {n_query} queries, not the {h}x{w} pixels of the HR '
                        'image (is sample_q set? evaluation needs every pixel)')
    return h, w


def bicubic_upsample(inp: Tensor, size: tuple[int, int]) -> Tensor:
    """LR (B, 3, h, w) in [0, 1] -> (B, 3, H, W): PIL's bicubic on the 8-bit image, per image."""
    return torch.stack([resize_fn(x, size, 'pil') for x in inp])


def predict(model: Optional[nn.Module], batch: dict, norm: DataNorm, bsize: Optional[int],
            device: torch.device, precision: str) -> tuple[Tensor, Tensor]:
    """One batch -> (pred, gt), both (B, 3, H, W) in [0, 1]; model None means bicubic."""
    inp, coord, cell, gt = (batch[k].to(device) for k in ('inp', 'coord', 'cell', 'gt'))
    b, q = gt.shape[:2]
    h, w = hr_size(cell, q)
    gt = gt.view(b, h, w, 3).permute(0, 3, 1, 2)  # (B, 3, H, W)
    if model is None:
        return bicubic_upsample(inp, (h, w)), gt
    with autocast(device, precision):
        pred = batched_predict(model, norm.inp(inp), coord, cell, bsize or q)  # (B, Q, 3)
    return norm.pred_to_rgb(pred.float()).view(b, h, w, 3).permute(0, 3, 1, 2), gt  # (B, 3, H, W)


def evaluate(model: Optional[nn.Module], loader: DataLoader, norm: DataNorm, protocol: Protocol,
             bsize: Optional[int], device: torch.device, precision: str = 'fp32',
             names: Optional[list[str]] = None, progress: bool = True) -> list[dict]:
    """Per-image results [{'index', 'name', 'lr_size', 'hr_size', 'psnr', 'ssim'}] of `model`
    (None: bicubic) over `loader`."""
    rows = []
    bar = tqdm(loader, desc='test', leave=False, disable=not progress)
    for batch in bar:
        pred, gt = predict(model, batch, norm, bsize, device, precision)
        lr_size = list(batch['inp'].shape[-2:])
        for p, s in zip(psnr(pred, gt, protocol).tolist(), ssim(pred, gt, protocol).tolist()):
            i = len(rows)
            rows.append({'index': i, 'name': names[i] if names else str(i), 'lr_size': lr_size,
                         'hr_size': list(gt.shape[-2:]), 'psnr': p, 'ssim': s})
        bar.set_postfix(psnr=f"{statistics.fmean(r['psnr'] for r in rows):.4f}")
    return rows


def item_names(dataset) -> Optional[list[str]]:
    """File names behind a wrapped dataset's items, if its inner dataset can describe them."""
    inner = getattr(dataset, 'dataset', None)
    if inner is None or not hasattr(inner, 'describe'):
        return None
    return [inner.describe(i) for i in range(len(dataset))]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='a test config (configs/test/*.yaml)')
    p.add_argument('--model', required=True, help=f"a checkpoint, or '{BICUBIC}' for the bicubic baseline")
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--out', default=None, help='write per-image and mean results to this JSON file')
    p.add_argument('--precision', default='fp32', choices=PRECISIONS)
    p.add_argument('--data-root', default=None,
                   help=f'folder replacing ./load in the config paths (default: ${DATA_ENV} if set)')
    p.add_argument('--workers', type=int, default=0, help='DataLoader workers (default 0)')
    p.add_argument('--quiet', action='store_true', help='no progress bar')
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Run the evaluation; print `ssim: ...` then `result: <psnr>`; return the JSON summary."""
    args = parse_args(argv)
    cfg = load_yaml(args.config)
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    spec = rewrite_data_root(load_test_spec(cfg, args.config), data_root)
    for path in data_paths(spec):
        if not os.path.exists(path):
            raise UserError(f'dataset folder not found: {path} (config {args.config}'
                            + (f', data root {data_root})' if data_root else '; set --data-root or $LIIF_DATA)'))
    protocol = parse_eval_type(cfg.get('eval_type'))
    bsize = cfg.get('eval_bsize')
    if bsize is not None and (not isinstance(bsize, int) or isinstance(bsize, bool) or bsize < 1):
        raise UserError(f'{args.config}: eval_bsize must be a positive integer or absent, got {bsize!r}')
    norm = DataNorm.from_config(cfg.get('data_norm'), args.config)
    device = resolve_device(args.gpu)
    check_precision(args.precision, device)

    dataset = datasets.make(spec['wrapper'], args={'dataset': datasets.make(spec['dataset'])})
    loader = DataLoader(dataset, batch_size=spec.get('batch_size', 1), shuffle=False,
                        num_workers=args.workers, pin_memory=device.type == 'cuda')
    model = None if args.model == BICUBIC else load_model(args.model, device)
    rows = evaluate(model, loader, norm, protocol, bsize, device, args.precision,
                    names=item_names(dataset), progress=not args.quiet)
    if not rows:
        raise UserError(f'{args.config}: the test dataset is empty')
    summary = {
        'config': args.config, 'model': args.model, 'dataset': spec, 'data_root': data_root,
        'eval_type': protocol.eval_type, 'protocol': protocol.describe(), 'scale': protocol.scale,
        'border': protocol.crop, 'luminance': protocol.luminance, 'precision': args.precision,
        'eval_bsize': bsize, 'num_images': len(rows),
        'mean': {'psnr': statistics.fmean(r['psnr'] for r in rows),
                 'ssim': statistics.fmean(r['ssim'] for r in rows)},
        'images': rows,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=1)
    print(f"ssim: {summary['mean']['ssim']:.4f}")
    print(f"result: {summary['mean']['psnr']:.4f}")
    sys.stdout.flush()
    return summary


if __name__ == '__main__':
    run_cli(main)
