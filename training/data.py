"""Training data: the datasets of a config, and loaders whose order and random draws follow
from (seed, rank, epoch) alone, so that a resumed run sees the batches an unbroken one would."""
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

import datasets
from datasets.seeding import PerSampleSeeds, derive_seed, seed_worker
from inference.eval_config import DATA_ENV, check_data_paths
from utils.errors import UserError

from .distributed import DistEnv

# Second key of derive_seed: which stream (the first is the run's seed).
TRAIN_STREAM, VAL_STREAM = 0, 1


def make_dataset(section: dict, key: str, where: str) -> Dataset:
    """The config's {dataset, wrapper} pair -> the wrapped dataset; bad args name the key, a
    missing folder says how to make it."""
    check_data_paths(section, where, None, DATA_ENV)
    parts = []
    for part in ('dataset', 'wrapper'):
        spec = section[part]
        try:
            parts.append(datasets.make(spec, args={'dataset': parts[0]} if parts else None))
        except UserError as e:
            raise UserError(f'{where}: {key}.{part}: {e}') from None
        except (TypeError, ValueError) as e:
            raise UserError(f'{where}: {key}.{part}: cannot build {spec["name"]!r} ({e})') from None
    if len(parts[1]) == 0:
        raise UserError(f'{where}: {key}: the dataset is empty')
    return parts[1]


def rank_batch_size(batch_size: int, env: DistEnv, key: str) -> int:
    """The config's batch size is global: each of the world_size ranks takes an equal share."""
    if batch_size % env.world_size:
        raise UserError(f'{key}.batch_size {batch_size} does not split evenly over {env.world_size} processes')
    return batch_size // env.world_size


class EpochLoaders:
    """Builds each epoch's DataLoader: the shuffle comes from (seed, epoch) through the sampler,
    and each sample's random draws from (seed, epoch, its index) (datasets.seeding.PerSampleSeeds),
    so the data stream is the same for any num_workers and any number of processes."""

    def __init__(self, dataset: Dataset, batch_size: int, env: DistEnv, seed: int, num_workers: int,
                 pin_memory: bool, train: bool):
        self.dataset, self.env, self.seed, self.train = dataset, env, seed, train
        self.kwargs = dict(batch_size=batch_size, num_workers=num_workers, pin_memory=pin_memory,
                           worker_init_fn=seed_worker if num_workers > 0 else None)
        if train:
            # One sampler for 1 or N processes: N disjoint shards of the same permutation.
            self.sampler = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                                              shuffle=True, seed=seed, drop_last=False)
        else:
            # Validation: rank r takes items r, r + N, ...; no padding, so every item counts once.
            self.shard = range(env.rank, len(dataset), env.world_size)

    def seed_for(self, epoch: int) -> int:
        """The seed of this rank's random draws in `epoch` (validation: one fixed seed)."""
        if self.train:
            return derive_seed(self.seed, TRAIN_STREAM, self.env.rank, epoch)
        return derive_seed(self.seed, VAL_STREAM, self.env.rank)

    def sample_seed(self, epoch: int) -> int:
        """The seed from which every sample of `epoch` derives its own (validation: fixed), the
        same on every rank: a sample does not depend on who draws it."""
        if self.train:
            return derive_seed(self.seed, TRAIN_STREAM, epoch)
        return derive_seed(self.seed, VAL_STREAM)

    def __call__(self, epoch: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed_for(epoch))
        samples = PerSampleSeeds(self.dataset, self.sample_seed(epoch))
        if self.train:
            self.sampler.set_epoch(epoch)
            return DataLoader(samples, sampler=self.sampler, generator=generator, **self.kwargs)
        return DataLoader(Subset(samples, self.shard), shuffle=False, generator=generator, **self.kwargs)
