"""Resolve the compute device once, from a --gpu flag: CUDA when present, else CPU."""
from typing import Optional, Union

import torch

from .errors import UserError


def parse_gpus(gpu: Optional[str], flag: str = '--gpu') -> list[int]:
    """'0,1' -> [0, 1]; 'cuda:1' -> [1]; 'cuda' -> [0]; None, '', 'auto' or 'cpu' -> []."""
    if gpu is None or str(gpu).strip().lower() in ('', 'auto', 'cpu'):
        return []
    text = str(gpu).strip().lower()
    if text == 'cuda':
        return [0]
    try:
        return [int(g.removeprefix('cuda:')) for g in text.split(',')]
    except ValueError:
        raise UserError(f"{flag} expects GPU indices like '0' or '0,1' (or 'cuda', 'cuda:1', 'cpu'), "
                        f'got {gpu!r}') from None


def resolve_device(gpu: Union[str, torch.device, None] = None, flag: str = '--gpu') -> torch.device:
    """--gpu (or the library's `device`, named by `flag` in messages) absent/'auto' -> cuda if
    available else cpu; 'cpu' -> cpu; '0,1', 'cuda', 'cuda:1' or a torch.device -> that GPU (the
    first listed), a UserError when CUDA is absent or the index does not exist."""
    if isinstance(gpu, torch.device):
        gpu = 'cpu' if gpu.type == 'cpu' else f'cuda:{gpu.index or 0}' if gpu.type == 'cuda' else str(gpu)
    if gpu is not None and not isinstance(gpu, str):
        raise UserError(f"{flag} expects 'cpu', 'cuda', 'cuda:N' or a GPU index, got {gpu!r}")
    if gpu is not None and gpu.strip().lower() == 'cpu':
        return torch.device('cpu')
    ids = parse_gpus(gpu, flag)
    if not ids:
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if not torch.cuda.is_available():
        use = '--gpu cpu' if flag == '--gpu' else f"{flag}='cpu'"
        raise UserError(f'{flag} {gpu} asks for CUDA, but no CUDA device is available (use {use})')
    n = torch.cuda.device_count()
    bad = [i for i in ids if i >= n]
    if bad:
        raise UserError(f'{flag} {gpu}: no GPU {bad[0]} (this machine has {n})')
    return torch.device(f'cuda:{ids[0]}')
