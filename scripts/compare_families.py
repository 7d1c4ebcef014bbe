"""Compare model families on one recipe and one protocol: one checkpoint per family (trained here,
or taken), then one table of PSNR / SSIM per test config, parameters and decoder time per megapixel.

    python scripts/prepare_sample_data.py
    python scripts/compare_families.py --config configs/compare/sample.yaml --data-root load/sample \\
        --out save/compare-sample

A comparison config (configs/compare/*.yaml; docs/design.md §5.2) holds
  recipe:            a training config: data, optimizer, schedule, epochs, seed shared by every family
  recipe_overrides:  values laid over the recipe's (optional; merged as `_base_` merges)
  tests:             test configs, one column each: the protocol (test.py's evaluation)
  families:          [{name, model: SPEC | CONFIG}] (the recipe trained with that model, a spec or a
                     training config whose model block is taken) or [{name, checkpoint: FILE}]
Any other top-level key is free (e.g. a YAML anchor for a shared encoder). Every config named here
may extend another with `_base_:` (utils/config_sources.py).

Each family trains in <out>/<name>/; a finished run there (epoch-last.pth at the recipe's epoch_max,
same model) is taken as it is and an unfinished one resumed, so running the command again only
re-evaluates and re-times. Writes <out>/table.md and <out>/results.json (atomically) and prints the
table. Decoder time: the query part of rendering (after encoding; bsize 30000, fp32, whole-image
attention for SRNO/HIIF) of a --timing-size square LR input at x4, best of --repeat, in ms per output
megapixel, with the CPU kind; it means something only on an otherwise idle machine.
"""
import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))
from cpu_info import cpu_kind  # noqa: E402
from inference.eval_config import make_loader, read_test_config  # noqa: E402
from inference.evaluate import evaluate  # noqa: E402
from inference.norm import DataNorm  # noqa: E402
from inference.render import encode, output_bands  # noqa: E402
from inference.window import mirror_pad, resolve_window, window_frame  # noqa: E402
from models.loading import load_model_checkpoint  # noqa: E402
from training.config import check_train_config  # noqa: E402
from training.trainer import train  # noqa: E402
from utils.checkpoints import load_checkpoint  # noqa: E402
from datasets import spec_inputs  # noqa: E402
from utils.config import Checker  # noqa: E402
from utils.config_sources import load_config, merge  # noqa: E402
from utils.device import resolve_device  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import atomic_write_text, check_output, refuse_inputs  # noqa: E402

DATA_ENV = 'LIIF_DATA'
TIMING_SCALE = 4
TIMING_BSIZE = 30000
MAX_TIMING_SIZE = 1024  # the timing input's side (x4: a 16-megapixel output)


def slug(name: str) -> str:
    """A family name as a folder name: 'A-LIIF' -> 'a-liif'."""
    return re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-') or 'family'


def read_compare_config(path: str) -> dict:
    """The comparison config, checked (one line per mistake, naming the key and the file)."""
    cfg = load_config(path)
    c = Checker(path)
    if not isinstance(cfg, dict):
        raise UserError(f'{path}: expected a mapping with recipe, tests and families')
    for key in ('recipe', 'tests', 'families'):
        if key not in cfg:
            c.fail(key, 'missing (required)')
    c.string(cfg['recipe'], 'recipe')
    if cfg.get('recipe_overrides') is not None:
        c.mapping(cfg['recipe_overrides'], 'recipe_overrides')
    for key in ('tests', 'families'):
        if not isinstance(cfg[key], list) or not cfg[key]:
            c.fail(key, f'expected a non-empty list, got {c.got(cfg[key])}')
    for i, test in enumerate(cfg['tests']):
        c.string(test, f'tests[{i}]')
    names = set()
    for i, fam in enumerate(cfg['families']):
        key = f'families[{i}]'
        c.mapping(fam, key, allowed=('name', 'model', 'checkpoint'), required=('name',))
        c.string(fam['name'], f'{key}.name')
        if ('model' in fam) == ('checkpoint' in fam):
            c.fail(key, 'give exactly one of model (a spec or a training config) and checkpoint')
        if 'checkpoint' in fam:
            c.string(fam['checkpoint'], f'{key}.checkpoint')
        elif not isinstance(fam['model'], (str, dict)):
            c.fail(f'{key}.model', f'expected a model spec or a training config path, got {c.got(fam["model"])}')
        if slug(fam['name']) in names:
            c.fail(f'{key}.name', f'{fam["name"]!r} repeats another family (folder {slug(fam["name"])})')
        names.add(slug(fam['name']))
    return cfg


def family_model(fam: dict) -> dict:
    """A family's model spec: given inline, or the model block of the training config it names."""
    if isinstance(fam['model'], dict):
        return fam['model']
    cfg = load_config(fam['model'])
    if not isinstance(cfg, dict) or not isinstance(cfg.get('model'), dict):
        raise UserError(f"{fam['model']}: no model block (family {fam['name']!r})")
    return cfg['model']


def training_config(cfg: dict, fam: dict, where: str) -> dict:
    """The recipe with the family's model and the overrides, checked as train_liif.py checks it."""
    recipe = load_config(cfg['recipe'])
    if not isinstance(recipe, dict):
        raise UserError(f"{cfg['recipe']}: expected a training config")
    merged = {**merge(recipe, cfg.get('recipe_overrides') or {}), 'model': family_model(fam)}
    return check_train_config(merged, f"{where} (family {fam['name']}, recipe {cfg['recipe']})")


def family_checkpoint(cfg: dict, fam: dict, out: Path, where: str, device: torch.device) -> Path:
    """The family's checkpoint: given, or trained (resumed, or taken when finished) in out/<name>."""
    if 'checkpoint' in fam:
        return Path(fam['checkpoint'])
    config = training_config(cfg, fam, where)
    folder = out / slug(fam['name'])
    last = folder / 'epoch-last.pth'
    if last.is_file():
        ckpt = load_checkpoint(last)
        if {k: ckpt['model'].get(k) for k in ('name', 'args')} != {k: config['model'].get(k) for k in ('name', 'args')}:
            raise UserError(f'{folder} holds another model than family {fam["name"]!r} of {where}; give another --out')
        if ckpt.get('epoch', 0) >= config['epoch_max']:
            print(f"{fam['name']}: taking {last} (epoch {ckpt['epoch']})")
            return last
        train(config, folder, where=where, resume=str(last), device=device)
        return last
    train(config, folder, where=where, device=device)
    return last


def parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, those outside the encoder: the decoder's)."""
    total = sum(p.numel() for p in model.parameters())
    encoder = sum(p.numel() for p in model.encoder.parameters()) if hasattr(model, 'encoder') else 0
    return total, total - encoder


@torch.no_grad()
def decoder_ms_per_mp(model: torch.nn.Module, norm: DataNorm, size: int, repeat: int, device: torch.device) -> float:
    """Milliseconds per output megapixel of the query part of rendering a size x size input at x4
    (render's own path after encoding: bands, chunks, attention groups), best of `repeat`."""
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, size, size, generator=gen).to(device)
    window = resolve_window('auto', model)
    (pad_h, pad_w), _ = window_frame(img.shape[-2:], window)
    encode(model, mirror_pad(norm.inp(img), pad_h, pad_w))
    out_hw = (size * TIMING_SCALE, size * TIMING_SCALE)
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _band in output_bands(model, img.shape[-2:], out_hw, TIMING_BSIZE, device=device, window=window):
            pass
        best = min(best, time.perf_counter() - start)
    return best * 1e3 / (out_hw[0] * out_hw[1] / 1e6)


def evaluate_family(path: Path, plans: dict, device: torch.device) -> tuple[dict, torch.nn.Module, DataNorm]:
    """({test label: (mean PSNR, mean SSIM)} of the checkpoint under each test plan (test.py's
    evaluation), its model, its normalisation)."""
    ckpt, model = load_model_checkpoint(path, device)
    norm = DataNorm.from_checkpoint(ckpt, str(path))
    scores = {}
    for label, plan in plans.items():
        rows = evaluate(model, make_loader(plan.spec), norm, plan.protocol, plan.bsize, device, 'fp32',
                        progress=False, whole=True, window=resolve_window('auto', model),
                        cell_scale_max=plan.cell_scale_max, attention_rows=plan.attention_rows)
        if not rows:
            raise UserError(f'{label}: the test dataset is empty')
        scores[label] = (sum(r['psnr'] for r in rows) / len(rows), sum(r['ssim'] for r in rows) / len(rows))
    return scores, model, norm


def markdown(results: list[dict], labels: Sequence[str], header: str) -> str:
    """The table: one row per family, PSNR / SSIM per test, parameters and decoder time."""
    lines = [header, '', '| family | params | decoder params | decoder ms/MP | ' + ' | '.join(labels) + ' |',
             '|---|---|---|---|' + '---|' * len(labels)]
    for r in results:
        cells = [f"{r['scores'][k][0]:.2f} / {r['scores'][k][1]:.4f}" for k in labels]
        lines.append(f"| {r['name']} | {r['params'] / 1e6:.3f}M | {r['decoder_params'] / 1e3:.1f}K | "
                     f"{r['decoder_ms_per_mp']:.0f} | " + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def test_label(path: str) -> str:
    """'configs/test/sample/test-sample5-2.yaml' -> 'sample5-2'."""
    stem = Path(path).stem
    return stem[len('test-'):] if stem.startswith('test-') else stem


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--config', required=True, help='a comparison config (configs/compare/*.yaml)')
    p.add_argument('--out', required=True, help='folder for the runs, table.md and results.json')
    p.add_argument('--data-root', default=None, help=f'folder replacing ./load in the test configs (default ${DATA_ENV})')
    p.add_argument('--families', default=None, help='comma-separated names: only these families')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--timing-size', type=int, default=64, help='LR side of the decoder timing input (output x4)')
    p.add_argument('--repeat', type=int, default=3, help='decoder timing: best of this many runs')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> list[dict]:
    """Train/take, evaluate and time every family; write and print the table; return the rows."""
    args = parse_args(argv)
    c = Checker('compare_families.py')
    c.integer(args.timing_size, '--timing-size', maximum=MAX_TIMING_SIZE)
    c.integer(args.repeat, '--repeat', maximum=100)
    cfg = read_compare_config(args.config)
    families = cfg['families']
    if args.families:
        wanted = [n.strip() for n in args.families.split(',') if n.strip()]
        unknown = [n for n in wanted if n not in {f['name'] for f in families}]
        if unknown:
            raise UserError(f'--families: unknown {", ".join(unknown)}; known: {", ".join(f["name"] for f in families)}')
        families = [f for f in families if f['name'] in wanted]
    reads = {}  # everything the comparison reads: no output may be (or lie in) any of it
    for fam in families:  # every training config is checked before anything is read or trained
        if 'model' in fam:
            config = training_config(cfg, fam, args.config)
            reads.update({**spec_inputs(config['train_dataset']), **spec_inputs(config['val_dataset'] or {})})
            if isinstance(fam['model'], str):
                reads[f"family {fam['name']}'s config"] = fam['model']
        else:
            reads[f"family {fam['name']}'s checkpoint"] = fam['checkpoint']
    data_root = args.data_root or os.environ.get(DATA_ENV) or None
    plans = {test_label(t): read_test_config(t, data_root, DATA_ENV) for t in cfg['tests']}
    out = Path(args.out)
    inputs = {'--config': args.config, 'recipe': cfg['recipe'], **{f'test config {t}': t for t in cfg['tests']},
              **reads, **{k: v for plan in plans.values() for k, v in spec_inputs(plan.spec).items()}}
    refuse_inputs(out, inputs, '--out', folder=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create --out {out} ({e.strerror})') from None
    for name in ('table.md', 'results.json'):
        check_output(out / name, inputs, f'--out {name}')
    device = resolve_device(args.gpu)
    results = []
    for fam in families:
        path = family_checkpoint(cfg, fam, out, args.config, device)
        scores, model, norm = evaluate_family(path, plans, device)
        total, decoder = parameters(model)
        results.append({'name': fam['name'], 'checkpoint': str(path), 'model': type(model).__name__,
                        'params': total, 'decoder_params': decoder, 'scores': scores,
                        'decoder_ms_per_mp': decoder_ms_per_mp(model, norm, args.timing_size, args.repeat, device)})
    header = (f'Families compared with {args.config} (recipe {cfg["recipe"]}); decoder time at x{TIMING_SCALE} of a '
              f'{args.timing_size}x{args.timing_size} input, fp32, on {cpu_kind()}')
    table = markdown(results, list(plans), header)
    atomic_write_text(out / 'table.md', table)
    atomic_write_text(out / 'results.json', json.dumps({'header': header, 'tests': cfg['tests'], 'families': results},
                                                       indent=1))
    print(table, end='')
    return results


if __name__ == '__main__':
    run_cli(main)
