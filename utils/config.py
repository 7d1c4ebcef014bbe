"""YAML configs: safe_load only, one clear line for a missing, unreadable or malformed file."""
from pathlib import Path

import yaml

from .errors import UserError


def load_yaml(path) -> dict:
    """Read a YAML mapping with yaml.safe_load (no tags that build objects)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'config not found: {path}')
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except yaml.YAMLError as e:
        where = getattr(e, 'problem_mark', None)
        line = f' at line {where.line + 1}' if where is not None else ''
        raise UserError(f'{path}: not valid YAML{line}') from None
    if not isinstance(cfg, dict):
        raise UserError(f'{path}: expected a YAML mapping of config keys, got {type(cfg).__name__}')
    return cfg
