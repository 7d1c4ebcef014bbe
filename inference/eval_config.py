"""A test config (configs/test/*.yaml): its `test_dataset` block checked, its ./load paths moved
under a data root, and the loader built from it, for test.py and the benchmark scripts."""
import os
from pathlib import Path
from typing import Optional

from torch.utils.data import DataLoader, Dataset

import datasets
from utils.errors import UserError

LOAD_PREFIX = 'load'  # configs name their data ./load/...; a data root replaces this folder


def rewrite_data_root(spec, data_root: Optional[str]):
    """A copy of a dataset spec whose paths under ./load are moved under data_root
    ('./load/benchmark/Set5/HR' -> '<data_root>/benchmark/Set5/HR'); other values untouched."""
    if isinstance(spec, dict):
        return {k: rewrite_data_root(v, data_root) for k, v in spec.items()}
    if isinstance(spec, list):
        return [rewrite_data_root(v, data_root) for v in spec]
    if data_root is None or not isinstance(spec, str):
        return spec
    parts = Path(spec).parts
    if parts and parts[0] == LOAD_PREFIX:
        return str(Path(data_root, *parts[1:]))
    return spec


def data_paths(spec) -> list[str]:
    """Every folder (root_path*) and split file a dataset spec reads from."""
    if isinstance(spec, dict):
        found = []
        for k, v in spec.items():
            if isinstance(v, str) and (k.startswith('root_path') or k == 'split_file'):
                found.append(v)
            else:
                found += data_paths(v)
        return found
    if isinstance(spec, list):
        return [p for v in spec for p in data_paths(v)]
    return []


def load_test_spec(cfg: dict, config: str) -> dict:
    """The config's test_dataset block, checked: dataset and wrapper specs, batch_size."""
    spec = cfg.get('test_dataset')
    if not isinstance(spec, dict):
        raise UserError(f"{config}: missing 'test_dataset' (with 'dataset', 'wrapper' and 'batch_size')")
    for key in ('dataset', 'wrapper'):
        if not (isinstance(spec.get(key), dict) and isinstance(spec[key].get('name'), str)):
            raise UserError(f"{config}: test_dataset.{key} must be a spec with a 'name' (and 'args')")
    bs = spec.get('batch_size', 1)
    if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
        raise UserError(f'{config}: test_dataset.batch_size must be a positive integer, got {bs!r}')
    return spec


def check_data_paths(spec: dict, config: str, data_root: Optional[str], env_var: str) -> None:
    """A UserError naming the first folder or split file of `spec` that does not exist."""
    for path in data_paths(spec):
        if not os.path.exists(path):
            raise UserError(f'dataset folder not found: {path} (config {config}'
                            + (f', data root {data_root})' if data_root else f'; set --data-root or ${env_var})'))


def item_names(dataset: Dataset) -> Optional[list[str]]:
    """File names behind a wrapped dataset's items, if its inner dataset can describe them."""
    inner = getattr(dataset, 'dataset', None)
    if inner is None or not hasattr(inner, 'describe'):
        return None
    return [inner.describe(i) for i in range(len(dataset))]


def make_loader(spec: dict, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """The in-order loader of a checked test_dataset spec."""
    dataset = datasets.make(spec['wrapper'], args={'dataset': datasets.make(spec['dataset'])})
    return DataLoader(dataset, batch_size=spec.get('batch_size', 1), shuffle=False,
                      num_workers=workers, pin_memory=pin_memory)
