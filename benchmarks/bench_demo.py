"""Peak memory and time of demo.py on a real photo, with the paper-size EDSR-baseline-LIIF.

    python benchmarks/bench_demo.py                  # both cases: x4 of 512x512, x30 of 256x256
    python benchmarks/bench_demo.py --cases x4       # only the quick one

Each case runs demo.py in its own process (random weights: the speed and memory do not depend on
them) and reports its wall time, CPU time (user + system: less sensitive to a shared machine)
and peak resident memory (ru_maxrss of that process, from os.wait4). The photo is scikit-image's astronaut (512x512), PIL-bicubic downscaled for x30.
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

import models  # noqa: E402
from utils.checkpoints import save_checkpoint  # noqa: E402

# name -> (input side, scale)
CASES = {'x4': (512, 4), 'x30': (256, 30)}


def paper_model_spec() -> dict:
    """EDSR-baseline-LIIF as in the paper's train_edsr-baseline-liif.yaml."""
    return {'name': 'liif', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}}}


def photo(side: int) -> Image.Image:
    """The astronaut photo at side x side (PIL bicubic)."""
    from skimage import data
    img = Image.fromarray(data.astronaut())
    return img if img.size == (side, side) else img.resize((side, side), Image.BICUBIC)


def run_case(folder: Path, ckpt: Path, name: str, extra: list[str]) -> dict:
    """Run demo.py for one case in a child process; its time, peak RSS and output size."""
    side, scale = CASES[name]
    inp = folder / f'astronaut_{side}.png'
    photo(side).save(inp)
    out = folder / f'{name}.png'
    cmd = [sys.executable, str(REPO / 'demo.py'), '--input', str(inp), '--model', str(ckpt),
           '--scale', str(scale), '--output', str(out), *extra]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.time() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f'{name}: demo.py exited with {proc.returncode}')
    with Image.open(out) as img:
        w, h = img.size
    out.unlink()
    return {'case': name, 'input': f'{side}x{side}', 'output': f'{h}x{w}', 'mpx': h * w / 1e6,
            'seconds': seconds, 'cpu_seconds': usage.ru_utime + usage.ru_stime,
            'peak_mb': usage.ru_maxrss / 1024}  # ru_maxrss: KiB on Linux


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--cases', default='x4,x30', help=f'comma-separated, of {", ".join(CASES)}')
    p.add_argument('--bsize', type=int, default=None, help='passed to demo.py')
    p.add_argument('--precision', default=None, help='passed to demo.py')
    args = p.parse_args()
    names = [c.strip() for c in args.cases.split(',')]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f'unknown case {unknown[0]!r}; known: {", ".join(CASES)}')
    extra = ['--gpu', 'cpu']
    if args.bsize:
        extra += ['--bsize', str(args.bsize)]
    if args.precision:
        extra += ['--precision', args.precision]

    torch.manual_seed(0)
    spec = paper_model_spec()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ckpt = folder / 'edsr-baseline-liif-random.pth'
        save_checkpoint({'model': {**spec, 'sd': models.make(spec).state_dict()}}, ckpt)
        for name in names:
            rows.append(run_case(folder, ckpt, name, extra))
            r = rows[-1]
            print(f"{r['case']}: {r['seconds']:.1f} s ({r['cpu_seconds']:.0f} CPU s), "
                  f"peak RSS {r['peak_mb']:.0f} MB", flush=True)
    print(f'\ntorch {torch.__version__}, {torch.get_num_threads()} threads, {" ".join(extra)}')
    print('| case | input | output | megapixels | wall time (s) | CPU time (s) | peak RSS (MB) |')
    print('|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['case']} | {r['input']} | {r['output']} | {r['mpx']:.1f} | {r['seconds']:.0f} "
              f"| {r['cpu_seconds']:.0f} | {r['peak_mb']:.0f} |")


if __name__ == '__main__':
    main()
