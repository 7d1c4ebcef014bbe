"""The exported ONNX file's contract (docs/design.md §11), shared by the exporter and the backend
without importing either's heavy dependencies.

Graph: `image` float32 (1, 3, h, w) in [0, 1], `coord` and `cell` float32 (1, Q, 2) (docs/design.md
§1) -> `rgb` float32 (1, Q, 3) in [0, 1]. Stages, joined at named tensors: encode (image -> feat),
prepare (feat[, image] -> the query's state: table[, inp], or codes, inp), for models whose
queries attend to each other one context stage per attention block (state, coord, cell, the means
of the blocks before -> kvsum i, kv i), query (state, coord, cell[, kv0 ..] -> rgb).
Metadata: key META_KEY, a JSON mapping (parse_metadata says what it holds).
"""
import json
from typing import Any

from utils.errors import UserError
from utils.files import PathLike

FORMAT = 1  # the metadata's version
META_KEY = 'liif'
INPUTS = ('image', 'coord', 'cell')
OUTPUT = 'rgb'
# The dynamic axes of every tensor a stage graph reads or makes, by name (the rest are fixed).
DYNAMIC_AXES = {'image': {2: 'h', 3: 'w'}, 'inp': {2: 'h', 3: 'w'}, 'feat': {2: 'feat_h', 3: 'feat_w'},
                'codes': {2: 'feat_h', 3: 'feat_w'}, 'table': {1: 'feat_h', 2: 'feat_w'},
                'coord': {1: 'Q'}, 'cell': {1: 'Q'}, OUTPUT: {1: 'Q'}}
MAX_BLOCKS = 64  # attention blocks a file may declare (SRNO and HIIF have 2)


def context_stage(i: int) -> str:
    """The name of attention block i's context stage."""
    return f'context{i}'


def kv_sum_name(i: int) -> str:
    """Block i's sum of k^T v over the queries of a run (B, heads, c, c): what chunks add up."""
    return f'kvsum{i}'


def kv_name(i: int) -> str:
    """Block i's mean of k^T v over the queries that attend together: what the query reads."""
    return f'kv{i}'


def stage_names(blocks: int) -> tuple[str, ...]:
    """The stages of a file whose model has `blocks` attention blocks (0: queries independent)."""
    return ('encode', 'prepare', *map(context_stage, range(blocks)), 'query')


def parse_metadata(text: str, path: PathLike) -> dict[str, Any]:
    """The export metadata (JSON) -> dict, checked: its format, the number of attention blocks
    (attention_blocks, 0 when absent), the stages (stage_names) with their input and output names,
    the receptive radius (None: never tiled) and window (None: no padding). A UserError naming the file."""
    def bad(what: str) -> UserError:
        return UserError(f"{path}: malformed export metadata ('{META_KEY}': {what})")

    try:
        meta = json.loads(text)
    except ValueError:
        raise bad('not JSON') from None
    if not isinstance(meta, dict):
        raise bad('not a mapping')
    if meta.get('format') != FORMAT:
        raise bad(f'format {meta.get("format")!r}, this version reads {FORMAT}; export the checkpoint again')
    blocks = meta.get('attention_blocks', 0)
    if not isinstance(blocks, int) or isinstance(blocks, bool) or not 0 <= blocks <= MAX_BLOCKS:
        raise bad(f'attention_blocks must be an integer from 0 to {MAX_BLOCKS}, got {blocks!r}')
    meta['attention_blocks'] = blocks
    stages = meta.get('stages')
    if not isinstance(stages, dict) or set(stages) != set(stage_names(blocks)):
        raise bad(f'stages must be {", ".join(stage_names(blocks))}')
    for name, io in stages.items():
        if not (isinstance(io, dict) and all(isinstance(io.get(k), list) and io[k]
                                             and all(isinstance(t, str) for t in io[k]) for k in ('inputs', 'outputs'))):
            raise bad(f'stage {name} needs lists of input and output names')
    means = [kv_name(i) for i in range(blocks)]
    if stages['query']['outputs'] != [OUTPUT] or not set(stages['query']['inputs']) >= {'coord', 'cell', *means}:
        raise bad(f'the query stage must read coord, cell{"".join(", " + m for m in means)} and make {OUTPUT}')
    for i in range(blocks):
        io = stages[context_stage(i)]
        if kv_sum_name(i) not in io['outputs'] or not set(io['inputs']) >= {'coord', 'cell', *means[:i]}:
            raise bad(f'stage {context_stage(i)} must read coord, cell and the means before it and make {kv_sum_name(i)}')
    for key, least in (('receptive_radius', 0), ('window_size', 1)):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise bad(f'{key} must be null or an integer of at least {least}, got {value!r}')
    return meta
