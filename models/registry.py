"""The model registry: a model is a spec {'name': str, 'args': dict[, 'sd': state dict]}."""
import copy
from typing import Optional

import torch.nn as nn

from utils.checkpoints import load_state_dict_strict
from utils.registry import Registry

MODELS = Registry('model')
register = MODELS.register


def make(spec: dict, args: Optional[dict] = None, load_sd: bool = False) -> nn.Module:
    """Build the model `spec['name']` from a copy of `spec['args']` updated by `args`; with
    `load_sd`, load `spec['sd']` strictly (mismatches are reported by name)."""
    model_args = copy.deepcopy(spec.get('args') or {})
    if args is not None:
        model_args.update(args)
    model = MODELS.get(spec['name'])(**model_args)
    if load_sd:
        load_state_dict_strict(model, spec['sd'], what=f"model {spec['name']!r}")
    return model
