"""The run's validation: one or several sets (config `val_dataset`, a mapping or a list), each with
its own protocol; the first decides epoch-best. Each set draws its crops from its own fixed seed
(the same samples every epoch) and leaves training's random stream untouched (docs/design.md §4)."""
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from inference.norm import DataNorm

from .data import EpochLoaders
from .loop import validate
from .state import forked_rng


@dataclass
class ValSet:
    """One validation set: its name ('val' for a single one), config key, loaders and protocol."""
    name: str
    key: str
    loaders: EpochLoaders
    eval_type: Optional[str]


def run_validation(model: nn.Module, sets: list[ValSet], epoch: int, norm: DataNorm, eval_bsize: Optional[int],
                   device: torch.device, precision: str, show: bool,
                   attention_rows: Optional[int] = None) -> dict[str, float]:
    """{set name: mean PSNR} of the (unwrapped) model on every set, in order (SRNO and HIIF
    attending over blocks of attention_rows rows, None: whole images)."""
    out = {}
    for vs in sets:
        with forked_rng(vs.loaders.seed_for(epoch)):
            out[vs.name] = validate(model, vs.loaders(epoch), norm, vs.eval_type, eval_bsize, device, precision,
                                    show=show, attention_rows=attention_rows)
    return out


def val_text(psnrs: dict[str, float], ema: Optional[dict[str, float]]) -> str:
    """', val: psnr=27.1234 (ema 27.2001), val1: psnr=...' for the epoch's log line."""
    parts = []
    for name, value in psnrs.items():
        parts.append(f'{name}: psnr={value:.4f}' + (f' (ema {ema[name]:.4f})' if ema else ''))
    return ', ' + ', '.join(parts) if parts else ''
