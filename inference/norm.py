"""The one normalisation (docs/design.md §1): `DataNorm`, built from a config's or a checkpoint's
`data_norm` and used by training, evaluation, rendering and the demo alike.

A `data_norm` is either absent or
    data_norm:
      inp: {sub: [0.5], div: [0.5]}
      gt: {sub: [0.5], div: [0.5]}
with `sub` and `div` lists of 1 (all channels) or 3 (per channel) numbers, no zero in `div`.
In a config, absent means sub 0, div 1 (the paper's code). A checkpoint without a stored config
(the paper authors' releases) was trained with the shipped configs' sub 0.5, div 0.5.
"""
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from utils.config import Checker
from utils.errors import UserError

Pair = tuple[tuple[float, ...], tuple[float, ...]]  # (sub, div)
IDENTITY: Pair = ((0.0,), (1.0,))
HALF: Pair = ((0.5,), (0.5,))  # the shipped configs' and the paper releases' normalisation
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


@dataclass(frozen=True)
class DataNorm:
    """inp = (x - inp_sub) / inp_div, gt = (y - gt_sub) / gt_div, per channel; predictions are
    de-normalised with the gt pair and clamped to [0, 1]."""
    inp_sub: tuple = (0.0,)
    inp_div: tuple = (1.0,)
    gt_sub: tuple = (0.0,)
    gt_div: tuple = (1.0,)

    @classmethod
    def from_config(cls, data_norm: Any, where: str = 'config', default: Pair = IDENTITY) -> 'DataNorm':
        """From the data_norm mapping of config `where`; None means `default` (sub 0, div 1)."""
        norm = parse_data_norm(data_norm, where, default)
        return cls(*norm['inp'], *norm['gt'])

    @classmethod
    def from_checkpoint(cls, ckpt: dict, where: str = 'checkpoint') -> 'DataNorm':
        """The normalisation a checkpoint's model was trained with: its 'data_norm' (every checkpoint
        this project writes has one), else its stored config's data_norm (absent there: sub 0,
        div 1), else, for the paper's releases, which carry neither, 0.5 / 0.5."""
        if 'data_norm' in ckpt:
            return cls.from_config(ckpt['data_norm'], where)
        cfg = ckpt.get('config')
        if cfg is None:
            return cls.from_config(None, where, default=HALF)
        if not isinstance(cfg, dict):
            raise UserError(f'{where}: its config: expected a mapping, got {type(cfg).__name__}')
        return cls.from_config(cfg.get('data_norm'), f'{where} (its config)')

    def describe(self) -> str:
        """One line, e.g. 'inp sub [0.5] div [0.5], gt sub [0.5] div [0.5]'."""
        fmt = lambda t: '[' + ', '.join(f'{v:g}' for v in t) + ']'  # noqa: E731
        return (f'inp sub {fmt(self.inp_sub)} div {fmt(self.inp_div)}, '
                f'gt sub {fmt(self.gt_sub)} div {fmt(self.gt_div)}')

    def inp(self, x: Tensor) -> Tensor:
        """x (B, 3, h, w) in [0, 1] -> normalised encoder input."""
        return (x - x.new_tensor(self.inp_sub).view(1, -1, 1, 1)) / x.new_tensor(self.inp_div).view(1, -1, 1, 1)

    def gt(self, y: Tensor) -> Tensor:
        """y (B, Q, 3) in [0, 1] -> normalised target."""
        return (y - y.new_tensor(self.gt_sub)) / y.new_tensor(self.gt_div)

    def pred_to_rgb(self, pred: Tensor) -> Tensor:
        """pred (..., 3) in normalised units -> RGB in [0, 1], clamped (before any metric)."""
        return (pred * pred.new_tensor(self.gt_div) + pred.new_tensor(self.gt_sub)).clamp(0, 1)

    def pred_to_uint8(self, pred: Tensor) -> np.ndarray:
        """pred (..., 3) in normalised units -> uint8 numpy (..., 3): pred_to_rgb times 255,
        rounded half to even."""
        return self.pred_to_rgb(pred).mul_(255).round_().to(torch.uint8).cpu().numpy()

    def to_config(self) -> dict:
        """The data_norm mapping (plain lists) that from_config reads back to this object."""
        return {'inp': {'sub': list(self.inp_sub), 'div': list(self.inp_div)},
                'gt': {'sub': list(self.gt_sub), 'div': list(self.gt_div)}}
