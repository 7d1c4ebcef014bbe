"""LMF's render speed against LIIF's and LTE's fast paths (docs/lmf.md): paper-size LIIF, LTE,
LM-LIIF and LM-LTE on one EDSR-baseline encoder (the same weights), rendering a photo at x4
(128^2 -> 512^2) and x30 (32^2 -> 960^2), LMF exactly and with CMSR (the authors' tables,
configs/cmsr/), in fp32 (and bf16 with --bf16). One run, configurations interleaved over --repeats
rounds; the best time of each part (encoder pass; decoder = every query of the output, the
demo's bands and chunks) is kept, which filters out other processes' bursts.

    python benchmarks/bench_lmf.py [--repeats 3] [--side-x4 128] [--side-x30 32] [--bf16]
            [--threads N] [--lmliif CKPT --lmlte CKPT]   # trained LMF weights (default: random, seed 0)
        [--tables-lmliif TABLES --tables-lmlte TABLES]   # their CMSR tables (default: the authors')

Prints the CPU kind, a table (encoder ms, decoder ms, output megapixels per second of the
decoder) and the decoder speed-ups of LM-LIIF/LM-LTE over LIIF's and LTE's fast paths, with CMSR's
difference from the exact render (PSNR between the two 8-bit images, and the largest difference
in levels). With random weights CMSR's split between levels means nothing: use trained weights
(and their tables) for its speed.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402
from inference.norm import DataNorm  # noqa: E402
from inference.render import encode, output_bands  # noqa: E402
from models.cmsr import read_tables  # noqa: E402
from models.loading import load_model  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENCODER = {'name': 'edsr-baseline', 'args': {'no_upsampling': True}}
MLP = {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256]}}
SPECS = {  # the papers' decoders on one encoder
    'liif': {'name': 'liif', 'args': {'encoder_spec': ENCODER, 'imnet_spec': {
        'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}}},
    'lte': {'name': 'lte', 'args': {'encoder_spec': ENCODER, 'imnet_spec': MLP, 'hidden_dim': 256}},
    'lmliif': {'name': 'lmliif', 'args': {
        'encoder_spec': ENCODER, 'mod_input': True,
        'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': 6}},
        'hypernet_spec': {'name': 'mlp', 'args': {'hidden_list': [208]}}}},
    'lmlte': {'name': 'lmlte', 'args': {
        'encoder_spec': ENCODER, 'mod_input': True, 'hidden_dim': 128,
        'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': 8}},
        'hypernet_spec': {'name': 'mlp', 'args': {'hidden_list': [288]}}}},
}
TABLES = {'lmliif': 'configs/cmsr/edsr-b_lm-liif_mse2e-5.yaml', 'lmlte': 'configs/cmsr/edsr-b_lm-lte_mse2e-5.yaml'}
HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))


def photo(side: int) -> torch.Tensor:
    """skimage's astronaut, PIL-bicubic to side x side: (1, 3, side, side) in [0, 1]."""
    from skimage import data
    img = Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC)
    return torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255).unsqueeze(0)


def build(args) -> dict:
    """The four models, every encoder sharing LIIF's weights (so encoders cost the same)."""
    torch.manual_seed(0)
    built = {name: models.make(spec).eval() for name, spec in SPECS.items()}
    for name in ('lmliif', 'lmlte'):
        path = getattr(args, name)
        if path:
            built[name] = load_model(path)
    encoder = built['liif'].encoder.state_dict()
    for name in ('lte', 'lmliif', 'lmlte'):
        if not getattr(args, name, None):
            built[name].encoder.load_state_dict(encoder)
    return built


@torch.no_grad()
def render_once(model, x: torch.Tensor, out_hw, precision: str) -> tuple[float, float, np.ndarray]:
    """(encoder seconds, decoder seconds, uint8 image) of one render as demo.py does it (render.encode,
    then render.output_bands: its bands, chunks, cell clip and CMSR's whole grid)."""
    h, w = out_hw
    t0 = time.perf_counter()
    encode(model, HALF.inp(x), precision=precision)
    t1 = time.perf_counter()
    out = np.empty((h, w, 3), np.uint8)
    for r0, r1, pred in output_bands(model, x.shape[-2:], out_hw, 30000, precision, x.device):
        out[r0:r1] = HALF.pred_to_uint8(pred)
    return t1 - t0, time.perf_counter() - t1, out


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float('inf') if mse == 0 else 10 * np.log10(255 ** 2 / mse)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--side-x4', type=int, default=128)
    p.add_argument('--side-x30', type=int, default=32)
    p.add_argument('--bf16', action='store_true', help='also bf16 autocast')
    p.add_argument('--threads', type=int, default=None,
                   help="torch threads (default torch's; 1 keeps a loaded machine's ratios steadier)")
    p.add_argument('--lmliif', help='a trained LM-LIIF checkpoint (its own encoder)')
    p.add_argument('--lmlte', help='a trained LM-LTE checkpoint (its own encoder)')
    p.add_argument('--tables-lmliif', default=TABLES['lmliif'], help="LM-LIIF's CMSR tables (default: the authors')")
    p.add_argument('--tables-lmlte', default=TABLES['lmlte'], help="LM-LTE's CMSR tables (default: the authors')")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'CPU: {cpu_kind()}; torch threads {torch.get_num_threads()}')
    built = build(args)
    runs = [(name, cmsr) for name in SPECS for cmsr in ((False, True) if name.startswith('lm') else (False,))]
    precisions = ['fp32', 'bf16'] if args.bf16 else ['fp32']
    best, images = {}, {}
    for scale, side in ((4, args.side_x4), (30, args.side_x30)):
        x = photo(side)
        out_hw = (side * scale, side * scale)
        for _ in range(args.repeats):
            for name, cmsr in runs:
                model = built[name]
                if name.startswith('lm'):
                    model.set_cmsr(read_tables(os.path.join(ROOT, getattr(args, f'tables_{name}'))) if cmsr else None)
                for precision in precisions:
                    key = (scale, name, cmsr, precision)
                    enc, dec, img = render_once(model, x, out_hw, precision)
                    old = best.get(key, (float('inf'), float('inf')))
                    best[key] = (min(old[0], enc), min(old[1], dec))
                    images[key] = img
    print(f"\n{'scale':>5} {'model':<14} {'prec':<5} {'encoder ms':>11} {'decoder ms':>11} {'decoder MP/s':>13}")
    for (scale, name, cmsr, precision), (enc, dec) in best.items():
        side = args.side_x4 if scale == 4 else args.side_x30
        mp = (side * scale) ** 2 / 1e6
        label = name + (' CMSR' if cmsr else '')
        print(f'{"x" + str(scale):>5} {label:<14} {precision:<5} {enc * 1e3:11.1f} {dec * 1e3:11.1f} {mp / dec:13.2f}')
    print()
    for scale in (4, 30):
        for precision in precisions:
            for lm, base in (('lmliif', 'liif'), ('lmlte', 'lte')):
                ref = best[(scale, base, False, precision)][1]
                exact, cm = best[(scale, lm, False, precision)][1], best[(scale, lm, True, precision)][1]
                diff = images[(scale, lm, True, precision)].astype(int) - images[(scale, lm, False, precision)]
                print(f'x{scale} {precision}: {lm} decoder {ref / exact:.1f}x faster than {base} fast path '
                      f'(CMSR: {ref / cm:.1f}x; CMSR vs exact: PSNR '
                      f'{psnr8(images[(scale, lm, True, precision)], images[(scale, lm, False, precision)]):.2f} dB, '
                      f'max {np.abs(diff).max()} levels)')
    return best


if __name__ == '__main__':
    main()
