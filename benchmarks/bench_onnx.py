"""ONNX Runtime backend against the PyTorch fast path, fp32, same model, one run: a whole render
(encoder, decoder over every output pixel in chunks, bands, 8-bit result) at x4 (128^2 -> 512^2)
and x30 (32^2 -> 960^2) of a real photo (skimage's astronaut, PIL-bicubic downscaled), as
demo.py renders it through the library's Upscaler.

    python benchmarks/bench_onnx.py [--arch liif|metasr|a-liif|lte | --model CKPT] [--repeats 3]
        [--cases x4 x30] [--side-x4 128] [--side-x30 32] [--bsize 30000] [--threads N] [--query-piece 1024]

The two backends are interleaved in each of --repeats rounds (the machine may be shared); the
best and the median time of each are printed, and the ratio of the best times (PyTorch / ONNX
Runtime: above 1, ONNX Runtime is faster). Both use torch's thread count. Without --model the
weights are random (seed 0), exported to a temporary file first (the export is not timed). The
largest difference between the two 8-bit results is printed too (at most one level expected).
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from bench_decoder import PAPER_MODELS  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402
from inference.norm import DataNorm  # noqa: E402
from inference.onnx_backend import QUERY_PIECE  # noqa: E402
from inference.onnx_export import export_onnx, save_onnx  # noqa: E402
from inference.upscale import Upscaler, as_loaded  # noqa: E402
from models.loading import load_model  # noqa: E402
from utils.checkpoints import load_checkpoint  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402

SCALES = {'x4': 4, 'x30': 30}


def photo(side: int) -> np.ndarray:
    """skimage's astronaut (512^2) resized to side x side with PIL bicubic, uint8 (H, W, 3)."""
    from skimage import data  # a test dependency: only the benchmark needs it
    return np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC))


def timed(up: Upscaler, image, out_hw) -> tuple[float, np.ndarray]:
    """Seconds of one whole render of image at out_hw, and the result."""
    start = time.perf_counter()
    out = np.asarray(up.render_loaded(image, out_hw))
    return time.perf_counter() - start, out


def main() -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', help='a checkpoint (default: the paper-size --arch with random weights)')
    p.add_argument('--arch', default='liif', choices=sorted(PAPER_MODELS))
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--cases', nargs='+', default=list(SCALES), choices=list(SCALES))
    p.add_argument('--side-x4', type=int, default=128, help='input side of the x4 case')
    p.add_argument('--side-x30', type=int, default=32, help='input side of the x30 case')
    p.add_argument('--bsize', type=int, default=30000, help='queries per decoder call (both backends)')
    p.add_argument('--threads', type=int, default=None, help="threads of both backends (default: torch's)")
    p.add_argument('--query-piece', type=int, default=QUERY_PIECE,
                   help='queries per run of the ONNX query stage (the backend runs each chunk in such pieces)')
    args = p.parse_args()
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f'--threads must be at least 1, got {args.threads}')
        torch.set_num_threads(args.threads)
    for flag, value in (('--repeats', args.repeats), ('--side-x4', args.side_x4), ('--side-x30', args.side_x30),
                        ('--bsize', args.bsize), ('--query-piece', args.query_piece)):
        if value < 1:
            raise UserError(f'{flag} must be at least 1, got {value}')
    print(cpu_kind() + f'; onnxruntime {onnxruntime.__version__}', flush=True)
    if args.model:
        model, norm = load_model(args.model), DataNorm.from_checkpoint(load_checkpoint(args.model), args.model)
        name = args.model
    else:
        torch.manual_seed(0)
        model, norm, name = models.make(PAPER_MODELS[args.arch]).eval(), DataNorm.from_config(None), args.arch
    options = dict(precision='fp32', tile=512, bsize=args.bsize)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / 'model.onnx'
        save_onnx(export_onnx(model, norm, name=name), path)
        backends = {'pytorch': Upscaler(model, norm, torch.device('cpu'), **options),
                    'onnxruntime': Upscaler.load(path, 'cpu', backend='onnxruntime', **options)}
        backends['onnxruntime'].model.query_piece = args.query_piece
        print(f'model: {name}, fp32, bsize {args.bsize}, ONNX query pieces of {args.query_piece}, '
              f'{args.repeats} rounds', flush=True)
        print('| case | input | output | PyTorch best / median (s) | ONNX Runtime best / median (s) '
              '| ratio (PyTorch / ORT) | max 8-bit difference |')
        print('|---|---|---|---|---|---|---|')
        for case in args.cases:
            side = args.side_x4 if case == 'x4' else args.side_x30
            image = as_loaded(photo(side))
            out_hw = (side * SCALES[case],) * 2
            times = {k: [] for k in backends}
            outs = {}
            for _ in range(args.repeats):
                for key, up in backends.items():
                    seconds, outs[key] = timed(up, image, out_hw)
                    times[key].append(seconds)
            diff = int(np.abs(outs['pytorch'].astype(int) - outs['onnxruntime'].astype(int)).max())
            best = {k: min(v) for k, v in times.items()}
            cells = ' | '.join(f'{best[k]:.2f} / {statistics.median(times[k]):.2f}' for k in backends)
            print(f'| {case} | {side}x{side} | {out_hw[0]}x{out_hw[1]} | {cells} '
                  f"| {best['pytorch'] / best['onnxruntime']:.2f} | {diff} |", flush=True)


if __name__ == '__main__':
    run_cli(main)
