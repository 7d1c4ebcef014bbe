"""Fault injection in training configs and resumes: values that pass the schema but cannot work,
hostile YAML inside args, checkpoints that cannot be resumed. Each is one line `error: ...`, exit
status 2, and no run folder at all (tests/faults.py)."""
import copy
import math
import signal
from pathlib import Path

import pytest
import yaml

import models
import tiny
from faults import TINY_LIIF, one_line_error, test_cli
from test_train import cli, data, one_thread, tiny_raw, write_config  # noqa: F401  (fixtures, helpers)
from training import probe as probe_module
from training import trainer
from training.config import check_train_config
from utils.checkpoints import load_checkpoint, save_checkpoint


def refused(raw: dict, tmp_path: Path, capsys, monkeypatch, *extra) -> str:
    """train_liif.py on config `raw`: exit 2, one line naming the config file, no run folder."""
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / 'bad.yaml', raw)
    code, err = cli(['--config', str(path), '--name', 'r', *extra], capsys)
    err = err.strip()
    assert code == 2 and err.startswith('error: ') and '\n' not in err, err
    assert 'bad.yaml' in err, err
    assert not (tmp_path / 'save').exists()
    return err


def with_args(raw: dict, path: str, value) -> dict:
    """A copy of raw with the value at dotted `path` replaced."""
    raw = copy.deepcopy(raw)
    *parents, last = path.split('.')
    node = raw
    for p in parents:
        node = node[p]
    node[last] = value
    return raw


@pytest.mark.parametrize('path, value, expect', [
    ('optimizer.args.lr', math.inf, 'optimizer.args.lr: expected a finite number'),
    ('optimizer.args.lr', 1.0e+38, 'optimizer.args.lr: expected a number <= 1'),
    ('optimizer.args.betas', [0.9, math.nan], 'optimizer.args.betas[1]: expected a finite number'),
    ('optimizer.args.betas', [0.9, 1.5], 'optimizer.args: not accepted by adam'),
    ('model.args.encoder_spec.args.n_feats', -8, 'model.args.encoder_spec.args.n_feats: expected an integer >= 0'),
    ('model.args.imnet_spec.args.hidden_list', [0], 'model.args: parameter imnet.layers.0.weight has no elements'),
    ('model', {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8}}, 'not an implicit image function'),
    ('train_dataset.wrapper.args.inp_size', 0, 'train_dataset.wrapper: inp_size must be a positive integer'),
    ('train_dataset.wrapper.args.inp_size', -16, 'train_dataset.wrapper.args.inp_size: expected an integer >= 0'),
    ('train_dataset.wrapper.args.inp_size', 100, 'train_dataset: image '),
    ('train_dataset.wrapper.args.scale_max', math.inf, 'wrapper.args.scale_max: expected a finite number'),
    ('seed', 2 ** 70, 'seed: expected an integer <= 9223372036854775807'),
    ('data_norm', {'inp': {'sub': [0.5], 'div': [math.inf]}, 'gt': {'sub': [0.5], 'div': [0.5]}},
     'data_norm.inp.div[0]: expected a finite number'),
])
def test_config_values_that_cannot_work_are_one_line(data, tmp_path, capsys, monkeypatch, path, value, expect):
    err = refused(with_args(tiny_raw(data), path, value), tmp_path, capsys, monkeypatch)
    assert expect in err, err


def test_eval_type_border_wider_than_the_validation_crops(data, tmp_path, capsys, monkeypatch):
    raw = tiny_raw(data, eval_type='div2k-30')
    raw['val_dataset']['wrapper']['args'].pop('sample_q')
    err = refused(raw, tmp_path, capsys, monkeypatch)
    assert 'eval_type div2k-30 on val_dataset' in err and 'border crop of 36' in err
    raw['val_dataset']['wrapper']['args']['sample_q'] = 256  # border crop on sampled pixels
    assert 'eval_type div2k-30 on val_dataset' in refused(raw, tmp_path, capsys, monkeypatch)


def test_an_alias_bomb_inside_model_args_does_not_hang(data, tmp_path, capsys, monkeypatch):
    """The schema checker walks the args: before, it walked 9^9 strings."""
    text = yaml.safe_dump(tiny_raw(data))
    bomb = ['    a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    bomb += [f'    {k}: &{k} [{", ".join([f"*{p}"] * 9)}]' for p, k in zip('abcdefgh', 'bcdefghi')]
    text = text.replace('model:\n  args:\n', 'model:\n  args:\n' + '\n'.join(bomb) + '\n', 1)
    assert '*h' in text
    (tmp_path / 'bad.yaml').write_text(text)
    monkeypatch.chdir(tmp_path)
    signal.alarm(30)  # a hang fails the test instead of the suite
    try:
        code, err = cli(['--config', str(tmp_path / 'bad.yaml'), '--name', 'r'], capsys)
    finally:
        signal.alarm(0)
    assert code == 2 and 'alias bomb' in err and not (tmp_path / 'save').exists()


def test_the_dry_run_leaves_the_run_unchanged(data, tmp_path):
    """Probing draws a batch under a forked random state: the run equals one without the probe."""

    cfg = tiny_raw(data, epoch_max=1)
    a = trainer.train(check_train_config(cfg, 'a'), tmp_path / 'a')
    real = trainer.probe
    try:
        trainer.probe = lambda *args, **kwargs: None
        b = trainer.train(check_train_config(cfg, 'b'), tmp_path / 'b')
    finally:
        trainer.probe = real
    assert a['train_loss'] == b['train_loss'] and a['val_psnr'] == b['val_psnr']
    assert probe_module.PROBE_QUERIES > 0


# ---------------------------------------------------------------- hostile resumes

def test_resume_from_a_model_only_checkpoint_is_one_line(data, tmp_path, capsys, monkeypatch):

    trainer.train(check_train_config(tiny_raw(data, epoch_max=1), 't'), tmp_path / 'a')
    full = load_checkpoint(tmp_path / 'a/epoch-last.pth')
    save_checkpoint({'model': full['model'], 'epoch': 1}, tmp_path / 'model-only.pth')
    save_checkpoint({'model': full['model'], 'optimizer': full['optimizer']}, tmp_path / 'no-epoch.pth')
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=2))
    for name, expect in (('model-only.pth', 'without its training state'), ('no-epoch.pth', 'without its training state')):
        code, err = cli(['--config', str(cfg), '--name', 'r', '--resume', name], capsys)
        assert code == 2 and expect in err and err.count('\n') == 1, err
    assert not (tmp_path / 'save').exists()


def test_resume_from_a_nan_checkpoint_is_refused(data, tmp_path, capsys, monkeypatch):

    trainer.train(check_train_config(tiny_raw(data, epoch_max=1), 't'), tmp_path / 'a')
    ckpt = load_checkpoint(tmp_path / 'a/epoch-last.pth')
    next(iter(ckpt['model']['sd'].values())).view(-1)[0] = float('nan')
    save_checkpoint(ckpt, tmp_path / 'nan.pth')
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=2))
    code, err = cli(['--config', str(cfg), '--name', 'r', '--resume', 'nan.pth'], capsys)
    assert code == 2 and 'hold NaN or inf' in err and 'last good checkpoint' not in err
    assert not (tmp_path / 'save').exists()


# ---------------------------------------------------------------- booleans are YAML booleans (round 3)

@pytest.mark.parametrize('path, value', [
    ('train_dataset.wrapper.args.augment', 'false'),
    ('train_dataset.wrapper.args.augment', 1),
    ('train_dataset.wrapper.args.rgb_permute', 'no'),
    ('model.args.local_ensemble', 'no'),
    ('model.args.encoder_spec.args.no_upsampling', 'true'),
    ('optimizer.args.amsgrad', 'false'),
    ('optimizer.args.maximize', 'off'),
    ('optimizer.args.foreach', 0),
])
def test_booleans_must_be_yaml_booleans(data, tmp_path, capsys, monkeypatch, path, value):
    err = refused(with_args(tiny_raw(data), path, value), tmp_path, capsys, monkeypatch)
    assert f'{path}: expected true or false' in err, err


def test_booleans_in_test_configs_and_checkpoints_must_be_booleans(eval_setup, tmp_path, capsys):
    raw = yaml.safe_load(eval_setup['config'].read_text())
    raw['test_dataset']['wrapper']['args']['augment'] = 'false'
    cfg = tmp_path / 'bad.yaml'
    cfg.write_text(yaml.safe_dump(raw))
    err = one_line_error(lambda: test_cli.main(['--config', str(cfg), '--model', 'bicubic', '--quiet']), capsys)
    assert 'bad.yaml: test_dataset.wrapper.args.augment: expected true or false' in err, err
    spec = {'name': 'liif', 'args': {**TINY_LIIF['args'], 'local_ensemble': 'no'}}
    ckpt = tmp_path / 'bad.pth'
    save_checkpoint({'model': {**spec, 'sd': models.make(TINY_LIIF).state_dict()}}, ckpt)
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', str(ckpt),
                                                '--quiet']), capsys)
    assert 'bad.pth' in err and 'args.local_ensemble: expected true or false' in err, err


@pytest.mark.parametrize('change, expect', [
    ({'eval_bsise': 1000}, 'eval_bsise: unknown key'),  # a misspelt key used to be ignored
    ({'test_dataset.wrapper.args.scale': 3}, "test_dataset.wrapper: dataset 'sr-implicit-downsampled': got an "
                                             "unexpected keyword argument 'scale'"),  # a TypeError traceback
    ({'test_dataset.batch_size': 10 ** 30}, 'test_dataset.batch_size: expected an integer <='),  # a traceback
    ({'eval_type': 'benchmark-3'}, 'scale_min 2 disagrees with eval_type benchmark-3'),  # x2 data scored as x3
    ({'test_dataset.wrapper.args.augment': True}, 'augment: must be false'),  # scores changed between runs
    ({'cell_scale_max': math.inf}, 'cell_scale_max: expected a finite number'),
])
def test_test_configs_that_misled_or_crashed_are_one_line(eval_setup, tmp_path, capsys, change, expect):
    raw = yaml.safe_load(eval_setup['config'].read_text())
    for path, value in change.items():
        raw = with_args(raw, path, value) if '.' in path else {**raw, path: value}
    cfg = tmp_path / 'bad.yaml'
    cfg.write_text(yaml.safe_dump(raw))
    err = one_line_error(lambda: test_cli.main(['--config', str(cfg), '--model', str(eval_setup['ckpt']),
                                                '--quiet']), capsys)
    assert expect in err, err


# ---------------------------------------------------------------- tracebacks that must be one line (round 3)

@pytest.mark.parametrize('path, value, expect', [
    ('optimizer.args.betas', [0.9], 'optimizer.args'),
    ('optimizer.args.betas', 'x', 'optimizer.args'),
    ('optimizer.args.differentiable', True, 'optimizer.args.differentiable'),
    ('optimizer.args.capturable', True, 'optimizer.args.capturable'),
    ('optimizer.args.weight_decay', -1.0, 'optimizer.args'),
    ('multi_step_lr.gamma', 1.0e+300, 'multi_step_lr.gamma'),
    ('multi_step_lr.milestones', [1, 2, 3, 4, 5, 6, 7, 8], None),
    ('num_workers', -1, 'num_workers: expected an integer >= 0'),
    ('num_workers', 10 ** 6, 'num_workers: expected an integer <='),
    ('epoch_max', 10 ** 30, 'epoch_max: expected an integer <='),
    ('train_dataset.batch_size', 10 ** 12, 'train_dataset.batch_size: expected an integer <='),
    # held-back variants: each crashed, ran silently with another meaning, or failed after the run folder
    ('optimizer.args.weight_decay', 1.0e+300, 'optimizer.args.weight_decay: expected a number of at most'),
    ('optimizer.args.betas', [0.9, 0.999, 0.5], 'optimizer.args.betas: expected two numbers'),
    ('train_dataset.dataset.args.repeat', 10 ** 30, 'repeat of'),
    ('eval_type', 5, 'eval_type: expected a string, got 5'),
    ('eval_bsize', 10 ** 30, 'eval_bsize: expected an integer <= 16777216'),
    ('model.args.encoder_spec.args.n_resblocks', -1, 'n_resblocks: expected an integer >= 0, got -1'),
    ('model.args.imnet_spec.args.hidden_list', [1000000, 1000000], 'GiB to train'),  # 16 TB
    ('train_dataset.wrapper.args.inp_size', None, 'each item is downscaled by its own random scale'),
])
def test_config_values_that_crashed_are_one_line(data, tmp_path, capsys, monkeypatch, path, value, expect):
    raw = with_args(tiny_raw(data), path, value)
    if expect is None:  # milestones alone are fine; gamma 10 over 8 milestones is 1e8 x the rate
        raw = with_args(raw, 'multi_step_lr.gamma', 10.0)
        expect = 'multi_step_lr.gamma'
    err = refused(raw, tmp_path, capsys, monkeypatch)
    assert expect in err, err
    assert err.count('bad.yaml') == 1, err


@pytest.mark.parametrize('part', ['encoder_spec', 'sd'])
def test_malformed_checkpoints_are_one_line_everywhere(eval_setup, tmp_path, capsys, part):
    import subprocess
    import sys
    import torch
    spec = {'name': 'liif', 'args': {**TINY_LIIF['args']}}
    sd = models.make(TINY_LIIF).state_dict()
    if part == 'encoder_spec':
        spec['args']['encoder_spec'] = 'edsr-baseline'
    else:
        sd['imnet.layers.0.bias'] = [0.0] * 16
    ckpt = tmp_path / 'bad.pth'
    torch.save({'model': {**spec, 'sd': sd}}, ckpt)
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', str(ckpt),
                                                '--quiet']), capsys)
    assert 'bad.pth' in err
    repo = Path(__file__).resolve().parents[1]
    from PIL import Image
    import numpy as np
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'in.png')
    for argv in ([str(repo / 'demo.py'), '--input', str(tmp_path / 'in.png'), '--scale', '2', '--model', str(ckpt)],
                 [str(repo / 'scripts' / 'export_model.py'), str(ckpt), str(tmp_path / 'out.pth')]):
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr
        assert 'bad.pth' in proc.stderr


def test_an_image_too_small_for_the_crop_anywhere_in_the_set_is_refused_before_the_folder(data, tmp_path, capsys,
                                                                                         monkeypatch):
    import shutil
    from PIL import Image
    import numpy as np
    train = tmp_path / 'train'
    shutil.copytree(data / 'train', train)
    Image.fromarray(np.zeros((50, 70, 3), np.uint8)).save(train / 'zz_small.png')  # sorted last
    raw = tiny_raw(data)
    raw['train_dataset']['dataset']['args']['root_path'] = str(train)
    err = refused(raw, tmp_path, capsys, monkeypatch)
    assert 'train_dataset' in err and 'zz_small.png is 50x70, smaller than the 64x64 HR crop' in err, err


def test_a_validation_set_without_epoch_val_is_refused(data, tmp_path, capsys, monkeypatch):
    err = refused(with_args(tiny_raw(data), 'epoch_val', None), tmp_path, capsys, monkeypatch)
    assert 'epoch_val: missing: val_dataset is given but would never be validated' in err, err


# ---------------------------------------------------------------- a training step that cannot fit (round 3)

@pytest.mark.parametrize('changes', [
    # 2**20 samples of the tiny config's crops: the loader grew until the machine killed the process
    {'train_dataset.batch_size': 1 << 20, 'train_dataset.dataset.args.repeat': 10 ** 6},
    # a wide decoder on a moderate batch: the data fits, the activations kept for backward do not
    {'train_dataset.batch_size': 1 << 14, 'train_dataset.dataset.args.repeat': 1 << 14,
     'model.args.imnet_spec.args.hidden_list': [4096, 4096]},
])
def test_a_training_step_larger_than_the_machine_is_one_line(data, tmp_path, capsys, monkeypatch, changes):
    raw = tiny_raw(data)
    for path, value in changes.items():
        raw = with_args(raw, path, value)
    err = refused(raw, tmp_path, capsys, monkeypatch)
    assert 'train_dataset: one training step of' in err and 'GiB' in err and 'batch_size' in err, err


@pytest.mark.parametrize('spec', [tiny.liif_spec(), tiny.metasr_spec(), tiny.aliif_spec(), tiny.srno_spec(),
                                  tiny.hiif_spec()], ids=lambda s: s['name'])
def test_step_memory_extrapolates_the_bytes_kept_for_backward_exactly(spec):
    import torch
    from inference.norm import DataNorm
    from training.step_memory import saved_bytes, step_bytes
    torch.manual_seed(0)
    model, norm, q = models.make(spec), DataNorm.from_config(None, 'test'), 300
    sample = {'inp': torch.rand(1, 3, 12, 12), 'coord': torch.rand(1, q, 2) * 2 - 1,
              'cell': torch.full((1, q, 2), 2 / 36), 'gt': torch.rand(1, q, 3)}
    measured = saved_bytes(model, norm.inp(sample['inp']), sample['coord'], sample['cell'], 'fp32')
    data_bytes = sum(v.nbytes for v in sample.values())
    assert step_bytes(model, sample, norm, torch.device('cpu'), 'fp32', 1) == measured + data_bytes
    assert step_bytes(model, sample, norm, torch.device('cpu'), 'fp32', 16) == 16 * (measured + data_bytes)
