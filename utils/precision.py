"""Reduced precision: one switch (fp32 | bf16 | fp16) shared by training, test.py and demo.py."""
import contextlib

import torch

from .errors import UserError

PRECISIONS = ('fp32', 'bf16', 'fp16')


def check_precision(precision: str, device: torch.device) -> str:
    """Return precision if it can run on device, else a UserError saying what can."""
    if precision not in PRECISIONS:
        raise UserError(f'precision must be one of {", ".join(PRECISIONS)}, got {precision!r}')
    if precision == 'fp16' and device.type != 'cuda':
        raise UserError('precision fp16 needs a CUDA device; on CPU use bf16 or fp32')
    return precision


def autocast(device: torch.device, precision: str = 'fp32'):
    """A context running eligible ops (matrix products, convolutions) in bf16/fp16 under
    torch.autocast; fp32 is a no-op context."""
    check_precision(precision, device)
    if precision == 'fp32':
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == 'bf16' else torch.float16
    return torch.autocast(device.type, dtype=dtype)
