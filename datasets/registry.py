"""The dataset registry: a dataset is a spec {'name': str, 'args': dict}."""
import copy
import inspect
from typing import Optional

from torch.utils.data import Dataset

from utils.config import Checker, check_spec
from utils.errors import UserError
from utils.registry import Registry

DATASETS = Registry('dataset')
register = DATASETS.register


def make(spec: dict, args: Optional[dict] = None) -> Dataset:
    """Build the dataset `spec['name']` from a copy of `spec['args']` updated by `args`
    (a wrapper gets its inner dataset this way: `make(wrapper_spec, args={'dataset': ds})`)."""
    check_spec(spec, 'dataset')
    dataset_args = copy.deepcopy(spec.get('args') or {})
    if args is not None:
        dataset_args.update(args)
    factory = DATASETS.get(spec['name'])
    Checker(f"dataset {spec['name']!r}").factory_args(factory, dataset_args, 'args')
    try:
        inspect.signature(factory).bind(**dataset_args)
    except TypeError as e:  # an argument it does not take (a paired wrapper's scale_min), or one missing
        raise UserError(f"dataset {spec['name']!r}: {e}") from None
    return factory(**dataset_args)
