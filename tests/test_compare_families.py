"""scripts/compare_families.py: the comparison config's checks (fast), and the whole comparison on the
sample data with the shipped comparison config's families, trained briefly (slow)."""
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from script_loader import ROOT, load_script
from utils.checkpoints import load_checkpoint
from utils.config import load_yaml
from utils.errors import UserError

cli = load_script('scripts/compare_families.py', 'compare_families')
SHIPPED = ROOT / 'configs/compare/sample.yaml'


def write(path: Path, cfg: dict) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_shipped_config_is_checked_and_every_family_builds():
    cfg = cli.read_compare_config(str(SHIPPED))
    names = [f['name'] for f in cfg['families']]
    assert {'LIIF', 'Meta-SR', 'A-LIIF', 'LTE', 'SRNO', 'HIIF', 'LM-LIIF', 'LM-LTE'} <= set(names)
    for fam in cfg['families']:
        train_cfg = cli.training_config(cfg, fam, str(SHIPPED))  # the recipe with the family's model, checked
        assert train_cfg['model'] == fam['model'] and train_cfg['epoch_max'] == cfg['recipe_overrides']['epoch_max']


@pytest.mark.parametrize('change, message', [
    ({'tests': []}, 'tests: expected a non-empty list'),
    ({'families': [{'name': 'A'}]}, r'families\[0\]: give exactly one of model'),
    ({'families': [{'name': 'A', 'model': 3}]}, r'families\[0\].model: expected a model spec'),
    ({'families': [{'name': 'A-b', 'checkpoint': 'x'}, {'name': 'a b', 'checkpoint': 'y'}]}, 'repeats another family'),
    ({'recipe': None}, 'recipe: expected'),
])
def test_config_mistakes_are_one_line(tmp_path, change, message):
    cfg = {**load_yaml(SHIPPED), **change}
    with pytest.raises(UserError, match=message):
        cli.read_compare_config(write(tmp_path / 'c.yaml', cfg))


def test_a_family_model_that_cannot_train_stops_before_anything_trains(tmp_path):
    cfg = load_yaml(SHIPPED)
    cfg['families'] = [cfg['families'][0], {'name': 'bad', 'model': {'name': 'nope', 'args': {}}}]
    with pytest.raises(UserError, match="unknown 'nope'"):
        cli.main(['--config', write(tmp_path / 'c.yaml', cfg), '--out', str(tmp_path / 'out'), '--gpu', 'cpu'])
    assert not (tmp_path / 'out' / 'liif').exists()


def test_configs_with_bases_resolve_and_overrides_merge(tmp_path):
    """A family named by a training config that extends another (_base_) gets the resolved model,
    not the file's few lines; the comparison config may extend another; recipe_overrides merge
    into the recipe's mappings as _base_ does."""
    (tmp_path / 'child.yaml').write_text(f"_base_: {SHIPPED}\nrecipe_overrides: {{optimizer: {{args: {{lr: 5.0e-4}}}}}}\n"
                                         "families:\n  - name: LTE\n"
                                         f"    model: {ROOT / 'configs/train-div2k/train_edsr-baseline-lte.yaml'}\n")
    cfg = cli.read_compare_config(str(tmp_path / 'child.yaml'))
    assert cfg['recipe'] == load_yaml(SHIPPED)['recipe'] and len(cfg['families']) == 1
    train_cfg = cli.training_config(cfg, cfg['families'][0], 'child')
    lte = load_yaml(ROOT / 'configs/train-div2k/train_edsr-baseline-lte.yaml')['model']
    assert train_cfg['model']['name'] == 'lte' and train_cfg['model']['args']['hidden_dim'] == lte['args']['hidden_dim']
    assert train_cfg['model']['args']['encoder_spec']['name'] == 'edsr-baseline'  # from the LTE config's base
    assert train_cfg['optimizer'] == {'name': 'adam', 'args': {'lr': 5.0e-4}}  # the recipe's name kept
    assert train_cfg['epoch_max'] == 30


def test_out_may_not_be_or_hold_the_data(tmp_path):
    data = tmp_path / 'sample'
    for sub in ('HR', 'LR_bicubic/X2', 'LR_bicubic/X3', 'LR_bicubic/X4'):
        (data / 'benchmark/Sample5' / sub).mkdir(parents=True)
    for out in (data / 'benchmark', data / 'benchmark/Sample5/HR/runs'):
        with pytest.raises(UserError, match='--out'):
            cli.main(['--config', str(SHIPPED), '--out', str(out), '--data-root', str(data),
                      '--families', 'LIIF', '--gpu', 'cpu'])
    assert not list((data / 'benchmark/Sample5/HR').iterdir())


@pytest.mark.parametrize('flags, message', [(['--timing-size', '100000'], '--timing-size'),
                                            (['--repeat', '0'], '--repeat')])
def test_timing_options_are_bounded(tmp_path, flags, message):
    with pytest.raises(UserError, match=message):
        cli.main(['--config', str(SHIPPED), '--out', str(tmp_path / 'o'), *flags])


@pytest.mark.slow
def test_comparison_on_the_sample_data(tmp_path, monkeypatch):
    """Every family of the shipped comparison trains (3 epochs here) on the sample data and gets a
    row: finite PSNR/SSIM per test, its parameter counts and a decoder time; run again, the trained
    checkpoints are taken and the table repeats exactly (the evaluation is deterministic)."""
    root = tmp_path / 'load' / 'sample'
    load_script('scripts/prepare_sample_data.py', 'prepare_sample_data').prepare(str(root))
    recipe = load_yaml(ROOT / 'configs/train-sample/train_tiny-liif.yaml')
    recipe['train_dataset']['dataset']['args']['root_path'] = str(root / 'train_HR')
    recipe['val_dataset']['dataset']['args']['root_path'] = str(root / 'valid_HR')
    cfg = load_yaml(SHIPPED)
    cfg['recipe'] = write(tmp_path / 'recipe.yaml', recipe)
    cfg['recipe_overrides'] = {'epoch_max': 3, 'multi_step_lr': None, 'epoch_val': 3, 'epoch_save': None}
    cfg['tests'] = [str(ROOT / f'configs/test/sample/test-sample5-{s}.yaml') for s in (2, 4)]
    config = write(tmp_path / 'compare.yaml', cfg)
    argv = ['--config', config, '--out', str(tmp_path / 'out'), '--data-root', str(root), '--gpu', 'cpu',
            '--timing-size', '16', '--repeat', '1']
    monkeypatch.chdir(tmp_path)
    rows = cli.main(argv)
    assert [r['name'] for r in rows] == [f['name'] for f in cfg['families']]
    for r in rows:
        ckpt = load_checkpoint(r['checkpoint'])
        assert ckpt['epoch'] == 3
        sd = ckpt['model']['sd']  # these models hold no buffers: every entry is a parameter
        assert r['params'] == sum(t.numel() for t in sd.values())
        assert r['decoder_params'] == sum(t.numel() for k, t in sd.items() if not k.startswith('encoder.')) > 0
        assert r['decoder_ms_per_mp'] > 0
        for psnr, ssim in r['scores'].values():
            assert 15 < psnr < 60 and 0 < ssim <= 1
    table = (tmp_path / 'out/table.md').read_text()
    assert 'threads of' in table.splitlines()[0]  # the CPU kind
    assert all(f"| {r['name']} |" in table for r in rows) and 'sample5-2 | sample5-4' in table
    saved = json.loads((tmp_path / 'out/results.json').read_text())
    assert [f['scores'] for f in saved['families']] == [{k: list(v) for k, v in r['scores'].items()} for r in rows]
    again = cli.main(argv)
    assert [r['scores'] for r in again] == [r['scores'] for r in rows]
    assert all(math.isfinite(r['decoder_ms_per_mp']) for r in again)
    assert torch.equal(load_checkpoint(rows[0]['checkpoint'])['model']['sd']['encoder.head.0.weight'],
                       load_checkpoint(again[0]['checkpoint'])['model']['sd']['encoder.head.0.weight'])
