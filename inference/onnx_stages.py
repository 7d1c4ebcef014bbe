"""What an ONNX export is made of (docs/design.md §11): the model's own code cut into stages, each
an nn.Module that torch.onnx.export turns into one graph, joined afterwards at named tensors
(inference/onnx_export.py):

    encode:    image -> feat                                  normalisation, then the encoder
    prepare:   feat, image -> state                           the rest of gen_feat, what queries read
    context i: state, coord, cell, kv0 .. kv(i-1) -> kvsum i, kv i   (models whose queries attend
               to each other: block i's sum of k^T v over the queries, and its mean)
    query:     state, coord, cell (, kv0 ..) -> rgb           the query, de-normalised and clamped

The state is the fast path's (`fast_state()`, models/fast_query.py: `table`, and `inp` for LTE), or
for SRNO and HIIF `query_inputs()` (`codes`, `inp`). Joined, the context stages' means feed the
query: the Q queries of one run attend together, as one call of the PyTorch model. Cut, a runtime
sums a group's kvsum over its chunks and feeds the means (inference/onnx_backend.py).
"""
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from models.fast_query import supports_fast
from models.galerkin import kv_part
from models.loading import is_implicit
from utils.errors import UserError

from .groups import couples_queries
from .norm import DataNorm
from .onnx_format import context_stage, kv_name, kv_sum_name
from .render import fixed_feat


def query_state(model: nn.Module) -> dict[str, Tensor]:
    """What the model's queries read after its last gen_feat: fast_state() (queries independent of
    each other) or query_inputs() (queries that attend to each other)."""
    return model.query_inputs() if couples_queries(model) else model.fast_state()


def check_exportable(model: nn.Module, where: str = 'model') -> None:
    """UserError unless model is an implicit model whose queries the stages can express: the fast
    path's two steps (fast_state, query_state) with a decoder that supports it, or the attention
    models' query_inputs, embed and attention blocks (SRNO, HIIF)."""
    if not is_implicit(model):
        raise UserError(f'{where}: not an implicit image function (no gen_feat/query_rgb); nothing to export')
    if couples_queries(model):
        if not all(callable(getattr(model, m, None)) for m in ('query_inputs', 'set_query_inputs', 'embed',
                                                                 'attention_blocks')):
            raise UserError(f'{where}: model {type(model).__name__} attends across its queries but has no '
                            'query_inputs/embed/attention_blocks, which its query graphs are made of')
        return
    if not (callable(getattr(model, 'fast_state', None)) and callable(getattr(model, 'query_state', None))):
        raise UserError(f'{where}: model {type(model).__name__} has no fast_state/query_state, which '
                        'the query graph is made of; it cannot be exported yet')
    imnet = getattr(model, 'imnet', None)
    if imnet is None or not supports_fast(imnet):
        raise UserError(f'{where}: the model has no decoder with a first layer to split (imnet '
                        f'{type(imnet).__name__}); only models whose fast path applies can be exported')


class EncodeStage(nn.Module):
    """image (1, 3, h, w) in [0, 1] -> feat (1, C, h', w'): the normalisation, then the encoder."""

    def __init__(self, model: nn.Module, norm: DataNorm):
        super().__init__()
        self.model, self.norm = model, norm

    def forward(self, image: Tensor) -> Tensor:
        return self.model.encoder(self.norm.inp(image))


class PrepareStage(nn.Module):
    """feat, image -> the query state (query_state(), in `names` order), as gen_feat would prepare
    it from an encoder that returned feat."""

    def __init__(self, model: nn.Module, norm: DataNorm, names: Sequence[str]):
        super().__init__()
        self.model, self.norm, self.names = model, norm, tuple(names)

    def forward(self, feat: Tensor, image: Tensor) -> tuple[Tensor, ...]:
        with fixed_feat(self.model, feat):
            self.model.gen_feat(self.norm.inp(image))
        state = query_state(self.model)
        # A state tensor that is feat itself (SRNO's codes) is copied: an output that is an input
        # would give the input the output's name in the exported graph.
        return tuple(state[k].clone() if state[k] is feat else state[k] for k in self.names)


class ContextStage(nn.Module):
    """The state's tensors (in `names` order), coord, cell, kv0 .. kv(i-1) -> (kvsum i, kv i):
    attention block i's sum of k^T v over these queries (B, heads, c, c), and its mean (what one
    call of the model attends with)."""

    def __init__(self, model: nn.Module, names: Sequence[str], block: int):
        super().__init__()
        self.model, self.names, self.block = model, tuple(names), block

    def forward(self, *args: Tensor) -> tuple[Tensor, Tensor]:
        n = len(self.names)
        self.model.set_query_inputs(dict(zip(self.names, args[:n])))
        coord, cell, context = args[n], args[n + 1], args[n + 2:]
        total = kv_part(self.model.embed, self.model.attention_blocks(), self.block, coord, cell, context)
        return total, total / coord.shape[1]


class QueryStage(nn.Module):
    """The state's tensors (in `names` order), coord, cell (, the attention means kv0 ..) -> rgb
    in [0, 1]: the query, de-normalised and clamped."""

    def __init__(self, model: nn.Module, norm: DataNorm, names: Sequence[str]):
        super().__init__()
        self.model, self.norm, self.names = model, norm, tuple(names)

    def forward(self, *args: Tensor) -> Tensor:
        n = len(self.names)
        state, coord, cell, context = dict(zip(self.names, args[:n])), args[n], args[n + 1], args[n + 2:]
        if couples_queries(self.model):
            self.model.set_query_inputs(state)
            pred = self.model.query_rgb(coord, cell, context=list(context))
        else:
            pred = self.model.query_state(state, coord, cell)
        return self.norm.pred_to_rgb(pred)


class StageSpec(NamedTuple):
    """One stage to export: its module, example arguments and the names of its inputs and outputs."""
    module: nn.Module
    args: tuple
    inputs: list[str]
    outputs: list[str]


@torch.no_grad()
def plan_stages(model: nn.Module, norm: DataNorm, image: Tensor, coord: Tensor,
                cell: Tensor) -> tuple[dict[str, StageSpec], list[str]]:
    """{stage name: StageSpec} in the order they run, traced on image (1, 3, h, w), coord and cell
    (1, Q, 2), and the names of the query state's tensors."""
    feat = EncodeStage(model, norm)(image)
    with fixed_feat(model, feat):
        model.gen_feat(norm.inp(image))
    state = query_state(model)
    names = list(state)
    stages = {'encode': StageSpec(EncodeStage(model, norm), (image,), ['image'], ['feat']),
              'prepare': StageSpec(PrepareStage(model, norm, names), (feat, image), ['feat', 'image'], names)}
    context: list[Tensor] = []
    blocks = model.attention_blocks() if couples_queries(model) else ()
    for i in range(len(blocks)):
        stage = ContextStage(model, names, i)
        args = (*state.values(), coord, cell, *context)
        stages[context_stage(i)] = StageSpec(stage, args, [*names, 'coord', 'cell', *map(kv_name, range(i))],
                                             [kv_sum_name(i), kv_name(i)])
        context.append(stage(*args)[1])
    stages['query'] = StageSpec(QueryStage(model, norm, names), (*state.values(), coord, cell, *context),
                                [*names, 'coord', 'cell', *map(kv_name, range(len(blocks)))], ['rgb'])
    return stages, names
