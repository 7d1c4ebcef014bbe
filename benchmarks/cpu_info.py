"""What CPU a benchmark ran on: its model name and whether it has AMX (bf16 matrix tiles) or only
AVX512-BF16 (bf16 dot products), which decides how much faster bf16 is than fp32 here.

    python benchmarks/cpu_info.py        # prints e.g. 'AMD EPYC, 2 threads, AVX512-BF16 (no AMX)'
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.precision import cpu_flags  # noqa: E402


def cpu_model() -> str:
    """The model name of the first CPU ('unknown CPU' where the platform does not say)."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return 'unknown CPU'


def bf16_kind(flags: set[str]) -> str:
    """'AMX-BF16', 'AVX512-BF16 (no AMX)' or 'no bf16 instructions'."""
    if 'amx_bf16' in flags:
        return 'AMX-BF16'
    if 'avx512_bf16' in flags:
        return 'AVX512-BF16 (no AMX)'
    return 'no bf16 instructions'


def cpu_kind() -> str:
    """One line for a benchmark's header: model, torch threads, bf16 support, torch version."""
    return (f'{cpu_model()}, {torch.get_num_threads()} threads of {os.cpu_count()} CPUs, '
            f'{bf16_kind(cpu_flags())}; torch {torch.__version__}')


if __name__ == '__main__':
    print(cpu_kind())
