"""Training losses by name (the config's `loss: {name: ..., args: {...}}`, default `l1`; docs/design.md §4.2).

A loss is a factory `(**args) -> fn(pred, gt, batch) -> scalar Tensor`: pred and gt (B, Q, 3) in
normalised units, batch the loader's item (its 'inp', 'coord', 'cell'). `l1` is the paper's and
the only one shipped. This is the hook for Real-ESRGAN's perceptual and GAN terms: they need
pretrained networks (VGG-19, a discriminator's start) that cannot be fetched here, so they are not
implemented. Such a loss registers here, takes the whole crop (sample_q off, so gt reshapes to an
image), and owns its network; a discriminator would also need its own optimizer step in
training/loop.py.
"""
from typing import Callable

import torch.nn.functional as F
from torch import Tensor

from utils.errors import UserError
from utils.registry import Registry

LOSSES = Registry('loss')
LossFn = Callable[[Tensor, Tensor, dict], Tensor]


@LOSSES.register('l1')
def l1(**args) -> LossFn:
    """The paper's L1 between prediction and ground truth (mean over queries and channels)."""
    if args:
        raise UserError(f'loss l1 takes no args, got {", ".join(args)}')
    return lambda pred, gt, batch: F.l1_loss(pred, gt)


def make_loss(spec) -> LossFn:
    """The loss of a config's `loss` spec (None: l1)."""
    spec = spec or {'name': 'l1'}
    return LOSSES.get(spec['name'])(**(spec.get('args') or {}))
