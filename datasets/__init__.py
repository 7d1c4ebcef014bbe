"""Datasets are data: `make({'name': ..., 'args': {...}})` builds any registered dataset.
Importing a dataset file registers it; wrap a folder with `make(wrapper_spec, args={'dataset': d})`."""
from .registry import DATASETS, make, register
from . import degraded, image_folder, wrappers  # noqa: F401  (registration)
from .image_folder import spec_inputs  # noqa: F401
from .seeding import seed_all, seed_worker  # noqa: F401
