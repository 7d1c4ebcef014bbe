"""The training config of train_liif.py: its schema, checked on load (one line per mistake).

`load_train_config(path)` / `check_train_config(cfg, where)` return a new dict with defaults
filled in; the loaded mapping is never changed. Every failure is a UserError
`<file>: <key.path>: <what was expected>`. Numbers must be YAML numbers: PyYAML reads `1e-4`
as the *string* '1e-4' (it wants a dot, `1.0e-4` or `1.e-4`), so such strings are refused with
that hint rather than silently converted.
"""
from typing import Any, Callable, Optional

import torch

import datasets
import models
from inference.eval_config import MAX_BATCH, MAX_WORKERS
from inference.metrics import parse_eval_type
from inference.options import check_bsize
from inference.norm import parse_data_norm
from utils.config import Checker
from utils.config_sources import load_config
from utils.errors import UserError
from utils.precision import PRECISIONS

from .losses import LOSSES

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    'adam': torch.optim.Adam,
    'adamw': torch.optim.AdamW,
    'sgd': torch.optim.SGD,
}

# Value bounds. A learning rate above 1 diverges at the first step for every optimizer offered
# (the paper's is 1e-4); seeds are 63-bit, what torch's and numpy's generators take.
MAX_LR = 1.0
MAX_SEED = 2 ** 63 - 1
MAX_VAL_IMAGES = 16  # validation images shown in TensorBoard per validation
# Counts no run reaches (the paper's: 1000 epochs; batch and workers: inference.eval_config).
MAX_EPOCHS = 10 ** 7
# Optimizer switches the training loop does not support (they fail only at the first step).
UNSUPPORTED_OPTIMIZER_ARGS = ('differentiable', 'capturable')
# Optimizer numbers are multiplied into 32-bit tensors: a larger one (weight_decay: 1.0e+300) fails
# only at the first step, after the run folder exists.
MAX_OPTIMIZER_NUMBER = float(torch.finfo(torch.float32).max)

REQUIRED = ('train_dataset', 'model', 'optimizer', 'epoch_max')
DEFAULTS: dict[str, Any] = {
    'val_dataset': None, 'data_norm': None, 'eval_type': None, 'eval_bsize': None, 'attention_rows': None,
    'multi_step_lr': None, 'warmup_cosine_lr': None, 'resume': None, 'epoch_val': None, 'epoch_save': None,
    'seed': 0, 'precision': 'fp32', 'num_workers': None, 'loss': None,
    'init': None, 'grad_clip': None, 'ema': None,
    'progress_seconds': 30, 'tensorboard_every': 100, 'val_images': 2,
}
# Keys of one entry of a val_dataset list (several validation sets; the first decides epoch-best).
VAL_LIST_KEYS = ('name', 'dataset', 'wrapper', 'batch_size', 'eval_type')


def _check_dataset(c: Checker, value: Any, key: str, allowed: tuple = ('dataset', 'wrapper', 'batch_size')) -> None:
    c.mapping(value, key, allowed=allowed, required=('dataset', 'wrapper', 'batch_size'))
    for part in ('dataset', 'wrapper'):
        c.spec(value[part], f'{key}.{part}', datasets.DATASETS.__contains__, datasets.DATASETS.names,
               datasets.DATASETS.get)
    c.integer(value['batch_size'], f'{key}.batch_size', maximum=MAX_BATCH)


def _check_val_datasets(c: Checker, value: Any) -> None:
    """val_dataset: one {dataset, wrapper, batch_size}, or a list of them, each with an optional
    name and eval_type (default: the config's)."""
    if not isinstance(value, list):
        _check_dataset(c, value, 'val_dataset')
        return
    if not value:
        c.fail('val_dataset', 'expected a validation set or a non-empty list of them, got []')
    names = set()
    for i, item in enumerate(value):
        key = f'val_dataset[{i}]'
        _check_dataset(c, item, key, VAL_LIST_KEYS)
        name = c.string(item.get('name', f'val{i}' if i else 'val'), f'{key}.name')
        if not name or name in names or not all(ch.isalnum() or ch in '-_.' for ch in name):
            c.fail(f'{key}.name', f'expected a new name of letters, digits, - _ or . (got {name!r})')
        names.add(name)
        if item.get('eval_type') is not None:
            _check_eval_type(c, item['eval_type'], f'{key}.eval_type')


def _check_eval_type(c: Checker, value: Any, key: str) -> None:
    c.string(value, key)
    try:
        parse_eval_type(value)
    except UserError as e:
        c.fail(key, str(e))


def val_sets(config: dict) -> list[tuple[str, dict, Optional[str]]]:
    """(name, {dataset, wrapper, batch_size}, eval_type) of each validation set of a checked config,
    the first one deciding epoch-best ('val' for a single set)."""
    value = config['val_dataset']
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [(item.get('name', f'val{i}' if i else 'val'),
             {k: item[k] for k in ('dataset', 'wrapper', 'batch_size')},
             item.get('eval_type') if item.get('eval_type') is not None else config['eval_type'])
            for i, item in enumerate(items)]


def _check_data_norm(c: Checker, value: Any) -> None:
    parse_data_norm(value, c.where)


def _check_optimizer(c: Checker, value: Any) -> None:
    c.mapping(value, 'optimizer', allowed=('name', 'args'), required=('name', 'args'))
    c.string(value['name'], 'optimizer.name', choices=tuple(OPTIMIZERS))
    args = c.mapping(value['args'], 'optimizer.args', required=('lr',))
    c.number(args['lr'], 'optimizer.args.lr', positive=True, maximum=MAX_LR)
    c.no_number_strings(args, 'optimizer.args')
    c.factory_args(OPTIMIZERS[value['name']], args, 'optimizer.args')
    for key in UNSUPPORTED_OPTIMIZER_ARGS:
        if args.get(key):
            c.fail(f'optimizer.args.{key}', 'must be false: training does not support it')
    if 'betas' in args and not (isinstance(args['betas'], list) and len(args['betas']) == 2):
        c.fail('optimizer.args.betas', f'expected two numbers [beta1, beta2], got {c.got(args["betas"])}')
    for k, v in args.items():
        for i, x in enumerate(v if isinstance(v, list) else [v]):
            if isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) > MAX_OPTIMIZER_NUMBER:
                where = f'optimizer.args.{k}' + (f'[{i}]' if isinstance(v, list) else '')
                c.fail(where, f'expected a number of at most {MAX_OPTIMIZER_NUMBER:.3g} in size (the weights are '
                              f'32-bit floats), got {x}')


def _check_multi_step_lr(c: Checker, value: Any) -> None:
    c.mapping(value, 'multi_step_lr', allowed=('milestones', 'gamma'), required=('milestones', 'gamma'))
    if not isinstance(value['milestones'], list):
        c.fail('multi_step_lr.milestones', f'expected a list of epochs, got {c.got(value["milestones"])}')
    for i, m in enumerate(value['milestones']):
        c.integer(m, f'multi_step_lr.milestones[{i}]')
    c.number(value['gamma'], 'multi_step_lr.gamma', positive=True)


def _check_schedule(c: Checker, lr: float, msl: dict) -> None:
    """The rate after every milestone stays at most MAX_LR (a gamma of 1e300 overflows it)."""
    peak = lr * max(1.0, min(msl['gamma'], 1e300) ** min(len(msl['milestones']), 400))
    if not peak <= MAX_LR:
        c.fail('multi_step_lr.gamma', f"{msl['gamma']:g} over {len(msl['milestones'])} milestone(s) raises the "
                                      f'learning rate {lr:g} above {MAX_LR:g}; a decay is a gamma below 1')


WARMUP_COSINE_DEFAULTS = {'min_lr': 0.0, 'warmup_prefix': True}


def _check_warmup_cosine_lr(c: Checker, value: Any) -> dict:
    """warmup_cosine_lr checked; returns a copy with min_lr and warmup_prefix filled in."""
    key = 'warmup_cosine_lr'
    required = ('warmup_epochs', 'warmup_start_lr')
    c.mapping(value, key, allowed=required + tuple(WARMUP_COSINE_DEFAULTS), required=required)
    out = {**WARMUP_COSINE_DEFAULTS, **value}
    c.integer(out['warmup_epochs'], f'{key}.warmup_epochs', minimum=0)
    for name in ('warmup_start_lr', 'min_lr'):
        if c.number(out[name], f'{key}.{name}', maximum=MAX_LR) < 0:
            c.fail(f'{key}.{name}', f'expected a rate >= 0, got {out[name]}')
    c.boolean(out['warmup_prefix'], f'{key}.warmup_prefix')
    return out


def check_train_config(cfg: Any, where: str = 'config') -> dict:
    """Validate a training config (a mapping from YAML); return a new dict with every optional
    key present (DEFAULTS). `where` names the file in messages."""
    c = Checker(where)
    if not isinstance(cfg, dict):
        raise UserError(f'{where}: expected a mapping of config keys, got {type(cfg).__name__}')
    for key in cfg:
        if key not in REQUIRED and key not in DEFAULTS:
            c.fail(key, f'unknown key; expected {", ".join(REQUIRED + tuple(DEFAULTS))}')
    for key in REQUIRED:
        if key not in cfg:
            c.fail(key, 'missing (required)')
    out = {**cfg, **{k: v for k, v in DEFAULTS.items() if k not in cfg}}  # the file's key order, then defaults

    _check_dataset(c, out['train_dataset'], 'train_dataset')
    if out['val_dataset'] is not None:
        _check_val_datasets(c, out['val_dataset'])
        if out['epoch_val'] is None:
            c.fail('epoch_val', 'missing: val_dataset is given but would never be validated; set epoch_val '
                                '(validate every so many epochs, e.g. 1) or remove val_dataset')
    if out['data_norm'] is not None:
        _check_data_norm(c, out['data_norm'])
    if out['eval_type'] is not None:
        _check_eval_type(c, out['eval_type'], 'eval_type')
    if out['eval_bsize'] is not None:
        check_bsize(out['eval_bsize'], where, 'eval_bsize')
    if out['attention_rows'] is not None:
        c.integer(out['attention_rows'], 'attention_rows')
    c.spec(out['model'], 'model', models.MODELS.__contains__, models.MODELS.names, models.MODELS.get)
    if out['loss'] is not None:
        c.spec(out['loss'], 'loss', LOSSES.__contains__, LOSSES.names, LOSSES.get)
    _check_optimizer(c, out['optimizer'])
    c.integer(out['epoch_max'], 'epoch_max', maximum=MAX_EPOCHS)
    if out['multi_step_lr'] is not None:
        _check_multi_step_lr(c, out['multi_step_lr'])
        _check_schedule(c, out['optimizer']['args']['lr'], out['multi_step_lr'])
    if out['warmup_cosine_lr'] is not None:
        if out['multi_step_lr'] is not None:
            c.fail('warmup_cosine_lr', 'give one schedule: multi_step_lr or warmup_cosine_lr, not both')
        out['warmup_cosine_lr'] = _check_warmup_cosine_lr(c, out['warmup_cosine_lr'])
    if out['resume'] is not None:
        c.string(out['resume'], 'resume')
    for key in ('epoch_val', 'epoch_save'):
        if out[key] is not None:
            c.integer(out[key], key)
    c.integer(out['seed'], 'seed', minimum=0, maximum=MAX_SEED)
    c.string(out['precision'], 'precision', choices=PRECISIONS)
    if out['num_workers'] is not None:
        c.integer(out['num_workers'], 'num_workers', minimum=0, maximum=MAX_WORKERS)
    if out['init'] is not None:
        c.string(out['init'], 'init')
    if out['grad_clip'] is not None:
        c.number(out['grad_clip'], 'grad_clip', positive=True)
    if out['ema'] is not None and not 0 < c.number(out['ema'], 'ema') < 1:
        c.fail('ema', f"expected a decay between 0 and 1 (e.g. 0.999), got {out['ema']}")
    c.number(out['progress_seconds'], 'progress_seconds', positive=True)
    c.integer(out['tensorboard_every'], 'tensorboard_every', minimum=0)
    c.integer(out['val_images'], 'val_images', minimum=0, maximum=MAX_VAL_IMAGES)
    return out


def load_train_config(path) -> dict:
    """Read a training config file (its `_base_` chain resolved, utils/config_sources.py) and
    validate it; see check_train_config."""
    return check_train_config(load_config(path), str(path))
