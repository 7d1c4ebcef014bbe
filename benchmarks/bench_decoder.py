"""Plain vs fast decoder path, fp32 vs bf16, on the paper-size EDSR-baseline-LIIF (or Meta-SR,
A-LIIF, LTE: --arch), same weights, one run: output pixels per second at x4 (128^2 -> 512^2) and x30
(32^2 -> 960^2), one training step at the paper's batch (16 x 48^2 inputs, 2304 queries each,
L1 loss, Adam step), peak memory, and the accuracy of each path on a real photo (skimage's
astronaut, 512^2, downscaled to 128^2 with PIL bicubic and rendered back at x4).

    python benchmarks/bench_decoder.py [--model CKPT | --arch liif|metasr|a-liif|lte] [--repeats 3]
        [--bsize 30000] [--only x4 x30 train] [--max-queries N] [--sweep-rows 1024 2048 4096]

The four configurations are interleaved in each of --repeats rounds (the machine may be shared).
A render is one encoder pass plus the decoder over all output pixels in chunks of --bsize
queries, as inference.render.batched_predict does it. Two timings: the best whole run, and the sum of
the best time of each part (encoder pass, each chunk; forward, backward, Adam step), which filters
out bursts of other processes; the speed-ups use the latter. Peak memory is the largest increase of
the process's resident set during a run, sampled every 2 ms. Without --model the weights are
random (seed 0): PSNR against the ground truth then means nothing, but fast vs plain and bf16 vs
fp32 differences do.
"""
import argparse
import math
import os
import sys
import threading
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402
from models import fast_query  # noqa: E402
from models.loading import load_model  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.precision import autocast  # noqa: E402

CONFIGS = [('plain', 'fp32'), ('plain', 'bf16'), ('fast', 'fp32'), ('fast', 'bf16')]
ENCODER = {'name': 'edsr-baseline', 'args': {'no_upsampling': True}}
PAPER_MODELS = {  # paper-size models on the EDSR-baseline encoder
    'liif': {'name': 'liif', 'args': {'encoder_spec': ENCODER, 'imnet_spec': {
        'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}}},
    'metasr': {'name': 'metasr', 'args': {'encoder_spec': ENCODER}},
    'a-liif': {'name': 'a-liif', 'args': {'encoder_spec': ENCODER}},
    'lte': {'name': 'lte', 'args': {'encoder_spec': ENCODER, 'hidden_dim': 256, 'imnet_spec': {
        'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256]}}}}}
DEVICE = torch.device('cpu')


class PeakRSS:
    """Context measuring the largest resident-set increase (bytes) of this process inside it."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.increase = self.peak - self.base

    def _watch(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, self._rss())

    @staticmethod
    def _rss() -> int:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def photo_inputs(lr_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """skimage's astronaut (512^2) -> (LR (1, 3, s, s) normalised to [-1, 1] by PIL bicubic, GT (3, 512, 512) in [0, 1])."""
    from PIL import Image
    from skimage import data

    hr = Image.fromarray(data.astronaut())
    lr = np.asarray(hr.resize((lr_side, lr_side), Image.BICUBIC), dtype=np.float32) / 255
    gt = torch.from_numpy(np.asarray(hr, dtype=np.float32) / 255).permute(2, 0, 1)
    return (torch.from_numpy(lr).permute(2, 0, 1).unsqueeze(0) - 0.5) / 0.5, gt


def render(model, inp: torch.Tensor, side: int, path: str, precision: str, bsize: int,
           max_queries: int) -> tuple[torch.Tensor, list[float], int]:
    """(pred (1, Q, 3) de-normalised to [0, 1], seconds of each part, peak RSS increase) of one
    render to side^2: the parts are the encoder pass and each chunk of bsize queries, exactly the
    calls inference.render.batched_predict makes."""
    coord = make_coord((side, side)).unsqueeze(0)[:, :max_queries]  # (1, Q, 2)
    cell = make_cell((side, side), coord)
    parts, preds = [], []
    with torch.no_grad(), fast_query.fast_path(path == 'fast'), autocast(DEVICE, precision), PeakRSS() as mem:
        t = time.perf_counter()
        model.gen_feat(inp)
        for i in range(0, coord.shape[1], bsize):
            parts.append(time.perf_counter() - t)
            t = time.perf_counter()
            preds.append(model.query_rgb(coord[:, i:i + bsize], cell[:, i:i + bsize]))
        parts.append(time.perf_counter() - t)
    return (torch.cat(preds, 1).float() * 0.5 + 0.5).clamp(0, 1), parts, mem.increase


class BestTimes:
    """Timings of repeated runs made of the same parts: the best whole run, and the sum of each
    part's best (which filters out the other processes of a shared machine)."""

    def __init__(self):
        self.runs = []

    def add(self, parts: list[float]) -> None:
        self.runs.append(parts)

    def best_run(self) -> float:
        return min(sum(parts) for parts in self.runs)

    def best_parts(self) -> float:
        return sum(min(run[i] for run in self.runs) for i in range(len(self.runs[0])))


def train_batch(seed: int = 0) -> dict:
    """The paper's batch shape: 16 inputs of 48^2, 2304 queries each drawn from a 120^2 HR grid (x2.5)."""
    g = torch.Generator().manual_seed(seed)
    coord = make_coord((120, 120))[torch.stack([torch.randperm(120 * 120, generator=g)[:2304] for _ in range(16)])]
    return {'inp': torch.rand(16, 3, 48, 48, generator=g) * 2 - 1, 'coord': coord,
            'cell': make_cell((120, 120), coord), 'gt': torch.rand(16, 2304, 3, generator=g) * 2 - 1}


def train_step(model, state: dict, batch: dict, path: str, precision: str) -> tuple[float, list[float], int]:
    """(loss, seconds of forward / backward / Adam step, peak RSS increase) of one step from the
    weights `state`: forward, L1 loss, backward, Adam step."""
    model.load_state_dict(state)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        with fast_query.fast_path(path == 'fast'), autocast(DEVICE, precision):
            pred = model(batch['inp'], batch['coord'], batch['cell'])
        loss = F.l1_loss(pred.float(), batch['gt'])
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
    return loss.item(), [t1 - t0, t2 - t1, t3 - t2], mem.increase


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) between two [0, 1] tensors of the same shape."""
    return -10 * math.log10(F.mse_loss(a.double(), b.double()).item())


def bench_render(model, args) -> None:
    cases = [case for case in (('x4', 128, 512), ('x30', 32, 960)) if case[0] in args.only]
    print(f'\n## Rendering: output px/s (best of {args.repeats} runs | sum of the best encoder pass and '
          f'best chunks); bsize {args.bsize}, row chunk {fast_query.ROW_CHUNK}\n')
    print('| scale | path | precision | px/s, best run | px/s, best parts | vs plain fp32 (best parts) '
          '| peak RSS increase | max abs diff vs plain fp32 | PSNR vs GT |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name, lr_side, side in cases:
        inp, gt = photo_inputs(lr_side)
        times, mem, preds = {cfg: BestTimes() for cfg in CONFIGS}, {}, {}
        for _ in range(args.repeats):
            for cfg in CONFIGS:
                preds[cfg], parts, peak = render(model, inp, side, *cfg, args.bsize, args.max_queries)
                times[cfg].add(parts)
                mem[cfg] = max(mem.get(cfg, 0), peak)
        n = preds[CONFIGS[0]].shape[1]
        gt_q = gt.reshape(3, -1).t()[:n] if side == gt.shape[-1] else None  # (Q, 3)
        ref, base = preds[('plain', 'fp32')], times[CONFIGS[0]].best_parts()
        for cfg in CONFIGS:
            diff = (preds[cfg] - ref).abs().max().item()
            quality = f'{psnr(preds[cfg][0], gt_q):.4f} dB' if gt_q is not None else '-'
            print(f'| {name} | {cfg[0]} | {cfg[1]} | {n / times[cfg].best_run():,.0f} | '
                  f'{n / times[cfg].best_parts():,.0f} | {base / times[cfg].best_parts():.2f}x | '
                  f'{mem[cfg] / 2**20:,.0f} MB | {diff:.2e} | {quality} |', flush=True)
        for path in ('plain', 'fast'):
            a, b = preds[(path, 'bf16')], preds[(path, 'fp32')]
            print(f'| {name} | {path} | bf16 vs fp32 | PSNR {psnr(a, b):.2f} dB, max abs diff '
                  f'{(a - b).abs().max().item():.2e} |||||||')


def bench_train(model, args) -> None:
    print(f'\n## Training step (16 x 48^2 inputs, 2304 queries each, L1, Adam): seconds (best of '
          f'{args.repeats} steps | sum of the best forward, backward and Adam step)\n')
    print('| path | precision | s, best step | s, best parts | vs plain fp32 (best parts) | peak RSS increase | loss |')
    print('|---|---|---|---|---|---|---|')
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = train_batch()
    model.train()
    train_step(model, state, batch, 'fast', 'fp32')  # warm-up (allocator, oneDNN kernels)
    times, mem, losses = {cfg: BestTimes() for cfg in CONFIGS}, {}, {}
    for _ in range(args.repeats):
        for cfg in CONFIGS:
            losses[cfg], parts, peak = train_step(model, state, batch, *cfg)
            times[cfg].add(parts)
            mem[cfg] = max(mem.get(cfg, 0), peak)
    model.load_state_dict(state)
    model.eval()
    base = times[CONFIGS[0]].best_parts()
    for cfg in CONFIGS:
        print(f'| {cfg[0]} | {cfg[1]} | {times[cfg].best_run():.2f} | {times[cfg].best_parts():.2f} | '
              f'{base / times[cfg].best_parts():.2f}x | {mem[cfg] / 2**20:,.0f} MB | {losses[cfg]:.8f} |', flush=True)
    print(f'\nfp32 loss, fast - plain: {losses[("fast", "fp32")] - losses[("plain", "fp32")]:.2e}')


def sweep_rows(model, args) -> None:
    """Fast-path decoder throughput (encoder excluded) at x4 for several row chunks (fast_query.ROW_CHUNK)."""
    print(f'\n## Row chunk sweep (x4, fast path, first {args.max_queries} queries, best of {args.repeats})\n')
    print('| rows | fp32 px/s | bf16 px/s |')
    print('|---|---|---|')
    inp, _ = photo_inputs(128)
    default, best = fast_query.ROW_CHUNK, {}
    for _ in range(args.repeats):
        for rows in args.sweep_rows:
            fast_query.ROW_CHUNK = rows
            for precision in ('fp32', 'bf16'):
                _, parts, _ = render(model, inp, 512, 'fast', precision, args.bsize, args.max_queries)
                best[rows, precision] = min(best.get((rows, precision), math.inf), sum(parts[1:]))
    fast_query.ROW_CHUNK = default
    n = min(args.max_queries, 512 * 512)
    for rows in args.sweep_rows:
        print(f'| {rows} | {n / best[rows, "fp32"]:,.0f} | {n / best[rows, "bf16"]:,.0f} |')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--model', help='a checkpoint (default: a paper-size model with random weights)')
    p.add_argument('--arch', choices=sorted(PAPER_MODELS), default='liif', help='the model without --model')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--bsize', type=int, default=30000, help='queries per query_rgb call when rendering')
    p.add_argument('--max-queries', type=int, default=1 << 30, help='render only the first N output pixels')
    p.add_argument('--only', nargs='+', choices=['x4', 'x30', 'train'], default=['x4', 'x30', 'train'])
    p.add_argument('--sweep-rows', type=int, nargs='+', help='instead: sweep fast_query.ROW_CHUNK')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice)')
    args = p.parse_args()
    if args.repeats < 1 or args.bsize < 1 or args.max_queries < 1:
        raise UserError('--repeats, --bsize and --max-queries must be at least 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = load_model(args.model) if args.model else models.make(PAPER_MODELS[args.arch]).eval()
    print(f'# {"model " + args.model if args.model else f"EDSR-baseline-{args.arch}, random weights (seed 0)"}; '
          f'{cpu_kind()}')
    if args.sweep_rows:
        return sweep_rows(model, args)
    if 'x4' in args.only or 'x30' in args.only:
        bench_render(model, args)
    if 'train' in args.only:
        bench_train(model, args)


if __name__ == '__main__':
    run_cli(main)
