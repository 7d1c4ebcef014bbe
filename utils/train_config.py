"""The training config of train_liif.py: its schema, checked on load (one line per mistake).

`load_train_config(path)` / `check_train_config(cfg, where)` return a new dict with defaults
filled in; the loaded mapping is never changed. Every failure is a UserError
`<file>: <key.path>: <what was expected>`. Numbers must be YAML numbers: PyYAML reads `1e-4`
as the *string* '1e-4' (it wants a dot, `1.0e-4` or `1.e-4`), so such strings are refused with
that hint rather than silently converted.
"""
import re
from typing import Any, Callable, Optional

import torch

from .config import load_yaml
from .data_norm import parse_data_norm
from .errors import UserError
from .precision import PRECISIONS

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    'adam': torch.optim.Adam,
    'adamw': torch.optim.AdamW,
    'sgd': torch.optim.SGD,
}

REQUIRED = ('train_dataset', 'model', 'optimizer', 'epoch_max')
DEFAULTS: dict[str, Any] = {
    'val_dataset': None, 'data_norm': None, 'eval_type': None, 'eval_bsize': None,
    'multi_step_lr': None, 'resume': None, 'epoch_val': None, 'epoch_save': None,
    'seed': 0, 'precision': 'fp32', 'num_workers': None,
}

# What PyYAML 1.1 leaves as a string although a person meant a number: 1e-4, 5E3, 1.0e4.
_YAML_NUMBER_STRING = re.compile(r'^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$')


def yaml_float(text: str) -> str:
    """'1e-4' -> '1.0e-4', '5E3' -> '5.0e+3': the spelling PyYAML reads as a float."""
    mantissa, exponent = text.lower().split('e')
    if '.' not in mantissa:
        mantissa += '.0'
    if exponent[0] not in '+-':
        exponent = '+' + exponent
    return f'{mantissa}e{exponent}'


class _Checker:
    """Type checks that fail with `<file>: <key>: <message>`."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, msg: str) -> None:
        raise UserError(f'{self.where}: {key}: {msg}')

    def got(self, value: Any) -> str:
        if isinstance(value, str) and _YAML_NUMBER_STRING.match(value):
            return (f'the string {value!r} (YAML reads an exponent number as text unless it has a '
                    f'dot and a signed exponent; write {yaml_float(value)})')
        return f'{value!r} ({type(value).__name__})'

    def mapping(self, value: Any, key: str, allowed: tuple = (), required: tuple = ()) -> dict:
        if not isinstance(value, dict):
            self.fail(key, f'expected a mapping, got {self.got(value)}')
        for k in required:
            if k not in value:
                self.fail(f'{key}.{k}', 'missing (required)')
        if allowed:
            for k in value:
                if k not in allowed:
                    self.fail(f'{key}.{k}', f'unknown key; expected one of {", ".join(allowed)}')
        return value

    def integer(self, value: Any, key: str, minimum: int = 1) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f'expected an integer >= {minimum}, got {self.got(value)}')
        if value < minimum:
            self.fail(key, f'expected an integer >= {minimum}, got {value}')
        return value

    def number(self, value: Any, key: str, positive: bool = False, nonzero: bool = False) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.fail(key, f'expected a number, got {self.got(value)}')
        if positive and not value > 0:
            self.fail(key, f'expected a number > 0, got {value}')
        if nonzero and value == 0:
            self.fail(key, 'must not be 0')
        return float(value)

    def string(self, value: Any, key: str, choices: Optional[tuple] = None) -> str:
        if not isinstance(value, str):
            self.fail(key, f'expected a string, got {self.got(value)}')
        if choices is not None and value not in choices:
            self.fail(key, f'expected one of {", ".join(choices)}, got {value!r}')
        return value

    def no_number_strings(self, value: Any, key: str) -> None:
        """Free-form args (model, dataset, optimizer): refuse strings YAML did not read as numbers."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.no_number_strings(v, f'{key}.{k}')
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.no_number_strings(v, f'{key}[{i}]')
        elif isinstance(value, str) and _YAML_NUMBER_STRING.match(value):
            self.fail(key, f'expected a number, got {self.got(value)}')

    def spec(self, value: Any, key: str, known: Optional[Callable[[str], bool]], names: Callable[[], list]) -> dict:
        self.mapping(value, key, allowed=('name', 'args'), required=('name',))
        self.string(value['name'], f'{key}.name')
        if known is not None and not known(value['name']):
            self.fail(f'{key}.name', f'unknown {value["name"]!r}; known: {", ".join(names())}')
        if value.get('args') is not None:
            self.mapping(value['args'], f'{key}.args')
            self.no_number_strings(value['args'], f'{key}.args')
        return value


def _check_dataset(c: _Checker, value: Any, key: str) -> None:
    import datasets  # datasets import utils: resolve the registry at call time

    c.mapping(value, key, allowed=('dataset', 'wrapper', 'batch_size'),
              required=('dataset', 'wrapper', 'batch_size'))
    c.spec(value['dataset'], f'{key}.dataset', datasets.DATASETS.__contains__, datasets.DATASETS.names)
    c.spec(value['wrapper'], f'{key}.wrapper', datasets.DATASETS.__contains__, datasets.DATASETS.names)
    c.integer(value['batch_size'], f'{key}.batch_size')


def _check_data_norm(c: _Checker, value: Any) -> None:
    parse_data_norm(value, c.where)


def _check_optimizer(c: _Checker, value: Any) -> None:
    c.mapping(value, 'optimizer', allowed=('name', 'args'), required=('name', 'args'))
    c.string(value['name'], 'optimizer.name', choices=tuple(OPTIMIZERS))
    args = c.mapping(value['args'], 'optimizer.args', required=('lr',))
    c.number(args['lr'], 'optimizer.args.lr', positive=True)
    c.no_number_strings(args, 'optimizer.args')


def _check_multi_step_lr(c: _Checker, value: Any) -> None:
    c.mapping(value, 'multi_step_lr', allowed=('milestones', 'gamma'), required=('milestones', 'gamma'))
    if not isinstance(value['milestones'], list):
        c.fail('multi_step_lr.milestones', f'expected a list of epochs, got {c.got(value["milestones"])}')
    for i, m in enumerate(value['milestones']):
        c.integer(m, f'multi_step_lr.milestones[{i}]')
    c.number(value['gamma'], 'multi_step_lr.gamma', positive=True)


def check_train_config(cfg: Any, where: str = 'config') -> dict:
    """Validate a training config (a mapping from YAML); return a new dict with every optional
    key present (DEFAULTS). `where` names the file in messages."""
    import models  # models import utils: resolve the registry at call time
    from .metrics import parse_eval_type

    c = _Checker(where)
    if not isinstance(cfg, dict):
        raise UserError(f'{where}: expected a mapping of config keys, got {type(cfg).__name__}')
    for key in cfg:
        if key not in REQUIRED and key not in DEFAULTS:
            c.fail(key, f'unknown key; expected {", ".join(REQUIRED + tuple(DEFAULTS))}')
    for key in REQUIRED:
        if key not in cfg:
            c.fail(key, 'missing (required)')
    out = {**DEFAULTS, **cfg}

    _check_dataset(c, out['train_dataset'], 'train_dataset')
    if out['val_dataset'] is not None:
        _check_dataset(c, out['val_dataset'], 'val_dataset')
    if out['data_norm'] is not None:
        _check_data_norm(c, out['data_norm'])
    if out['eval_type'] is not None:
        try:
            parse_eval_type(c.string(out['eval_type'], 'eval_type'))
        except UserError as e:
            c.fail('eval_type', str(e))
    if out['eval_bsize'] is not None:
        c.integer(out['eval_bsize'], 'eval_bsize')
    c.spec(out['model'], 'model', models.MODELS.__contains__, models.MODELS.names)
    _check_optimizer(c, out['optimizer'])
    c.integer(out['epoch_max'], 'epoch_max')
    if out['multi_step_lr'] is not None:
        _check_multi_step_lr(c, out['multi_step_lr'])
    if out['resume'] is not None:
        c.string(out['resume'], 'resume')
    for key in ('epoch_val', 'epoch_save'):
        if out[key] is not None:
            c.integer(out[key], key)
    c.integer(out['seed'], 'seed', minimum=0)
    c.string(out['precision'], 'precision', choices=PRECISIONS)
    if out['num_workers'] is not None:
        c.integer(out['num_workers'], 'num_workers', minimum=0)
    return out


def load_train_config(path) -> dict:
    """Read (yaml.safe_load) and validate a training config file; see check_train_config."""
    return check_train_config(load_yaml(path), str(path))
