"""YAML configs: safe_load's plain types only, with limits (alias expansion, self-reference,
depth, size), no duplicate keys, UTF-8, and one clear line for a missing, unreadable or malformed
file; `Checker`, the type checks every config reader uses (`<where>: <key>: <what was expected>`)."""
import inspect
import math
import numbers
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import yaml

from .errors import UserError


# Limits of a config file. Aliases are allowed (an anchor reused for train and val data), but
# every use counts: a document expanding to more values than this is refused before it is built
# (a "billion laughs" alias bomb), and so is an alias that contains itself.
MAX_YAML_VALUES = 100_000
MAX_YAML_DEPTH = 64
MAX_YAML_BYTES = 16 << 20
_MERGE_TAG = 'tag:yaml.org,2002:merge'


def _children(node: yaml.Node) -> list:
    """The nodes a composed YAML node holds (a mapping's keys and values)."""
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_node_graph(root: yaml.Node) -> None:
    """Refuse a composed YAML document that refers to itself, nests deeper than MAX_YAML_DEPTH or
    expands (aliases counted at every use) to more than MAX_YAML_VALUES values. Linear in the
    number of distinct nodes: each node's expanded size is computed once."""
    size, on_path = {}, set()
    stack = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        if done:
            on_path.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_YAML_VALUES:
                raise yaml.YAMLError(f'expands to more than {MAX_YAML_VALUES:,} values (aliases '
                                     'counted at every use): refused as an alias bomb')
            continue
        if id(node) in size:
            continue
        if depth > MAX_YAML_DEPTH:
            raise yaml.YAMLError(f'nested deeper than {MAX_YAML_DEPTH} levels (line {node.start_mark.line + 1})')
        on_path.add(id(node))
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) in on_path:
                raise yaml.YAMLError(f'an alias at line {child.start_mark.line + 1} refers to a value '
                                     'that contains it (a self-referencing alias)')
            if id(child) not in size:
                stack.append((child, depth + 1, False))


def check_value_graph(root: Any, where: str, max_values: int = MAX_YAML_VALUES, max_depth: int = MAX_YAML_DEPTH) -> None:
    """The limits of check_node_graph on plain Python data (a checkpoint's stored config, which
    unpickling may have built with shared or self-referencing lists): UserError, naming `where`,
    when it contains itself, nests deeper than max_depth or expands (shared values counted at
    every use) to more than max_values values. Linear in the number of distinct containers."""
    size, on_path = {}, set()
    stack = [(root, 0, False)]

    def children(v):
        return list(v.values()) if isinstance(v, dict) else list(v) if isinstance(v, (list, tuple)) else []
    while stack:
        value, depth, done = stack.pop()
        if done:
            on_path.discard(id(value))
            size[id(value)] = 1 + sum(size.get(id(c), 1) for c in children(value))
            if size[id(value)] > max_values:
                raise UserError(f'{where}: expands to more than {max_values:,} values (shared values counted at '
                                'every use); refused')
            continue
        if id(value) in size or not isinstance(value, (dict, list, tuple)):
            continue
        if depth > max_depth:
            raise UserError(f'{where}: nested deeper than {max_depth} levels; refused')
        on_path.add(id(value))
        stack.append((value, depth, True))
        for child in children(value):
            if id(child) in on_path:
                raise UserError(f'{where}: holds a value that contains itself; refused')
            if isinstance(child, (dict, list, tuple)) and id(child) not in size:
                stack.append((child, depth + 1, False))


class ConfigLoader(yaml.SafeLoader):
    """yaml.SafeLoader (plain types only, no tags that build objects) that also refuses duplicate
    keys and documents failing check_node_graph."""

    def get_single_node(self):
        """The composed document, checked by check_node_graph before anything is constructed."""
        node = super().get_single_node()
        if node is not None:
            check_node_graph(node)
        return node

    def construct_mapping(self, node, deep=False):
        """SafeLoader's mapping, after refusing a key written twice."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue  # '<<' merges may be overridden; other keys are checked as built
                key = self.construct_object(key_node)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f'duplicate key {key!r} (YAML would keep only the last)', key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def decode_text(data: bytes, path) -> str:
    """A config file's bytes as text: UTF-8 (or UTF-16/32 with a byte-order mark, as YAML allows);
    anything else is a UserError naming the first bad byte."""
    for bom, codec in ((b'\xff\xfe\x00\x00', 'utf-32'), (b'\x00\x00\xfe\xff', 'utf-32'),
                       (b'\xff\xfe', 'utf-16'), (b'\xfe\xff', 'utf-16')):
        if data.startswith(bom):
            break
    else:
        codec = 'utf-8-sig'
    try:
        return data.decode(codec)
    except UnicodeDecodeError as e:
        raise UserError(f'{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); '
                        'save the config as UTF-8') from None


def load_yaml(path) -> dict:
    """Read a YAML mapping with ConfigLoader: safe_load's plain types, within the limits above,
    without duplicate keys. Every failure is a one-line UserError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'config not found: {path}')
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise UserError(f'{path}: {path.stat().st_size:,} bytes, larger than a config can be '
                            f'({MAX_YAML_BYTES >> 20} MB)')
        text = decode_text(path.read_bytes(), path)
    except OSError as e:
        raise UserError(f'cannot read config {path} ({e.strerror})') from None
    try:
        cfg = yaml.load(text, Loader=ConfigLoader)
    except yaml.MarkedYAMLError as e:
        where = e.problem_mark or e.context_mark
        line = f' at line {where.line + 1}' if where is not None else ''
        problem = e.problem or e.context or ''
        raise UserError(f'{path}: not valid YAML{line}' + (f': {problem}' if problem else '')) from None
    except yaml.YAMLError as e:
        msg = ' '.join(str(e).split()) or type(e).__name__
        raise UserError(f'{path}: not valid YAML: {msg}') from None
    except RecursionError:
        raise UserError(f'{path}: not valid YAML: nested too deeply') from None
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


def _annotated(annotation: Any, typ: type) -> bool:
    """Whether a parameter annotation says `typ` (or Optional[typ]), also as a string."""
    if annotation is typ:
        return True
    if isinstance(annotation, str):
        n = typ.__name__
        return annotation.replace(' ', '').replace('typing.', '') in (n, f'Optional[{n}]', f'{n}|None', f'None|{n}')
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):  # list[int] is no int
        return False
    args = typing.get_args(annotation)
    return typ in args and set(args) <= {typ, type(None)}


def _bool_annotation(annotation: Any) -> bool:
    """Whether a parameter annotation says bool (or Optional[bool]), also as a string."""
    return _annotated(annotation, bool)


def integer_params(factory: Callable) -> list[str]:
    """The parameters of `factory` annotated int (or Optional[int]): counts and sizes."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if _annotated(p.annotation, int)]


def boolean_params(factory: Callable) -> dict[str, bool]:
    """{name: whether None is allowed} of the parameters of `factory` (a class or function) that
    take a boolean: annotated bool or Optional[bool], or defaulting to True or False."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    found = {}
    for p in params:
        if _bool_annotation(p.annotation) or isinstance(p.default, bool):
            text = p.annotation if isinstance(p.annotation, str) else ''
            found[p.name] = (p.default is None or type(None) in typing.get_args(p.annotation)
                             or 'Optional' in text or 'None' in text)
    return found


def check_spec(spec: Any, kind: str) -> None:
    """UserError unless spec is a registry spec: a mapping with a string 'name' and, if present,
    a mapping 'args' (models.make and datasets.make check what they are given)."""
    if not (isinstance(spec, dict) and isinstance(spec.get('name'), str)):
        raise UserError(f"{kind} spec: expected a mapping with a 'name' (and 'args'), got {type(spec).__name__}")
    if spec.get('args') is not None and not isinstance(spec['args'], dict):
        raise UserError(f"{kind} {spec['name']!r}: args: expected a mapping, got {type(spec['args']).__name__}")


class Checker:
    """Type checks that fail with `<file>: <key>: <message>`: the validators every config schema
    and the library's options use (docs/design.md §4). Numbers may be Python or numpy scalars."""

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

    def boolean(self, value: Any, key: str, optional: bool = False) -> Optional[bool]:
        """true or false (a YAML boolean; None too when `optional`). Strings such as 'false' or
        'no' and numbers are refused: Python would take 'false' and 1 as true."""
        if value is None and optional:
            return None
        if not isinstance(value, bool):
            self.fail(key, f'expected true or false (a YAML boolean, unquoted), got {self.got(value)}')
        return value

    def factory_args(self, factory: Callable, args: Any, key: str) -> None:
        """The arguments `args` of `factory` that take a boolean (boolean_params) are booleans,
        those annotated int (integer_params: counts and sizes) integers >= 0 (or None): Python
        would take range(-1) as no blocks at all."""
        if not isinstance(args, dict):
            return
        for name, optional in boolean_params(factory).items():
            if name in args:
                self.boolean(args[name], f'{key}.{name}', optional)
        for name in integer_params(factory):
            if args.get(name) is not None:
                self.integer(args[name], f'{key}.{name}', minimum=0)

    def integer(self, value: Any, key: str, minimum: int = 1, maximum: Optional[int] = None) -> int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__module__ == 'numpy':
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fail(key, f'expected an integer >= {minimum}, got {self.got(value)}')
        if value < minimum:
            self.fail(key, f'expected an integer >= {minimum}, got {value}')
        if maximum is not None and value > maximum:
            bits = f' ({maximum.bit_length()} bits)' if maximum >= 2 ** 32 else ''
            self.fail(key, f'expected an integer <= {maximum}{bits}, got {value}')
        return value

    def number(self, value: Any, key: str, positive: bool = False, nonzero: bool = False,
               maximum: Optional[float] = None) -> float:
        """A finite int or float (YAML's .inf and .nan are refused), optionally > 0, != 0, <= maximum."""
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__module__ == 'numpy':
            value = float(value)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.fail(key, f'expected a number, got {self.got(value)}')
        if not math.isfinite(value):
            self.fail(key, f'expected a finite number, got {value}')
        if positive and not value > 0:
            self.fail(key, f'expected a number > 0, got {value}')
        if nonzero and value == 0:
            self.fail(key, 'must not be 0')
        if maximum is not None and value > maximum:
            self.fail(key, f'expected a number <= {maximum:g}, got {value:g}')
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
        """Free-form args (model, dataset, optimizer): refuse strings YAML did not read as numbers,
        and infinite or NaN numbers."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.no_number_strings(v, f'{key}.{k}')
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.no_number_strings(v, f'{key}[{i}]')
        elif isinstance(value, str) and _YAML_NUMBER_STRING.match(value):
            self.fail(key, f'expected a number, got {self.got(value)}')
        elif isinstance(value, float) and not math.isfinite(value):
            self.fail(key, f'expected a finite number, got {value}')

    def spec(self, value: Any, key: str, known: Optional[Callable[[str], bool]], names: Callable[[], list],
             factory: Optional[Callable[[str], Callable]] = None) -> dict:
        """A registry spec {name, args}: a known name, args a mapping without number strings; with
        `factory` (name -> class), its boolean args are booleans, and so in nested specs (an args
        value with a known 'name', e.g. encoder_spec)."""
        self.mapping(value, key, allowed=('name', 'args'), required=('name',))
        self.string(value['name'], f'{key}.name')
        if known is not None and not known(value['name']):
            self.fail(f'{key}.name', f'unknown {value["name"]!r}; known: {", ".join(names())}')
        if value.get('args') is not None:
            self.mapping(value['args'], f'{key}.args')
            self.no_number_strings(value['args'], f'{key}.args')
            if factory is not None:
                self.factory_args(factory(value['name']), value['args'], f'{key}.args')
                for k, v in value['args'].items():
                    if isinstance(v, dict) and isinstance(v.get('name'), str) and known is not None and known(v['name']):
                        self.spec(v, f'{key}.args.{k}', known, names, factory)
        return value


_ABSENT = object()


def value_differences(a: Any, b: Any, key: str = '') -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every leaf where two nested configs differ (a
    missing key gives '(absent)'), in a's key order then b's."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in [*a, *(k for k in b if k not in a)]:
            out += value_differences(a.get(k, _ABSENT), b.get(k, _ABSENT), f'{key}.{k}' if key else str(k))
        return out
    if a is _ABSENT or b is _ABSENT or a != b or type(a) is not type(b):
        show = lambda v: '(absent)' if v is _ABSENT else repr(v)  # noqa: E731
        return [(key, show(a), show(b))]
    return []
