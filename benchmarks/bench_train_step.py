"""Time one training step (forward, L1 loss, backward, Adam) of a training config's model at the
paper's batch: 16 LR crops of 48x48, sample_q 2304 queries each, scale 2.5 (mid of U(1, 4)).

    python benchmarks/bench_train_step.py [--config configs/train-div2k/train_edsr-baseline-liif.yaml]
        [--batch 16] [--inp-size 48] [--sample-q 2304] [--steps 3] [--precision fp32 bf16]
        [--decoder fast plain]

Prints seconds per step (median of --steps timed steps after one warm-up step) for each
precision and decoder path (models/fast_query.py; training uses the fast one): wall clock, and
the process's CPU seconds (on a busy shared machine, CPU-s / threads estimates the idle time).
Uses the same train_step as train_liif.py on random data; CPU unless CUDA is present.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import models  # noqa: E402
from models.fast_query import fast_path  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from training.config import OPTIMIZERS, load_train_config  # noqa: E402
from inference.norm import DataNorm  # noqa: E402
from training.loop import train_step  # noqa: E402


def random_batch(batch: int, inp_size: int, sample_q: int, scale: float, device: torch.device) -> dict:
    """A batch shaped like sr-implicit-downsampled's: inp (B, 3, n, n), coord/cell (B, Q, 2), gt (B, Q, 3)."""
    side = round(inp_size * scale)
    coord = make_coord((side, side))  # (side^2, 2)
    keep = torch.stack([torch.randperm(side * side)[:sample_q] for _ in range(batch)])  # (B, Q)
    coord = coord[keep]  # (B, Q, 2)
    return {'inp': torch.rand(batch, 3, inp_size, inp_size, device=device),
            'coord': coord.to(device), 'cell': make_cell((side, side), coord).to(device),
            'gt': torch.rand(batch, sample_q, 3, device=device)}


def time_steps(config: dict, precision: str, args, device: torch.device) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds of each timed step (after one warm-up step). On a
    shared machine the CPU time divided by the thread count estimates the idle wall time."""
    torch.manual_seed(0)
    model = models.make(config['model']).to(device)
    opt = OPTIMIZERS[config['optimizer']['name']](model.parameters(), **config['optimizer']['args'])
    scaler = torch.amp.GradScaler(device.type, enabled=precision == 'fp16')
    norm = DataNorm.from_config(config['data_norm'])
    batch = random_batch(args.batch, args.inp_size, args.sample_q, 2.5, device)
    wall, cpu = [], []
    for i in range(args.steps + 1):
        t, c = time.perf_counter(), time.process_time()
        train_step(model, batch, norm, opt, scaler, device, precision)
        if device.type == 'cuda':
            torch.cuda.synchronize()
        if i > 0:
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return wall, cpu


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', default='configs/train-div2k/train_edsr-baseline-liif.yaml')
    p.add_argument('--batch', type=int, default=16)
    p.add_argument('--inp-size', type=int, default=48)
    p.add_argument('--sample-q', type=int, default=2304)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--precision', nargs='+', default=['fp32', 'bf16'])
    p.add_argument('--decoder', nargs='+', choices=('fast', 'plain'), default=['fast'])
    args = p.parse_args()
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    config = load_train_config(args.config)
    print(f'{config["model"]["name"]} from {args.config}: batch {args.batch} x {args.inp_size}^2, '
          f'sample_q {args.sample_q}; device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}')
    for decoder in args.decoder:
        for precision in args.precision:
            with fast_path(decoder == 'fast'):
                wall, cpu = time_steps(config, precision, args, device)
            print(f'{decoder} decoder, {precision}: {statistics.median(wall):.2f} s/step wall (median of '
                  f'{len(wall)}: {", ".join(f"{t:.2f}" for t in wall)}), {statistics.median(cpu):.2f} '
                  f'CPU-s/step')


if __name__ == '__main__':
    run_cli(main)
