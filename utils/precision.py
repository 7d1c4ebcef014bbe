"""Reduced precision: one switch (fp32 | bf16 | fp16) shared by training, test.py and demo.py, and
whether a device computes bf16 natively (where bf16 is faster, not an emulation)."""
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


def cpu_flags() -> set[str]:
    """The feature flags of the first CPU in /proc/cpuinfo (x86 'flags', Arm 'Features'); empty
    where the platform has no such file."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('flags', 'Features')):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` has bf16 arithmetic in hardware: a CUDA GPU that supports it, or a CPU with
    AVX512-BF16 or AMX-BF16 (x86) or the BF16 extension (Arm). Elsewhere bf16 is emulated and
    slower than fp32."""
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    if device.type != 'cpu':
        return False
    return bool(cpu_flags() & {'avx512_bf16', 'amx_bf16', 'bf16'})
