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

from .config import Checker

Pair = tuple[tuple[float, ...], tuple[float, ...]]  # (sub, div)
IDENTITY: Pair = ((0.0,), (1.0,))
PARTS = ('inp', 'gt')
KEYS = ('sub', 'div')


def parse_data_norm(value: Any, where: str, default: Pair = IDENTITY) -> dict[str, Pair]:
    """data_norm -> {'inp': (sub, div), 'gt': (sub, div)}; None -> `default` for both parts.
    A mistake raises UserError('<where>: data_norm.<part>.<key>: <what was expected>')."""
    if value is None:
        return {part: default for part in PARTS}
    c = Checker(where)
    c.mapping(value, 'data_norm', allowed=PARTS, required=PARTS)
    out = {}
    for part in PARTS:
        pair = c.mapping(value[part], f'data_norm.{part}', allowed=KEYS, required=KEYS)
        out[part] = tuple(c.numbers(pair[k], f'data_norm.{part}.{k}', nonzero=(k == 'div')) for k in KEYS)
    return out
