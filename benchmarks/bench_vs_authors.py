"""This project against the paper authors' code (a checkout of github.com/yinboc/liif you provide),
on this CPU, in one run: demo.py as whole processes, and the decoder alone.

    python benchmarks/bench_vs_authors.py --authors /path/to/liif [--repeats 3] [--only demo decoder]

The model is the paper-size EDSR-baseline-LIIF with random weights (seed 0; speed does not depend
on them), saved in the release format that both codes load. The photo is scikit-image's astronaut
shrunk to 256x256 (PIL bicubic).

- demo: x4 of the photo (to 1024x1024), each run a fresh process, wall time from start to exit:
  the authors' demo.py (--resolution 1024,1024; its CUDA calls, Tensor.cuda and Module.cuda, are
  made no-ops by a shim, as the only change, since it runs on CPU here), ours in fp32 and in bf16. Runs are interleaved over
  --repeats rounds; the best of each is reported (the least disturbed by anything else).
- decoder: one encoder pass then the decoder over every output pixel in chunks of 30000 queries
  (the authors' batched_predict), x4 (128^2 -> 512^2) and x30 (32^2 -> 960^2), timed inside the
  process (the authors' in a process of their own, since their packages share our names): their
  LIIF.query_rgb against our fast path in fp32 (the same function: the max abs difference is
  reported) and in bf16.
The CPU kind (model, AMX or AVX512-BF16) is printed first: ratios are comparable only on one kind.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / 'benchmarks'))

import models  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402
from inference.render import batched_predict  # noqa: E402
from utils.checkpoints import save_checkpoint  # noqa: E402
from utils.coords import make_cell, make_coord  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.precision import autocast  # noqa: E402

SPEC = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}}}
# Runs the authors' demo.py on CPU: Tensor.cuda and Module.cuda become no-ops, nothing else changes.
SHIM = ('import runpy, sys, torch; torch.Tensor.cuda = lambda self, *a, **k: self; '
        'torch.nn.Module.cuda = lambda self, *a, **k: self; sys.argv = sys.argv[1:]; '
        "sys.path.insert(0, '.'); runpy.run_path('demo.py', run_name='__main__')")


def photo(side: int) -> np.ndarray:
    """The astronaut at side x side, uint8 (PIL bicubic)."""
    from skimage import data

    return np.array(Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC))


def timed(cmd: list, cwd: Path) -> float:
    """Wall seconds of a whole process; a failure stops the benchmark with its last line."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode:
        raise UserError(f'{cmd[1]} failed: {(proc.stderr.strip().splitlines() or ["?"])[-1]}')
    return elapsed


def bench_demo(authors: Path, work: Path, ckpt: Path, repeats: int) -> None:
    Image.fromarray(photo(256)).save(work / 'in.png')
    runs = {
        "authors' demo.py": ([sys.executable, '-c', SHIM, 'demo.py', '--input', str(work / 'in.png'), '--model',
                              str(ckpt), '--resolution', '1024,1024', '--output', str(work / 'authors.png')], authors),
        'ours fp32': ([sys.executable, str(REPO / 'demo.py'), '--input', str(work / 'in.png'), '--model', str(ckpt),
                       '--scale', '4', '--output', str(work / 'fp32.png'), '--gpu', 'cpu'], REPO),
        'ours bf16': ([sys.executable, str(REPO / 'demo.py'), '--input', str(work / 'in.png'), '--model', str(ckpt),
                       '--scale', '4', '--output', str(work / 'bf16.png'), '--gpu', 'cpu', '--precision', 'bf16'], REPO),
    }
    times = {name: [] for name in runs}
    for r in range(repeats):
        for name, (cmd, cwd) in runs.items():
            times[name].append(timed(cmd, cwd))
        print(f'  round {r + 1}: ' + ', '.join(f'{n} {t[-1]:.2f} s' for n, t in times.items()), flush=True)
    base = min(times["authors' demo.py"])
    print("\ndemo.py, x4 of 256x256 -> 1024x1024, whole process (best of {}):".format(repeats))
    for name, t in times.items():
        print(f'  {name:18s} {min(t):7.2f} s   {base / min(t):5.2f}x the authors\'   (median {np.median(t):.2f} s)')
    a, b = (np.asarray(Image.open(work / f'{n}.png')).astype(int) for n in ('authors', 'fp32'))
    print(f"  outputs: ours fp32 vs the authors', max abs difference {np.abs(a - b).max()} level(s) of 255")


# Times the authors' decoder in their own process (their packages `models` and `utils` share our
# names): argv = checkpoint, lr.pt, H, W, repeats, out.pt; prints the seconds of each repeat.
AUTHORS_DECODER = """
import sys, time, torch
torch.Tensor.cuda = lambda self, *a, **k: self
sys.path.insert(0, '.')
import models
from utils import make_coord
from test import batched_predict
ckpt, lr, h, w, repeats, out = sys.argv[1], torch.load(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
model = models.make(torch.load(ckpt)['model'], load_sd=True).eval()
coord = make_coord((h, w)).unsqueeze(0)
cell = torch.ones_like(coord)
cell[:, :, 0] *= 2 / h
cell[:, :, 1] *= 2 / w
times = []
for _ in range(repeats):
    start = time.perf_counter()
    pred = batched_predict(model, lr, coord, cell, 30000)
    times.append(time.perf_counter() - start)
torch.save(pred, out)
print(' '.join(map(str, times)))
"""


def authors_decoder(authors: Path, work: Path, ckpt: Path, lr: torch.Tensor, out_hw, repeats: int):
    """(best seconds, prediction) of the authors' batched_predict, in their own process."""
    torch.save(lr, work / 'lr.pt')
    proc = subprocess.run([sys.executable, '-c', AUTHORS_DECODER, str(ckpt), str(work / 'lr.pt'), str(out_hw[0]),
                           str(out_hw[1]), str(repeats), str(work / 'pred.pt')], cwd=authors, capture_output=True, text=True)
    if proc.returncode:
        raise UserError(f"the authors' decoder failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return min(float(t) for t in proc.stdout.split()), torch.load(work / 'pred.pt')


def bench_decoder(authors: Path, work: Path, ckpt: Path, repeats: int) -> None:
    ours = models.make(torch.load(ckpt, weights_only=True)['model'], load_sd=True).eval()
    print('\ndecoder: one encoder pass, then every output pixel in chunks of 30000 queries (best of {}):'.format(repeats))
    for label, (side, scale) in {'x4': (128, 4), 'x30': (32, 30)}.items():
        lr = torch.from_numpy(photo(side)).permute(2, 0, 1).float().div(255).unsqueeze(0) * 2 - 1
        out_hw = (side * scale, side * scale)
        coord = make_coord(out_hw).unsqueeze(0)
        cell = make_cell(out_hw, coord)
        base, theirs = authors_decoder(authors, work, ckpt, lr, out_hw, repeats)
        pixels = out_hw[0] * out_hw[1]
        print(f"  {label} authors'   {base:7.2f} s  {pixels / base:10,.0f} px/s   1.00x")
        for precision in ('fp32', 'bf16'):
            times = []
            for _ in range(repeats):
                with torch.no_grad(), autocast(torch.device('cpu'), precision):
                    start = time.perf_counter()
                    pred = batched_predict(ours, lr, coord, cell, 30000).float()
                    times.append(time.perf_counter() - start)
            diff = (pred - theirs).abs().max().item()
            print(f'  {label} ours {precision} {min(times):7.2f} s  {pixels / min(times):10,.0f} px/s  '
                  f"{base / min(times):5.2f}x   max |diff| to the authors' {diff:.1e}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--authors', required=True, help='a checkout of github.com/yinboc/liif')
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--only', nargs='+', choices=('demo', 'decoder'), default=('demo', 'decoder'))
    args = p.parse_args(argv)
    authors = Path(args.authors)
    if not (authors / 'demo.py').is_file() or not (authors / 'models' / 'liif.py').is_file():
        raise UserError(f'--authors {authors}: not a checkout of yinboc/liif (no demo.py and models/liif.py)')
    print(cpu_kind())
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        torch.manual_seed(0)
        ckpt = work / 'edsr-baseline-liif-random.pth'
        save_checkpoint({'model': {**SPEC, 'sd': models.make(SPEC).state_dict()}}, ckpt)
        if 'demo' in args.only:
            bench_demo(authors, work, ckpt, args.repeats)
        if 'decoder' in args.only:
            bench_decoder(authors, work, ckpt, args.repeats)


if __name__ == '__main__':
    os.environ.setdefault('PYTHONDONTWRITEBYTECODE', '1')
    run_cli(main)
