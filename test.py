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

from inference.eval_config import check_data_paths, item_names, load_test_spec, make_loader, rewrite_data_root
from inference.evaluate import evaluate
from inference.metrics import parse_eval_type
from inference.norm import DataNorm
from models.loading import load_model
from utils.config import load_yaml
from utils.device import resolve_device
from utils.errors import UserError, run_cli
from utils.files import atomic_write_text, check_output
from utils.precision import PRECISIONS, check_precision

BICUBIC = 'bicubic'
DATA_ENV = 'LIIF_DATA'


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


def prepare_out(out: str, inputs: dict) -> None:
    """Before the evaluation: make --out's folder, refuse an --out that is one of the inputs or
    cannot be written."""
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create the folder of --out {out} ({e.strerror})') from None
    check_output(out, inputs, '--out')


def write_out(out: str, summary: dict) -> None:
    """The JSON summary, written atomically: a failure leaves any previous file whole."""
    try:
        atomic_write_text(out, json.dumps(summary, indent=1))
    except OSError as e:
        raise UserError(f'cannot write --out {out} ({e.strerror or e}); nothing was written') from None


def main(argv=None) -> dict:
    """Run the evaluation; print `ssim: ...` then `result: <psnr>`; return the JSON summary."""
    args = parse_args(argv)
    cfg = load_yaml(args.config)
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    spec = rewrite_data_root(load_test_spec(cfg, args.config), data_root)
    check_data_paths(spec, args.config, data_root, DATA_ENV)
    protocol = parse_eval_type(cfg.get('eval_type'))
    bsize = cfg.get('eval_bsize')
    if bsize is not None and (not isinstance(bsize, int) or isinstance(bsize, bool) or bsize < 1):
        raise UserError(f'{args.config}: eval_bsize must be a positive integer or absent, got {bsize!r}')
    norm = DataNorm.from_config(cfg.get('data_norm'), args.config)
    device = resolve_device(args.gpu)
    check_precision(args.precision, device)

    if args.out:
        prepare_out(args.out, {'--model checkpoint': None if args.model == BICUBIC else args.model,
                               '--config file': args.config})
    loader = make_loader(spec, args.workers, pin_memory=device.type == 'cuda')
    model = None if args.model == BICUBIC else load_model(args.model, device)
    rows = evaluate(model, loader, norm, protocol, bsize, device, args.precision,
                    names=item_names(loader.dataset), progress=not args.quiet, whole=True)
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
        write_out(args.out, summary)
    print(f"ssim: {summary['mean']['ssim']:.4f}")
    print(f"result: {summary['mean']['psnr']:.4f}")
    sys.stdout.flush()
    return summary


if __name__ == '__main__':
    run_cli(main)
