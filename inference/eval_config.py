"""A test config (configs/test/*.yaml) read into what an evaluation needs: the `test_dataset`
block checked, its ./load paths moved under a data root, optionally moved to another scale, the
protocol, query chunk, normalisation and cell clip; and the loader built from it (test.py)."""
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from torch.utils.data import DataLoader, Dataset

import datasets
from datasets.layout import data_hint
from utils.config import Checker
from utils.config_sources import apply_sets, describe_source, load_config
from utils.errors import UserError

from .groups import check_attention_rows
from .metrics import Protocol, parse_eval_type
from .norm import DataNorm
from .options import check_bsize

LOAD_PREFIX = 'load'  # configs name their data ./load/...; a data root replaces this folder
DATA_ENV = 'LIIF_DATA'  # the environment variable naming a data root (test.py and train_liif.py)
# Counts no run reaches (the paper's: batch 16, 8 workers), for test and training configs alike:
# larger ones are mistakes that would hang (a million loader workers) or overflow.
MAX_BATCH = 1 << 20
MAX_WORKERS = 256
# Wrapper switches that draw at random (training's augmentation): an evaluation must repeat.
RANDOM_SWITCHES = ('augment', 'rgb_permute')
# The keys of a test config.
TEST_KEYS = ('test_dataset', 'eval_type', 'eval_bsize', 'data_norm', 'cell_scale_max', 'attention_rows')


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


def load_test_spec(cfg: dict, config: str) -> dict:
    """The config's test_dataset block, checked: dataset and wrapper specs, batch_size."""
    spec = cfg.get('test_dataset')
    if not isinstance(spec, dict):
        raise UserError(f"{config}: missing 'test_dataset' (with 'dataset', 'wrapper' and 'batch_size')")
    c = Checker(config)
    for key in cfg:  # a misspelt key (eval_bsise) would silently not apply
        if key not in TEST_KEYS:
            c.fail(key, f'unknown key; expected {", ".join(TEST_KEYS)}')
    c.mapping(spec, 'test_dataset', allowed=('dataset', 'wrapper', 'batch_size'))
    for key in ('dataset', 'wrapper'):
        if not (isinstance(spec.get(key), dict) and isinstance(spec[key].get('name'), str)):
            raise UserError(f"{config}: test_dataset.{key} must be a spec with a 'name' (and 'args')")
        c.spec(spec[key], f'test_dataset.{key}', datasets.DATASETS.__contains__, datasets.DATASETS.names,
               datasets.DATASETS.get)
    c.integer(spec.get('batch_size', 1), 'test_dataset.batch_size', maximum=MAX_BATCH)
    for switch in RANDOM_SWITCHES:
        if (spec['wrapper'].get('args') or {}).get(switch):
            c.fail(f'test_dataset.wrapper.args.{switch}', 'must be false: its random flips or colour '
                                                          'shuffles would change the score from run to run')
    return spec


def check_data_paths(spec: dict, config: str, data_root: Optional[str], env_var: str) -> None:
    """A UserError naming the first folder or split file of `spec` that does not exist, and how to
    make it (datasets.layout.data_hint)."""
    for path in datasets.spec_inputs(spec, caches=False).values():
        if not os.path.exists(path):
            raise UserError(f'dataset folder not found: {path} (config {config}'
                            + (f', data root {data_root}' if data_root else f'; set --data-root or ${env_var}')
                            + f'); {data_hint(path)}')


def per_item(dataset: Dataset, method: str) -> Optional[list]:
    """`method(i)` of a wrapped dataset's inner dataset for each item i, or None when the inner
    dataset has no such method."""
    inner = getattr(dataset, 'dataset', None)
    if inner is None or not hasattr(inner, method):
        return None
    return [getattr(inner, method)(i) for i in range(len(dataset))]


def item_names(dataset: Dataset) -> Optional[list[str]]:
    """File names behind a wrapped dataset's items, if its inner dataset can describe them."""
    return per_item(dataset, 'describe')



def make_loader(spec: dict, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """The in-order loader of a checked test_dataset spec, with 0 .. MAX_WORKERS workers."""
    Checker('test loader').integer(workers, 'workers', minimum=0, maximum=MAX_WORKERS)
    parts = []
    for part in ('dataset', 'wrapper'):
        try:
            parts.append(datasets.make(spec[part], args={'dataset': parts[0]} if parts else None))
        except UserError as e:
            raise UserError(f'test_dataset.{part}: {e}') from None
    dataset = parts[1]
    return DataLoader(dataset, batch_size=spec.get('batch_size', 1), shuffle=False,
                      num_workers=workers, pin_memory=pin_memory)


def at_scale(spec: dict, protocol: Protocol, scale: float, config: str) -> tuple[dict, Protocol]:
    """The test_dataset spec and protocol of a config moved to another scale: its HR images
    (root_path of an image-folder, root_path_2 of paired folders) downsampled on the fly by
    `scale` (sr-implicit-downsampled, the config's resize method), and the config's protocol kind
    at that scale (its border follows, docs/design.md §5)."""
    if not (math.isfinite(scale) and scale > 1):
        raise UserError(f'--scale must be a number > 1, got {scale:g}')
    ds = spec['dataset']
    args = dict(ds.get('args') or {})
    if ds['name'] == 'paired-image-folders':
        args = {'root_path': args.get('root_path_2'),
                **{k: v for k, v in args.items() if k in ('split_file', 'split_key', 'first_k', 'repeat', 'cache')}}
    elif ds['name'] != 'image-folder':
        raise UserError(f"{config}: --scale needs an image-folder or paired-image-folders test set, not {ds['name']!r}")
    wrapper = spec['wrapper'].get('args') or {}
    kept = {k: wrapper[k] for k in ('gt_mod',) if k in wrapper}  # MMEditing's GTmod12 stays
    moved = {'dataset': {'name': 'image-folder', 'args': args},
             'wrapper': {'name': 'sr-implicit-downsampled',
                         'args': {'scale_min': scale, 'resize': wrapper.get('resize', 'pil'), **kept}},
             'batch_size': 1}
    scale = int(scale) if float(scale).is_integer() else scale
    return moved, protocol if protocol.kind == 'none' else Protocol(protocol.kind, scale)


def check_downsampled_scale(spec: dict, protocol: Protocol, where: str) -> None:
    """Refuse a test set whose `sr-implicit-downsampled` wrapper makes its LR images at another scale
    than the protocol's (x2 data scored as x3). Training's validation may draw random scales."""
    wrapper = spec.get('wrapper') or {}
    if wrapper.get('name') != 'sr-implicit-downsampled' or protocol.scale is None:
        return
    args = wrapper.get('args') or {}
    lo = args.get('scale_min', 1)
    hi = lo if args.get('scale_max') is None else args['scale_max']
    if not all(isinstance(v, (int, float)) and math.isclose(v, protocol.scale) for v in (lo, hi)):
        drawn = f'scale_min {lo!r} disagrees' if hi == lo else f'scale_min {lo!r} and scale_max {hi!r} disagree'
        raise UserError(f'{where}: wrapper.args {drawn} with eval_type {protocol.eval_type} (scale '
                        f'{protocol.scale:g}): the LR images would be made at another scale than the one reported')


def with_protocol_scale(spec: dict, protocol: Protocol, where: str) -> dict:
    """A dataset block whose `sr-implicit-paired` wrapper checks every pair against the protocol's
    scale (its `scale` arg, set from eval_type; one that disagrees is a UserError)."""
    wrapper = spec.get('wrapper') or {}
    if wrapper.get('name') != 'sr-implicit-paired' or protocol.scale is None:
        return spec
    args = dict(wrapper.get('args') or {})
    if args.get('scale') is not None and args['scale'] != protocol.scale:
        raise UserError(f"{where}: wrapper.args.scale {args['scale']} disagrees with eval_type "
                        f'{protocol.eval_type} (scale {protocol.scale:g})')
    return {**spec, 'wrapper': {**wrapper, 'args': {**args, 'scale': protocol.scale}}}


@dataclass(frozen=True)
class TestPlan:
    """What a test config asks for, checked: the dataset spec (paths under the data root), the
    protocol, the query chunk (None: all at once), the normalisation, LTE's cell clip and the rows
    that attend together for SRNO/HIIF (None: the whole image; inference/groups.py)."""
    spec: dict
    protocol: Protocol
    bsize: Optional[int]
    norm: DataNorm
    cell_scale_max: Optional[float]
    attention_rows: Optional[int] = None


def read_test_config(config: str, data_root: Optional[str], env_var: str, scale: Optional[float] = None,
                     sets: Optional[Sequence[str]] = None) -> TestPlan:
    """Read and check a test config (its `_base_` chain resolved, then each --set KEY.PATH=VALUE of
    `sets` applied); with `scale`, evaluate its HR images at that scale instead."""
    cfg = apply_sets(load_config(config), sets)
    config = describe_source(config, sets)
    spec = rewrite_data_root(load_test_spec(cfg, config), data_root)
    check_data_paths(spec, config, data_root, env_var)
    protocol = parse_eval_type(cfg.get('eval_type'))
    if scale is not None:
        spec, protocol = at_scale(spec, protocol, scale, config)
    check_downsampled_scale(spec, protocol, f'{config}: test_dataset')
    spec = with_protocol_scale(spec, protocol, f'{config}: test_dataset')
    bsize = cfg.get('eval_bsize')
    if bsize is not None:
        check_bsize(bsize, config, 'eval_bsize')
    clip = cfg.get('cell_scale_max')
    if clip is not None:
        c = Checker(config)
        if c.number(clip, 'cell_scale_max', positive=True) < 1:
            c.fail('cell_scale_max', f'expected a scale >= 1 (the cell of a larger scale is clipped to it), got {clip:g}')
    rows = check_attention_rows(cfg.get('attention_rows'), f'{config}: attention_rows')
    return TestPlan(spec, protocol, bsize, DataNorm.from_config(cfg.get('data_norm'), config), clip, rows)


def target_names(dataset: Dataset) -> Optional[list[str]]:
    """The ground-truth file name behind each item of a wrapped dataset (for saved images), if its
    inner dataset can say (`target_path`)."""
    paths = per_item(dataset, 'target_path')
    return None if paths is None else [os.path.basename(p) for p in paths]
