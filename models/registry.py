"""The model registry: a model is a spec {'name': str, 'args': dict[, 'sd': state dict]}."""
import copy
from typing import Optional

import torch.nn as nn

from utils.checkpoints import load_state_dict_strict
from utils.config import Checker, check_spec
from utils.registry import Registry

MODELS = Registry('model')
register = MODELS.register


def make(spec: dict, args: Optional[dict] = None, load_sd: bool = False) -> nn.Module:
    """Build the model `spec['name']` from a copy of `spec['args']` updated by `args`; with
    `load_sd`, load `spec['sd']` strictly (mismatches are reported by name). A malformed spec or a
    boolean arg that is not a boolean (a checkpoint's 'no') is a UserError."""
    check_spec(spec, 'model')
    model_args = copy.deepcopy(spec.get('args') or {})
    if args is not None:
        model_args.update(args)
    factory = MODELS.get(spec['name'])
    Checker(f"model {spec['name']!r}").factory_args(factory, model_args, 'args')
    model = factory(**model_args)
    if load_sd:
        load_state_dict_strict(model, spec['sd'], what=f"model {spec['name']!r}")
    return model
