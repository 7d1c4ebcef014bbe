"""The ONNX Runtime backend (docs/design.md §11): a file written by scripts/export_onnx.py, run by
onnxruntime behind the interface the renderer drives (`encoder`, `gen_feat`, `query_rgb`), so
rendering keeps the PyTorch path's tiled encoding, query chunks and bands (inference/render.py)
whichever backend runs the model.

The file's graph is cut at its named tensors into its stages (inference/onnx_stages.py), one
onnxruntime session each: `encoder` runs the encode stage (on the whole input, or tile by tile with
the receptive radius the export recorded), `gen_feat` then runs the prepare stage once per image,
and `query_rgb` the query stage once per chunk. For SRNO and HIIF, whose queries attend to each
other, `query_context` also runs the context stages (OnnxAttentionModel). The graph normalises its
input and de-normalises and clamps its output itself, so the renderer is given the identity
normalisation (`norm`).
"""
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from models.galerkin import Chunks, accumulate_context
from utils.errors import UserError
from utils.files import PathLike

from .norm import DataNorm
from .onnx_format import INPUTS, META_KEY, OUTPUT, context_stage, kv_name, kv_sum_name, parse_metadata

# onnx (about a second to import) and onnxruntime are imported inside the functions that use them,
# so that demo.py and the library start as fast without this backend as before it.
# Queries per run of the query stage: a chunk of the renderer is run in pieces, so that the
# decoder's activations (4 corners x 1024 rows x 256) stay in the cache, as the PyTorch path's
# ROW_CHUNK keeps them (measured 1.5x faster than whole 30000-query chunks, benchmarks/bench_onnx.py).
QUERY_PIECE = 1024
# The graph takes [0, 1] pixels and returns [0, 1] colours: the renderer must not normalise again.
IDENTITY_NORM = DataNorm()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_onnx(path: PathLike) -> tuple['onnx.ModelProto', dict[str, Any]]:
    """The ONNX model at path and its export metadata; a UserError naming the file when it is
    missing, not ONNX (a PyTorch checkpoint is named as such), not written by export_onnx.py, or
    malformed (the ONNX checker's first complaint)."""
    import onnx
    path = Path(path)
    if not path.is_file():
        raise UserError(f'ONNX model not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(4)
    if head == b'PK\x03\x04':
        raise UserError(f'{path}: a PyTorch checkpoint, not an ONNX file; export it with '
                        'scripts/export_onnx.py, or use --backend pytorch')
    try:
        proto = onnx.load(str(path))
    except Exception as e:  # protobuf's DecodeError, or anything the parser meets in a foreign file
        raise UserError(f'{path}: not an ONNX model file ({_first_line(e)})') from None
    if not proto.graph.node:
        raise UserError(f'{path}: not an ONNX model file (no graph)')
    props = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in props:
        raise UserError(f"{path}: an ONNX model without this project's metadata ('{META_KEY}'); only files "
                        'written by scripts/export_onnx.py can be rendered in stages')
    meta = parse_metadata(props[META_KEY], path)
    names = {v.name for v in (*proto.graph.input, *proto.graph.output)} | {o for n in proto.graph.node for o in n.output}
    missing = sorted({t for io in meta['stages'].values() for t in (*io['inputs'], *io['outputs'])} - names)
    if missing:
        raise UserError(f'{path}: malformed export: the graph has no tensor {missing[0]!r} its metadata names')
    try:
        onnx.checker.check_model(proto)
    except Exception as e:  # onnx.checker.ValidationError and the checker's other failures
        raise UserError(f'{path}: malformed ONNX graph ({_first_line(e)})') from None
    return proto, meta


def stage_models(proto: 'onnx.ModelProto', stages: dict[str, dict[str, list[str]]]) -> dict[str, 'onnx.ModelProto']:
    """{stage: the part of the graph from its io['inputs'] to its io['outputs']} (onnx.utils.Extractor,
    whose shape inference runs once for all)."""
    import onnx.utils
    extractor = onnx.utils.Extractor(proto)
    return {name: extractor.extract_model(io['inputs'], io['outputs']) for name, io in stages.items()}


def _numpy(t: Tensor) -> np.ndarray:
    """A float32 C-contiguous array of t (no copy when it already is one, on the CPU)."""
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


class Stage:
    """One stage's onnxruntime session: run(**inputs) -> {output name: array}."""

    def __init__(self, part: 'onnx.ModelProto', io: dict[str, list[str]], threads: int, path: PathLike):
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # the PyTorch path's count: the same machine share
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            self.session = ort.InferenceSession(part.SerializeToString(), options, providers=['CPUExecutionProvider'])
        except Exception as e:  # onnxruntime's graph and kernel errors
            raise UserError(f'{path}: onnxruntime cannot load the graph ({_first_line(e)})') from None
        self.inputs, self.outputs, self.path = list(io['inputs']), list(io['outputs']), path

    def run(self, **feeds: np.ndarray) -> dict[str, np.ndarray]:
        try:
            out = self.session.run(self.outputs, {k: feeds[k] for k in self.inputs})
        except Exception as e:  # onnxruntime's run-time errors (e.g. an input too small for a window)
            raise UserError(f'{self.path}: onnxruntime failed ({_first_line(e)})') from None
        return dict(zip(self.outputs, out))


class OnnxEncoder(nn.Module):
    """The encode stage: image (1, 3, h, w) in [0, 1] -> feat, with the attributes tiling and
    window padding read from an encoder (receptive_radius: None when unbounded, window_size, out_dim)."""

    def __init__(self, stage: Stage, meta: dict[str, Any]):
        super().__init__()
        self.stage = stage
        self.receptive_radius: Optional[int] = meta.get('receptive_radius')
        self.window_size: Optional[int] = meta.get('window_size')
        self.out_dim: Optional[int] = meta.get('out_dim')

    def forward(self, image: Tensor) -> Tensor:
        return torch.from_numpy(self.stage.run(image=_numpy(image))['feat'])


class OnnxModel(nn.Module):
    """An exported model behind the implicit-model interface: gen_feat(image) encodes and prepares
    once, query_rgb(coord, cell) -> rgb (1, Q, 3) in [0, 1] runs the query stage. Images are in
    [0, 1] (the graph normalises); CPU, float32."""

    def __init__(self, proto: 'onnx.ModelProto', meta: dict[str, Any], path: PathLike, threads: Optional[int] = None,
                 query_piece: int = QUERY_PIECE):
        super().__init__()
        for name, value in (('threads', threads), ('query_piece', query_piece)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UserError(f'{name} must be a positive integer, got {value!r}')
        self.query_piece = query_piece
        threads = threads or torch.get_num_threads()
        cuts = {**meta['stages'], **self.extra_cuts(meta)}
        try:
            parts = stage_models(proto, cuts)
        except Exception as e:  # onnx's shape inference or extraction failing on a damaged graph
            raise UserError(f'{path}: malformed export: the graph cannot be cut into its stages ({_first_line(e)})') from None
        self.stages = {s: Stage(parts[s], cuts[s], threads, path) for s in cuts}
        self.encoder = OnnxEncoder(self.stages['encode'], meta)
        self.prepare, self.query = self.stages['prepare'], self.stages['query']
        self.meta, self.state = meta, None

    def extra_cuts(self, meta: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
        """Parts of the graph to run besides its stages, {name: {'inputs', 'outputs'}}: none here."""
        return {}

    def gen_feat(self, image: Tensor) -> Tensor:
        """image (1, 3, h, w) in [0, 1] -> feat; keeps the query stage's state for query_rgb."""
        feat = self.encoder(image)
        self.state = self.prepare.run(feat=_numpy(feat), image=_numpy(image))
        return feat

    def query_rgb(self, coord: Tensor, cell: Tensor) -> Tensor:
        """coord, cell (1, Q, 2) -> rgb (1, Q, 3) in [0, 1], from the state of the last gen_feat,
        QUERY_PIECE queries per run (the PyTorch path's ROW_CHUNK, models/fast_query.py)."""
        if self.state is None:
            raise RuntimeError('query_rgb before gen_feat')
        return self.query_pieces(coord, cell)

    def query_pieces(self, coord: Tensor, cell: Tensor, extra: Optional[dict[str, np.ndarray]] = None) -> Tensor:
        """The query stage on coord, cell (1, Q, 2) (and `extra` inputs), QUERY_PIECE queries per
        run -> rgb (1, Q, 3)."""
        coord, cell = _numpy(coord), _numpy(cell)
        out = np.empty((*coord.shape[:2], 3), dtype=np.float32)  # (1, Q, 3)
        for i in range(0, coord.shape[1], self.query_piece):
            piece = slice(i, i + self.query_piece)
            out[:, piece] = self.query.run(**self.state, **(extra or {}), coord=coord[:, piece],
                                           cell=cell[:, piece])[OUTPUT]
        return torch.from_numpy(out)


class OnnxAttentionModel(OnnxModel):
    """An exported model whose queries attend to each other (SRNO, HIIF): query_rgb(coord, cell)
    runs them as one call (all Q attend together), query_context(chunks) accumulates the
    attention means of a group given in chunks (the context stages' sums, added as
    models/galerkin.py adds them) and query_rgb(coord, cell, context) queries any of its chunks
    with them, so the renderer groups and chunks them as for the PyTorch model
    (inference/groups.py)."""

    def extra_cuts(self, meta: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
        """'call': from the query state, coord and cell to rgb through every context stage, the
        queries of the run attending together."""
        return {'call': {'inputs': [*meta['stages']['prepare']['outputs'], 'coord', 'cell'], 'outputs': [OUTPUT]}}

    def query_context(self, chunks: Chunks) -> list[Tensor]:
        """The attention means (one (1, heads, c, c) per block) over all queries of chunks()."""
        def part(i: int, coord: Tensor, cell: Tensor, context: Sequence[Tensor]) -> Tensor:
            means = {kv_name(j): _numpy(kv) for j, kv in enumerate(context)}
            out = self.stages[context_stage(i)].run(**self.state, coord=_numpy(coord), cell=_numpy(cell), **means)
            return torch.from_numpy(out[kv_sum_name(i)])
        if self.state is None:
            raise RuntimeError('query_context before gen_feat')
        return accumulate_context(part, self.meta['attention_blocks'], chunks)

    def query_rgb(self, coord: Tensor, cell: Tensor, context: Optional[Sequence[Tensor]] = None) -> Tensor:
        """coord, cell (1, Q, 2) -> rgb (1, Q, 3) in [0, 1]: without `context`, these Q queries
        attending together (one run); with query_context's, QUERY_PIECE queries per run."""
        if self.state is None:
            raise RuntimeError('query_rgb before gen_feat')
        if context is None:
            return torch.from_numpy(self.stages['call'].run(**self.state, coord=_numpy(coord), cell=_numpy(cell))[OUTPUT])
        return self.query_pieces(coord, cell, {kv_name(j): _numpy(kv) for j, kv in enumerate(context)})


def load_onnx_model(path: PathLike, threads: Optional[int] = None) -> OnnxModel:
    """The exported model at path, ready to render (read_onnx's checks, then one session per stage)."""
    proto, meta = read_onnx(path)
    for name in INPUTS:
        if name not in {i.name for i in proto.graph.input}:
            raise UserError(f'{path}: malformed export: the graph has no input {name!r}')
    return (OnnxAttentionModel if meta['attention_blocks'] else OnnxModel)(proto, meta, path, threads)
