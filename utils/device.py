"""Resolve the compute device once, from a --gpu flag: CUDA when present, else CPU."""
from typing import Optional

import torch

from .errors import UserError


def parse_gpus(gpu: Optional[str]) -> list[int]:
    """'0,1' -> [0, 1]; None, '', 'auto' or 'cpu' -> []."""
    if gpu is None or gpu.strip().lower() in ('', 'auto', 'cpu'):
        return []
    try:
        return [int(g) for g in gpu.split(',')]
    except ValueError:
        raise UserError(f"--gpu expects GPU indices like '0' or '0,1' (or 'cpu'), got {gpu!r}") from None


def resolve_device(gpu: Optional[str] = None) -> torch.device:
    """--gpu absent/'auto' -> cuda if available else cpu; 'cpu' -> cpu; '0,1' -> cuda:0 (the
    first listed GPU), a UserError when CUDA is absent or the index does not exist."""
    if gpu is not None and gpu.strip().lower() == 'cpu':
        return torch.device('cpu')
    ids = parse_gpus(gpu)
    if not ids:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if not torch.cuda.is_available():
        raise UserError(f'--gpu {gpu} asks for CUDA, but no CUDA device is available (use --gpu cpu)')
    n = torch.cuda.device_count()
    bad = [i for i in ids if i >= n]
    if bad:
        raise UserError(f'--gpu {gpu}: no GPU {bad[0]} (this machine has {n})')
    return torch.device(f'cuda:{ids[0]}')
