"""Seeding the random draws of the wrappers (scale, crop and flips from Python's `random`,
`sample_q` from torch's generator).

In the main process (num_workers=0) call `seed_all(seed)` before iterating. With workers,
PyTorch already seeds `random`, numpy and torch in each worker from the loader's base seed
(drawn from torch's generator, or from `generator=`), so `seed_all(seed)` before creating the
iterator makes the epoch repeat; `seed_worker` states that explicitly for `worker_init_fn`.
"""
import random

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Seed Python's `random`, numpy and torch in this process."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: seed `random` and numpy from the worker's torch seed
    (base seed + worker id), so every worker's draws follow from the loader's seed."""
    seed = torch.initial_seed() % 2 ** 32
    random.seed(seed)
    np.random.seed(seed)
