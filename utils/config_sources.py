"""Where a config's values come from, lowest precedence first: the files named by `_base_`, the
file itself, then `--set key.path=value` on the command line (docs/design.md §4.3).

    _base_: ../train_edsr-baseline-liif.yaml       # or a list, merged left to right
    model:
      args:
        cell_decode: false                          # only what differs

Mappings merge key by key (the later source wins); any other value, lists included, is replaced
whole. A mapping holding `_delete_: true` replaces the base's mapping instead of merging into it
(to drop keys). Relative `_base_` paths are resolved against the folder of the file naming them;
a cycle, or a chain deeper than MAX_BASE_DEPTH, is refused. `--set` values are typed by YAML's
rules (`2`, `2.0e-4`, `true`, `[32, 32]`, `null`), read with the same limits as files.
"""
import copy
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from .config import Checker, ConfigLoader, load_yaml
from .errors import UserError

BASE_KEY = '_base_'
DELETE_KEY = '_delete_'
MAX_BASE_DEPTH = 16


def merge(base: Any, override: Any) -> Any:
    """override laid over base: mappings merged key by key (base's keys first, in its order, then
    override's new ones), everything else replaced. A mapping of override with `_delete_: true`
    replaces base's. Returns new containers; neither argument is changed. `_delete_` markers are
    removed."""
    if not isinstance(override, dict):
        return copy.deepcopy(override)
    replace = override.get(DELETE_KEY) is True
    out = {} if replace or not isinstance(base, dict) else copy.deepcopy(base)
    for key, value in override.items():
        if key == DELETE_KEY:
            continue
        out[key] = merge(out.get(key), value)
    return out


def _check_markers(value: Any, where: str, key: str = '') -> None:
    """A UserError for a `_delete_` that is not the YAML boolean true."""
    if isinstance(value, dict):
        if DELETE_KEY in value and value[DELETE_KEY] is not True:
            Checker(where).fail(f'{key}.{DELETE_KEY}' if key else DELETE_KEY,
                                f'expected true (replace the base mapping), got {Checker(where).got(value[DELETE_KEY])}')
        for k, v in value.items():
            _check_markers(v, where, f'{key}.{k}' if key else str(k))


def _base_paths(cfg: dict, path: Path) -> list[tuple[str, Path]]:
    """(as written, resolved path) of each file `_base_` names, relative to path's folder."""
    bases = cfg[BASE_KEY]
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not bases or not all(isinstance(b, str) and b for b in bases):
        raise UserError(f'{path}: {BASE_KEY}: expected a config path or a list of them, got {bases!r}')
    return [(b, Path(b) if Path(b).is_absolute() else path.parent / b) for b in bases]


def _resolve(path: Path, chain: tuple[Path, ...]) -> dict:
    """The file at path with its bases merged under it; `chain` is the files including it."""
    cfg = load_yaml(path)
    _check_markers(cfg, str(path))
    merged: dict = {}
    if BASE_KEY in cfg:
        if len(chain) >= MAX_BASE_DEPTH:
            raise UserError(f'{path}: {BASE_KEY}: more than {MAX_BASE_DEPTH} levels of inheritance')
        for written, base in _base_paths(cfg, path):
            if base.resolve() in chain or base.resolve() == path.resolve():
                cycle = ' -> '.join(str(p) for p in (*chain, path.resolve(), base.resolve()))
                raise UserError(f'{path}: {BASE_KEY}: {written} is already being included (a cycle: {cycle})')
            if not base.is_file():
                raise UserError(f'{path}: {BASE_KEY}: {written} not found (looked for {base}; a relative '
                                'base is read from the folder of the file naming it)')
            merged = merge(merged, _resolve(base, (*chain, path.resolve())))
    return merge(merged, {k: v for k, v in cfg.items() if k != BASE_KEY})


def load_config(path) -> dict:
    """A YAML config file (utils.config.load_yaml's limits) with its `_base_` chain resolved: a
    new dict, the file's values over its bases'. Every failure is a one-line UserError."""
    return _resolve(Path(path), ())


def parse_set(item: str, flag: str = '--set') -> tuple[list[str], Any]:
    """'optimizer.args.lr=2.0e-4' -> (['optimizer', 'args', 'lr'], 0.0002): the value typed by
    YAML's rules; an empty value is null."""
    key, sep, text = item.partition('=')
    parts = key.strip().split('.')
    if not sep or not all(parts):
        raise UserError(f'{flag} {item!r}: expected KEY.PATH=VALUE, e.g. optimizer.args.lr=2.0e-4')
    if parts[0] == BASE_KEY:
        raise UserError(f'{flag} {item!r}: {BASE_KEY} cannot be set from the command line; name the base in the file')
    try:
        value = yaml.load(text, Loader=ConfigLoader) if text.strip() else None
    except yaml.YAMLError as e:
        msg = ' '.join(str(getattr(e, 'problem', None) or e).split())
        raise UserError(f'{flag} {item!r}: the value is not valid YAML ({msg})') from None
    except RecursionError:
        raise UserError(f'{flag} {item!r}: the value is not valid YAML (nested too deeply)') from None
    return parts, value


def apply_sets(cfg: dict, items: Optional[Sequence[str]], flag: str = '--set') -> dict:
    """cfg with each KEY.PATH=VALUE of items set, in order (a later one wins): a new dict, cfg
    unchanged. Missing mappings on the path are made; a path through a value that is not a
    mapping is a UserError. Whether the key is known is the config's schema's business."""
    out = copy.deepcopy(cfg)
    for item in items or ():
        parts, value = parse_set(item, flag)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise UserError(f'{flag} {item!r}: {".".join(parts[:i + 1])} is {child!r}, not a mapping of keys')
            node = child
        node[parts[-1]] = value
    return out


def set_keys(items: Optional[Sequence[str]]) -> list[str]:
    """The KEY.PATHs of --set items, for messages ('configs/x.yaml with --set a.b, c')."""
    return [item.partition('=')[0].strip() for item in items or ()]


def describe_source(path, items: Optional[Sequence[str]], flag: str = '--set') -> str:
    """How to name a config in messages: its path, plus the keys --set changed."""
    keys = set_keys(items)
    return f'{path} with {flag} {", ".join(keys)}' if keys else str(path)
