"""Learning-rate schedules of a training config, stepped once after every epoch (docs/design.md §4):

- `multi_step_lr: {milestones, gamma}`: the rate times gamma at each milestone (the LIIF paper's
  halving);
- `warmup_cosine_lr: {warmup_epochs, warmup_start_lr, min_lr, warmup_prefix}`: a linear warm-up
  from warmup_start_lr to the optimizer's lr, then a cosine down to min_lr at epoch_max (SRNO's and
  HIIF's recipes).

Both are torch schedulers whose state is plain values (resume loads it, never replays steps), with
the interface the resume logic (training/state.py) uses: `args()` the config's values, `set_args`,
and `lr_at(base, epoch)` the rate of an epoch in closed form.
"""
import math
from collections import Counter
from typing import Optional

import torch
from torch.optim.lr_scheduler import LRScheduler


def warmup_cosine(epoch: int, base: float, epoch_max: int, warmup_epochs: int, warmup_start_lr: float,
                  min_lr: float, warmup_prefix: bool) -> float:
    """The rate of 1-based `epoch`: linear from warmup_start_lr (epoch 1) towards base over the
    warm-up epochs; then min_lr + (base - min_lr) (1 + cos(pi t / T)) / 2, where with warmup_prefix
    the cosine starts after the warm-up (t = epoch - 1 - warmup_epochs, T = epoch_max -
    warmup_epochs: SRNO's GradualWarmup then CosineAnnealing) and without it counts from epoch 1
    (t = epoch - 1, T = epoch_max: HIIF's timm CosineLRScheduler). t stops at T."""
    if epoch <= warmup_epochs:
        return warmup_start_lr + (base - warmup_start_lr) * (epoch - 1) / warmup_epochs
    t, span = (epoch - 1 - warmup_epochs, epoch_max - warmup_epochs) if warmup_prefix else (epoch - 1, epoch_max)
    return min_lr + (base - min_lr) * (1 + math.cos(math.pi * min(t, span) / max(span, 1))) / 2


class WarmupCosineLR(LRScheduler):
    """`warmup_cosine` for every parameter group (its base rate the group's initial lr)."""

    def __init__(self, optimizer: torch.optim.Optimizer, epoch_max: int, warmup_epochs: int,
                 warmup_start_lr: float, min_lr: float = 0.0, warmup_prefix: bool = True, last_epoch: int = -1):
        self.set_args({'epoch_max': epoch_max, 'warmup_epochs': warmup_epochs, 'warmup_start_lr': warmup_start_lr,
                       'min_lr': min_lr, 'warmup_prefix': warmup_prefix})
        super().__init__(optimizer, last_epoch)

    def args(self) -> dict:
        """The values the config sets (epoch_max included)."""
        return {'epoch_max': self.epoch_max, 'warmup_epochs': self.warmup_epochs,
                'warmup_start_lr': self.warmup_start_lr, 'min_lr': self.min_lr, 'warmup_prefix': self.warmup_prefix}

    def set_args(self, args: dict) -> None:
        for key, value in args.items():
            setattr(self, key, value)

    def lr_at(self, base: float, epoch: int) -> float:
        """The rate of 1-based `epoch` for a group whose base rate is `base`."""
        return warmup_cosine(epoch, base, **self.args())

    def get_lr(self) -> list[float]:
        return [self.lr_at(base, self.last_epoch + 1) for base in self.base_lrs]


class MultiStepLR(torch.optim.lr_scheduler.MultiStepLR):
    """torch's MultiStepLR (its state loads as before) with the interface of WarmupCosineLR."""

    def args(self) -> dict:
        return {'milestones': dict(Counter(self.milestones)), 'gamma': self.gamma}

    def set_args(self, args: dict) -> None:
        self.milestones, self.gamma = Counter(args['milestones']), args['gamma']

    def lr_at(self, base: float, epoch: int) -> float:
        """base times gamma for every milestone passed before `epoch` (1-based) starts."""
        return base * self.gamma ** sum(n for m, n in self.milestones.items() if m <= epoch - 1)


def build_scheduler(config: dict, optimizer: torch.optim.Optimizer) -> Optional[LRScheduler]:
    """The checked config's schedule over `optimizer`, or None (a constant rate)."""
    if config.get('multi_step_lr') is not None:
        msl = config['multi_step_lr']
        return MultiStepLR(optimizer, msl['milestones'], msl['gamma'])
    if config.get('warmup_cosine_lr') is not None:
        return WarmupCosineLR(optimizer, config['epoch_max'], **config['warmup_cosine_lr'])
    return None
