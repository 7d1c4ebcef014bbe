"""Where the fast decoder path spends its time: torch.profiler's table of one x30 render slice
(paper-size EDSR-baseline-LIIF, random weights, 32^2 -> 960^2, the first --queries output
pixels in chunks of 30000), fp32 or bf16.

    python benchmarks/profile_decoder.py [--precision fp32|bf16] [--queries 60000] [--rows 20]

`mkldnn::_linear_pointwise` is the decoder's hidden layers (fused linear + ReLU); divide their
FLOPs (2 x rows x 256 x 256 per call) by its self time for their GFLOP/s.
"""
import argparse
import os
import sys
import time

import torch
from torch.profiler import profile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import models  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from utils.precision import autocast  # noqa: E402
from bench_decoder import PAPER_MODELS  # noqa: E402  (this folder is on sys.path when run as a script)

BSIZE = 30000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--precision', choices=('fp32', 'bf16'), default='fp32')
    p.add_argument('--queries', type=int, default=60000)
    p.add_argument('--rows', type=int, default=20, help='rows of the profiler table')
    args = p.parse_args()
    torch.manual_seed(0)
    model = models.make(PAPER_MODELS['liif']).eval()
    coord = make_coord((960, 960)).unsqueeze(0)[:, :args.queries]
    cell = make_cell((960, 960), coord)
    with torch.no_grad(), autocast(torch.device('cpu'), args.precision):
        model.gen_feat(torch.rand(1, 3, 32, 32) * 2 - 1)
        model.query_rgb(coord[:, :BSIZE], cell[:, :BSIZE])  # warm up
        with profile() as prof:
            t = time.perf_counter()
            for i in range(0, coord.shape[1], BSIZE):
                model.query_rgb(coord[:, i:i + BSIZE], cell[:, i:i + BSIZE])
            seconds = time.perf_counter() - t
    print(f'{args.precision}, {torch.get_num_threads()} threads: {coord.shape[1] / seconds:,.0f} output px/s '
          '(under the profiler)')
    print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=args.rows))


if __name__ == '__main__':
    run_cli(main)
