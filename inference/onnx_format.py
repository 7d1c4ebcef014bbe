"""The exported ONNX file's contract (docs/design.md §10), shared by the exporter and the backend
without importing either's heavy dependencies.

Graph: `image` float32 (1, 3, h, w) in [0, 1], `coord` and `cell` float32 (1, Q, 2) (docs/design.md
§1) -> `rgb` float32 (1, Q, 3) in [0, 1]. Stages, joined at named tensors: encode (image -> feat),
prepare (feat[, image] -> the query's state: table[, inp]), query (state, coord, cell -> rgb).
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
STAGES = ('encode', 'prepare', 'query')
# The dynamic axes of every tensor a stage graph reads or makes, by name (the rest are fixed).
DYNAMIC_AXES = {'image': {2: 'h', 3: 'w'}, 'inp': {2: 'h', 3: 'w'}, 'feat': {2: 'feat_h', 3: 'feat_w'},
                'table': {1: 'feat_h', 2: 'feat_w'}, 'coord': {1: 'Q'}, 'cell': {1: 'Q'}, OUTPUT: {1: 'Q'}}


def parse_metadata(text: str, path: PathLike) -> dict[str, Any]:
    """The export metadata (JSON) -> dict, checked: its format, the three stages with their input
    and output names, the receptive radius (None: never tiled) and window (None: no padding).
    A UserError naming the file."""
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
    stages = meta.get('stages')
    if not isinstance(stages, dict) or set(stages) != set(STAGES):
        raise bad(f'stages must be {", ".join(STAGES)}')
    for name, io in stages.items():
        if not (isinstance(io, dict) and all(isinstance(io.get(k), list) and io[k]
                                             and all(isinstance(t, str) for t in io[k]) for k in ('inputs', 'outputs'))):
            raise bad(f'stage {name} needs lists of input and output names')
    if stages['query']['outputs'] != [OUTPUT] or not set(stages['query']['inputs']) >= {'coord', 'cell'}:
        raise bad(f'the query stage must read coord and cell and make {OUTPUT}')
    for key, least in (('receptive_radius', 0), ('window_size', 1)):
        value = meta.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < least):
            raise bad(f'{key} must be null or an integer of at least {least}, got {value!r}')
    return meta
