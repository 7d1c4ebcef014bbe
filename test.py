"""Evaluate a model (or plain bicubic) on a test set: PSNR and SSIM under the paper's protocols.

    python test.py --config configs/test/test-div2k-4.yaml --model save/edsr-baseline-liif.pth
    python test.py --config configs/test/test-set5-2.yaml --model bicubic --data-root load/sample

The protocol actually used is printed first, in one line (e.g. `x2.5: LR made on the fly (PIL
bicubic), border 3, Y`). The last line printed is `result: <mean PSNR>` (the paper's script prints
the same; the benchmark scripts parse it), preceded by `ssim: <mean SSIM>`. `--out` writes
per-image and mean values as JSON, with their provenance: the checkpoint (path, epoch, a 12-digit
sha256 of the file, model family and encoder) and the protocol's parts. `--set KEY.PATH=VALUE`
overrides a test-config value (`--cell-scale-max S` is `--set cell_scale_max=S`). Models whose
encoder has an attention window (SwinIR) are evaluated on inputs mirror-padded to the window, as the
LTE authors do (--window). A test config may set
`cell_scale_max: S` (LTE's evaluation option): beyond scale S the decoder gets the cell of scale S;
without it, a model's own clip applies (LMF: 4, as its authors evaluate). `--cmsr TABLES.yaml`
renders an LMF model with CMSR, its authors' approximation beyond x4 (configs/cmsr/), the whole
output grid in one call.
SRNO and HIIF attend over the queries of a call: by default each image is one group (computed in
bounded memory), or blocks of N rows with `attention_rows: N` in the config or --attention-rows N
(the authors' chunked prediction, their eval_bsize counted in rows).
The bicubic baseline upsamples the LR input with PIL's bicubic on the
8-bit image (datasets.resize.resize_fn 'pil', the same resize the data pipeline downsamples with).
"""
import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from datasets import spec_inputs
from inference.eval_config import DATA_ENV, MAX_WORKERS, item_names, make_loader, read_test_config, target_names
from inference.evaluate import PredictionWriter, evaluate, prepare_image_folder
from inference.groups import WHOLE, attends, group_note, group_rows, parse_attention_rows
from inference.norm import DataNorm
from inference.provenance import check_label, checkpoint_record, dataset_name, protocol_record
from inference.render import resolve_cell_scale_max
from inference.window import resolve_window
from models.cmsr import enable_cmsr
from models.loading import load_model_checkpoint
from utils.config import Checker
from utils.device import resolve_device
from utils.errors import ArgumentParser, UserError, run_cli
from utils.files import atomic_write_text, check_output, is_within
from utils.precision import PRECISIONS, check_precision

BICUBIC = 'bicubic'


def model_norm(ckpt: dict, model_path: str, config_norm: DataNorm, config: str) -> DataNorm:
    """The normalisation the model was trained with (its checkpoint's); a note on stderr when the
    test config asks for another, which is then not used."""
    norm = DataNorm.from_checkpoint(ckpt, model_path)
    if norm != config_norm:
        print(f'note: {config} asks for data_norm {config_norm.describe()}; using the model\'s own, '
              f'{norm.describe()} ({model_path} was trained with it)', file=sys.stderr)
    return norm


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='a test config (configs/test/*.yaml)')
    p.add_argument('--model', required=True, help=f"a checkpoint, or '{BICUBIC}' for the bicubic baseline")
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--out', default=None, help='write per-image and mean results to this JSON file')
    p.add_argument('--precision', default='fp32', choices=PRECISIONS)
    p.add_argument('--data-root', default=None,
                   help=f'folder replacing ./load in the config paths (default: ${DATA_ENV} if set)')
    p.add_argument('--workers', type=int, default=0, help='DataLoader workers (default 0)')
    p.add_argument('--window', default='auto',
                   help="mirror-pad inputs to the encoder's attention window as the LTE authors evaluate "
                        "SwinIR: 'auto' (when the encoder has a window_size), 'off', or a size")
    p.add_argument('--scale', type=float, default=None,
                   help="evaluate the config's HR images at this scale instead (any real S > 1: LR made "
                        "on the fly with the config's resize, the config's protocol at S, e.g. div2k-2.5)")
    p.add_argument('--attention-rows', default=None,
                   help="SRNO/HIIF: output rows that attend together, as the authors' chunked test (their eval_bsize "
                        "in rows), or 'whole' for the whole image (default: the config's attention_rows, else whole)")
    p.add_argument('--save-images', metavar='DIR', default=None,
                   help='also write each super-resolved image to DIR (a new folder) as an 8-bit PNG named '
                        'after its ground truth (<stem>.png; images sharing a stem are all <stem>_<k>.png, '
                        'k = 1, 2, ... in dataset order)')
    p.add_argument('--cell-scale-max', type=float, default=None, metavar='S',
                   help="LTE's cell clip: beyond scale S the decoder gets the cell of scale S (overrides the "
                        "config's cell_scale_max; same as --set cell_scale_max=S)")
    p.add_argument('--set', action='append', default=[], metavar='KEY.PATH=VALUE',
                   help='override one test-config value, typed as YAML (repeatable), e.g. --set eval_bsize=10000')
    p.add_argument('--label', default=None,
                   help="the model's name in --out and in results tables (default: the checkpoint's stem, with "
                        "its run folder for epoch-*.pth; 'bicubic')")
    p.add_argument('--cmsr', metavar='TABLES', default=None,
                   help="LMF models: render beyond x4 with CMSR, the authors' multi-scale approximation, "
                        'using these threshold tables (configs/cmsr/*.yaml, scripts/build_cmsr_tables.py)')
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
    resolve_window(args.window, None)  # a malformed --window fails before any work
    if args.label is not None:
        check_label(args.label)
    Checker('test.py').integer(args.workers, '--workers', minimum=0, maximum=MAX_WORKERS)
    if args.out and args.save_images and is_within(args.out, args.save_images):
        raise UserError(f'--out {args.out} is inside --save-images {args.save_images}, which holds the '
                        'predicted images only (one could overwrite it); write --out elsewhere')
    attention_rows = parse_attention_rows(args.attention_rows)
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    sets = args.set + ([f'cell_scale_max={args.cell_scale_max!r}'] if args.cell_scale_max is not None else [])
    plan = read_test_config(args.config, data_root, DATA_ENV, args.scale, sets)
    device = resolve_device(args.gpu)
    check_precision(args.precision, device)
    reads = {'--model checkpoint': None if args.model == BICUBIC else args.model, '--config file': args.config,
             '--cmsr tables': args.cmsr, **spec_inputs(plan.spec)}  # no output may be any of these (nor inside a data folder)
    if args.out:
        prepare_out(args.out, reads)
    loader = make_loader(plan.spec, args.workers, pin_memory=device.type == 'cuda')
    model, norm, source = None, plan.norm, None
    if args.model != BICUBIC:
        ckpt, model = load_model_checkpoint(args.model, device)
        norm = model_norm(ckpt, args.model, norm, args.config)
        source = checkpoint_record(args.model, ckpt, args.label)
        if args.cmsr:
            enable_cmsr(model, args.cmsr)
    elif args.cmsr:
        raise UserError('--cmsr is an option of LMF models, not of the bicubic baseline')
    window = resolve_window(args.window, model)
    if args.attention_rows is None:
        attention_rows = plan.attention_rows
    note = model is not None and group_note(model, attention_rows)
    if note:
        print(f'note: {note}', file=sys.stderr)
    # The clip actually applied (LMF's own 4 without a configured one); SRNO, HIIF: the grouping.
    cell_scale_max = resolve_cell_scale_max(model, plan.cell_scale_max) if model is not None else None
    grouping = (attention_rows or WHOLE) if model is not None and attends(model) else None
    protocol = protocol_record(plan.spec, plan.protocol, cell_scale_max, window, grouping)
    print(protocol['text'])  # the protocol actually used, before the numbers
    writer = None
    if args.save_images:
        folder = prepare_image_folder(args.save_images, reads)
        writer = PredictionWriter(folder, target_names(loader.dataset), len(loader.dataset))
    rows = evaluate(model, loader, norm, plan.protocol, plan.bsize, device, args.precision,
                    names=item_names(loader.dataset), progress=not args.quiet, whole=True,
                    window=window, cell_scale_max=plan.cell_scale_max, on_image=writer, attention_rows=attention_rows)
    if not rows:
        raise UserError(f'{args.config}: the test dataset is empty')
    summary = {
        'config': args.config, 'sets': args.set, 'model': args.model,
        'label': source['label'] if source else (args.label or BICUBIC), 'checkpoint': source,
        'dataset_name': dataset_name(args.config, protocol['scale']), 'dataset': plan.spec, 'data_root': data_root,
        'protocol': protocol, 'eval_type': protocol['eval_type'], 'scale': protocol['scale'],
        'border': protocol['border'], 'luminance': protocol['luminance'], 'precision': args.precision,
        'eval_bsize': plan.bsize, 'window': window, 'cmsr': args.cmsr, 'cell_scale_max': cell_scale_max,
        'attention_rows': group_rows(model, attention_rows) if model is not None else None,
        'num_images': len(rows),
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
