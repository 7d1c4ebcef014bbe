"""`data_norm`: how images are normalised for the model (SPEC §1), parsed in one place.

A config's (or a checkpoint's stored config's) `data_norm` is either absent or
    data_norm:
      inp: {sub: [0.5], div: [0.5]}
      gt: {sub: [0.5], div: [0.5]}
with `sub` and `div` lists of 1 (all channels) or 3 (per channel) numbers, no zero in `div`.
Absent means the caller's default: sub 0, div 1 (the paper's code), or for demo.py on a
checkpoint without any config, the shipped configs' 0.5 / 0.5.
"""
from typing import Any

from .errors import UserError

Pair = tuple[tuple[float, ...], tuple[float, ...]]  # (sub, div)
IDENTITY: Pair = ((0.0,), (1.0,))
PARTS = ('inp', 'gt')


def _fail(where: str, key: str, msg: str) -> None:
    raise UserError(f'{where}: {key}: {msg}')


def _numbers(value: Any, where: str, key: str, nonzero: bool) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) not in (1, 3):
        _fail(where, key, f'expected a list of 1 or 3 numbers (per channel), got {value!r}')
    for i, v in enumerate(value):
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            _fail(where, f'{key}[{i}]', f'expected a number, got {v!r}')
        if nonzero and v == 0:
            _fail(where, f'{key}[{i}]', 'must not be 0')
    return tuple(float(v) for v in value)


def parse_data_norm(value: Any, where: str, default: Pair = IDENTITY) -> dict[str, Pair]:
    """data_norm -> {'inp': (sub, div), 'gt': (sub, div)}; None -> `default` for both parts.
    A mistake raises UserError('<where>: data_norm.<part>.<key>: <what was expected>')."""
    if value is None:
        return {part: default for part in PARTS}
    if not isinstance(value, dict):
        _fail(where, 'data_norm', f'expected a mapping with inp and gt, got {value!r}')
    for k in value:
        if k not in PARTS:
            _fail(where, f'data_norm.{k}', 'unknown key; expected one of inp, gt')
    out = {}
    for part in PARTS:
        pair = value.get(part)
        if not isinstance(pair, dict):
            _fail(where, f'data_norm.{part}', f'expected a mapping with sub and div, got {pair!r}')
        for k in pair:
            if k not in ('sub', 'div'):
                _fail(where, f'data_norm.{part}.{k}', 'unknown key; expected one of sub, div')
        out[part] = tuple(_numbers(pair.get(k), where, f'data_norm.{part}.{k}', nonzero=(k == 'div'))
                          for k in ('sub', 'div'))
    return out
