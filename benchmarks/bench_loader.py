"""Throughput of the DIV2K-style training loader (48x48 inp, s ~ U(1, 4), sample_q 2304,
batch 16, augment) and the memory of the in_memory cache, for the bicubic wrapper
(sr-implicit-downsampled) and the real-world one (sr-implicit-degraded, Real-ESRNet's
degradations; the goal is 150 pairs/s per worker process, so that a GPU step never waits).

Usage: python benchmarks/bench_loader.py [--root load/sample/train_HR] [--workers 0 2]
       [--batches 20] [--resize pil|matlab] [--wrappers downsampled degraded]
(make load/sample first: python scripts/prepare_sample_data.py). workers=0 measures one process:
the pairs/s of one worker.
"""
import argparse
import math
import os
import sys
import time

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import datasets  # noqa: E402
from datasets.image_store import list_images  # noqa: E402
from utils.errors import run_cli  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402

WRAPPERS = ('downsampled', 'degraded')


def samples_per_second(dataset, workers: int, batches: int, batch_size: int = 16) -> float:
    """Samples/s of a shuffled DataLoader over `batches` batches, after one warm-up batch."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        worker_init_fn=datasets.seed_worker, persistent_workers=False)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--root', default='load/sample/train_HR')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--batches', type=int, default=20)
    parser.add_argument('--repeat', type=int, default=20, help='raised if an epoch is too short')
    parser.add_argument('--resize', default='pil', choices=['pil', 'matlab'], help='of the bicubic wrapper')
    parser.add_argument('--wrappers', nargs='+', default=list(WRAPPERS), choices=WRAPPERS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    datasets.seed_all(0)
    print(cpu_kind())

    # enough repeats for warm-up + the timed batches in one epoch
    repeat = max(args.repeat, math.ceil((args.batches + 1) * 16 / len(list_images(args.root))))
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': args.root, 'repeat': repeat,
                                                              'cache': 'in_memory'}})
    megapixels = sum(a.shape[0] * a.shape[1] for a in folder.store.arrays) / 1e6
    nbytes = folder.store.nbytes()
    print(f'{args.root}: {len(folder.store)} images, {megapixels:.2f} MP; in_memory cache '
          f'{nbytes / 2**20:.1f} MiB = {nbytes / megapixels / 1e6:.2f} MB per megapixel '
          f'(float32 tensors would take 12.00)')
    common = {'inp_size': 48, 'scale_max': 4, 'augment': True, 'sample_q': 2304}
    specs = {'downsampled': ('sr-implicit-downsampled', {**common, 'resize': args.resize}, f'resize {args.resize}'),
             'degraded': ('sr-implicit-degraded', common, "Real-ESRNet's degradations")}
    for kind in args.wrappers:
        name, wrapper_args, what = specs[kind]
        wrapper = datasets.make({'name': name, 'args': wrapper_args}, args={'dataset': folder})
        for workers in args.workers:
            rate = samples_per_second(wrapper, workers, args.batches)
            per_worker = f', {rate / workers:.0f} per worker' if workers > 1 else ''
            print(f'{name} ({what}), workers={workers}: {rate:.0f} pairs/s{per_worker} '
                  f'({args.batches} batches of 16, inp 48x48, s~U(1,4), sample_q 2304)')


if __name__ == '__main__':
    run_cli(main)
