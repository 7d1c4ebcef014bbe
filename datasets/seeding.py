"""Seeding the random draws of the wrappers (scale, crop and flips from Python's `random`,
`sample_q` from torch's generator, numpy for any other).

Training draws every sample from its own seed (`PerSampleSeeds`): item i of an epoch is made with
every global generator seeded by derive_seed(run seed, stream, epoch, i), then the generators are
put back. So a sample depends on the run's seed, the epoch and its index only: not on
`num_workers` (0, in the main process, or N worker processes), on which worker or process draws
it, or on the machine's CPU count, which the default number of workers follows. Outside
training, `seed_all(seed)` before iterating makes a loop repeat.
"""
import contextlib
import random
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset


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


def derive_seed(*keys: int) -> int:
    """An independent 63-bit seed for a tuple of non-negative ints, e.g. (seed, rank, epoch)."""
    state = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """A block with Python's, numpy's and torch's (CPU) generators seeded by `seed`; their states
    are restored afterwards, so the caller's own stream is untouched."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    seed_all(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class PerSampleSeeds(Dataset):
    """`dataset` whose item i is drawn with its own seed, derive_seed(seed, i) (module doc)."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, idx: int):
        with seeded(derive_seed(self.seed, int(idx))):
            return self.dataset[idx]
