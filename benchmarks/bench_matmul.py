"""GFLOP/s of the decoder's hidden layer (rows x 256 -> 256, bias, ReLU) on this CPU, by row
count and implementation, next to one large square matrix product (the machine's ceiling).

    python benchmarks/bench_matmul.py [--rows 1024 4096 16384] [--repeats 20] [--threads N]

This is what bounds the fast decoder path (models/fast_query.py): per output pixel it runs four
ensemble corners through three such layers, which the plain path runs too, so the fast path's
exact speed-up is limited by how fast these products go. Implementations: `F.linear` then an
in-place ReLU (what nn.Sequential does), and oneDNN's fused linear + ReLU
(`torch.ops.mkldnn._linear_pointwise`, used by fast_query.linear without gradients), each in fp32
and bf16, the best of --repeats runs.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from models.fused import FUSED_LINEAR  # noqa: E402
from utils.errors import run_cli  # noqa: E402


def best_seconds(fn, repeats: int) -> float:
    fn()  # warm up (oneDNN primitive creation)
    best = float('inf')
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--rows', type=int, nargs='+', default=[1024, 4096, 16384])
    p.add_argument('--width', type=int, default=256)
    p.add_argument('--repeats', type=int, default=20)
    p.add_argument('--threads', type=int, help="torch threads (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.width
    w32, b32 = torch.randn(n, n) / n ** 0.5, torch.randn(n) * 0.01
    print(f'{torch.get_num_threads()} threads, torch {torch.__version__}; best of {args.repeats}\n')
    print(f'| rows x {n} -> {n}, + bias, ReLU | fp32 F.linear+relu | fp32 fused | bf16 F.linear+relu | bf16 fused |')
    print('|---|---|---|---|---|')
    for rows in args.rows:
        cells = []
        for dtype in (torch.float32, torch.bfloat16):
            x, w, b = (t.to(dtype) for t in (torch.randn(rows, n), w32, b32))
            flop = 2 * rows * n * n
            cells.append(flop / best_seconds(lambda: F.relu(F.linear(x, w, b), inplace=True), args.repeats) / 1e9)
            if FUSED_LINEAR:
                fused = best_seconds(lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, 'relu', [], ''), args.repeats)
                cells.append(flop / fused / 1e9)
            else:
                cells.append(float('nan'))
        print(f'| {rows} | ' + ' | '.join(f'{c:.0f}' for c in cells) + ' |')
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.randn(2048, 2048, dtype=dtype)
        print(f'\n2048^3 matrix product, {str(dtype)[6:]}: '
              f'{2 * 2048 ** 3 / best_seconds(lambda: a @ a, max(3, args.repeats // 4)) / 1e9:.0f} GFLOP/s', end='')
    print()


if __name__ == '__main__':
    run_cli(main)
