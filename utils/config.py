"""YAML configs: safe_load only, one clear line for a missing, unreadable or malformed file;
`Checker`, the type checks every config reader uses (`<where>: <key>: <what was expected>`)."""
import re
from pathlib import Path
from typing import Any, Callable, Optional

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


# What PyYAML 1.1 leaves as a string although a person meant a number: 1e-4, 5E3, 1.0e4.
_YAML_NUMBER_STRING = re.compile(r'^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$')


def yaml_float(text: str) -> str:
    """'1e-4' -> '1.0e-4', '5E3' -> '5.0e+3': the spelling PyYAML reads as a float."""
    mantissa, exponent = text.lower().split('e')
    if '.' not in mantissa:
        mantissa += '.0'
    if exponent[0] not in '+-':
        exponent = '+' + exponent
    return f'{mantissa}e{exponent}'


class Checker:
    """Type checks that fail with `<file>: <key>: <message>`."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, key: str, msg: str) -> None:
        raise UserError(f'{self.where}: {key}: {msg}')

    def got(self, value: Any) -> str:
        if isinstance(value, str) and _YAML_NUMBER_STRING.match(value):
            return (f'the string {value!r} (YAML reads an exponent number as text unless it has a '
                    f'dot and a signed exponent; write {yaml_float(value)})')
        return f'{value!r} ({type(value).__name__})'

    def mapping(self, value: Any, key: str, allowed: tuple = (), required: tuple = ()) -> dict:
        if not isinstance(value, dict):
            keys = required or allowed
            with_keys = f' with {", ".join(keys)}' if keys else ''
            self.fail(key, f'expected a mapping{with_keys}, got {self.got(value)}')
        for k in required:
            if k not in value:
                self.fail(f'{key}.{k}', 'missing (required)')
        if allowed:
            for k in value:
                if k not in allowed:
                    self.fail(f'{key}.{k}', f'unknown key; expected one of {", ".join(allowed)}')
        return value

    def integer(self, value: Any, key: str, minimum: int = 1) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f'expected an integer >= {minimum}, got {self.got(value)}')
        if value < minimum:
            self.fail(key, f'expected an integer >= {minimum}, got {value}')
        return value

    def number(self, value: Any, key: str, positive: bool = False, nonzero: bool = False) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.fail(key, f'expected a number, got {self.got(value)}')
        if positive and not value > 0:
            self.fail(key, f'expected a number > 0, got {value}')
        if nonzero and value == 0:
            self.fail(key, 'must not be 0')
        return float(value)

    def numbers(self, value: Any, key: str, lengths: tuple = (1, 3), nonzero: bool = False) -> tuple:
        """A list of `lengths` numbers (e.g. 1 for all channels or 3 per channel)."""
        if not isinstance(value, list) or len(value) not in lengths:
            self.fail(key, f'expected a list of {" or ".join(map(str, lengths))} numbers, got {self.got(value)}')
        return tuple(self.number(v, f'{key}[{i}]', nonzero=nonzero) for i, v in enumerate(value))

    def string(self, value: Any, key: str, choices: Optional[tuple] = None) -> str:
        if not isinstance(value, str):
            self.fail(key, f'expected a string, got {self.got(value)}')
        if choices is not None and value not in choices:
            self.fail(key, f'expected one of {", ".join(choices)}, got {value!r}')
        return value

    def no_number_strings(self, value: Any, key: str) -> None:
        """Free-form args (model, dataset, optimizer): refuse strings YAML did not read as numbers."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.no_number_strings(v, f'{key}.{k}')
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.no_number_strings(v, f'{key}[{i}]')
        elif isinstance(value, str) and _YAML_NUMBER_STRING.match(value):
            self.fail(key, f'expected a number, got {self.got(value)}')

    def spec(self, value: Any, key: str, known: Optional[Callable[[str], bool]], names: Callable[[], list]) -> dict:
        self.mapping(value, key, allowed=('name', 'args'), required=('name',))
        self.string(value['name'], f'{key}.name')
        if known is not None and not known(value['name']):
            self.fail(f'{key}.name', f'unknown {value["name"]!r}; known: {", ".join(names())}')
        if value.get('args') is not None:
            self.mapping(value['args'], f'{key}.args')
            self.no_number_strings(value['args'], f'{key}.args')
        return value
