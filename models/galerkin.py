"""What SRNO and HIIF share (docs/design.md §2.5): LIIF's four corners blended into one area-weighted
feature per query, and Galerkin-type linear attention over every query of a call.

The attention is the only step that couples queries: per head, each query reads
`kv = (1/N) sum_j k_j^T v_j`, a (c, c) matrix over the N queries of the call. Everything else acts
on each query alone. So a set of queries too large for one call is still computed exactly (up to
float rounding) in chunks: first each attention layer's sum over all chunks, layer by layer
(`accumulate_context`), then every chunk queried with those sums (`query_rgb(..., context=...)`).
"""
from typing import Any, Callable, Iterable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import latent_centres, sample_bilinear, sample_nearest, shift_coord, to_latent_units
from .fast_query import encoder_input
from .liif import ENSEMBLE_CORNERS, corner_area, opposite_area_weights

# chunks() -> an iterable of (coord, cell), each (B, q, 2): the queries of one group, in pieces.
Chunks = Callable[[], Iterable[tuple[Tensor, Tensor]]]


def check_heads(model: str, name: str, width: int, heads: int) -> None:
    """A ValueError unless width (the argument `name`) splits into `heads` (the authors' `blocks`)."""
    if width < 1 or heads < 1 or width % heads:
        raise ValueError(f'{model}: {name} ({width}) must be a positive multiple of blocks, the number of heads ({heads})')


def pointwise(conv: nn.Conv2d, x: Tensor) -> Tensor:
    """A 1x1 convolution applied to query features x (B, Q, C_in) -> (B, Q, C_out)."""
    return F.linear(x, conv.weight.flatten(1), conv.bias)


def corner_features(feat: Tensor, coord: Tensor, units: Sequence[float]) -> tuple[list[Tensor], list[Tensor]]:
    """feat (B, C, h, w), coord (B, Q, 2) -> (rel, featw): for the four corners of
    ENSEMBLE_CORNERS (shifts, eps 1e-6, clamping and nearest pick as LIIF's, docs/design.md §2.1),
    rel (B, Q, 2) = coord minus the picked latent centre, times `units` per axis (SRNO (h, w),
    HIIF (h/2, w/2)), and featw (B, Q, C) = the picked code times its opposite-area weight."""
    hw = feat.shape[-2:]
    centres = latent_centres(feat)  # (B, 2, h, w), make_coord's exact values
    rels, q_feats = [], []
    for dr, dc in ENSEMBLE_CORNERS:
        coord_ = shift_coord(coord, dr, dc, hw, 1e-6)
        q_feats.append(sample_nearest(feat, coord_))  # (B, Q, C)
        rels.append(to_latent_units(coord - sample_nearest(centres, coord_), units))  # (B, Q, 2)
    weights = opposite_area_weights(torch.stack([corner_area(r) for r in rels]))  # (4, B, Q)
    return rels, [f * w.unsqueeze(-1) for f, w in zip(q_feats, weights)]


def split_heads(qkv: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """qkv (B, Q, 3C) -> q, k, v, each (B, heads, Q, C / heads). The channels are laid out per
    head, as the authors' reshape leaves them: head h owns [3c h, 3c (h + 1)), its q, k, v in turn."""
    b, n, _ = qkv.shape
    return qkv.view(b, n, heads, -1).transpose(1, 2).chunk(3, dim=-1)  # each (B, heads, Q, c)


def merge_heads(a: Tensor) -> Tensor:
    """(B, heads, Q, c) -> (B, Q, heads * c), channel head * c + i."""
    b, _, n, _ = a.shape
    return a.transpose(1, 2).reshape(b, n, -1)


class GalerkinBlock(nn.Module):
    """One attention block, `x + MLP(x + q kv)` with kv the mean of k^T v over the queries
    (no softmax, no scaling); the residual adds the block's input. Subclasses (SRNO's, HIIF's)
    define `qkv(x)` -> normalised (q, k, v) per head and `mlp(x)`."""

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def mlp(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def kv_sum(self, x: Tensor) -> Tensor:
        """x (B, Q, C) -> sum over its queries of k^T v, (B, heads, c, c) in float32."""
        _, k, v = self.qkv(x)
        return (k.transpose(-2, -1) @ v).float()

    def forward(self, x: Tensor, kv: Optional[Tensor] = None) -> Tensor:
        """x (B, Q, C) -> (B, Q, C). kv (B, heads, c, c): the mean of k^T v over the queries that
        attend together; None: over the queries of x (the authors' call)."""
        q, k, v = self.qkv(x)
        if kv is None:
            kv = (k.transpose(-2, -1) @ v) / x.shape[1]  # divided after the product, as the authors
        a = merge_heads(q @ kv.to(q.dtype))  # (B, Q, C)
        return self.mlp(a + x) + x


def kv_part(embed: Callable[[Tensor, Tensor], tuple[Tensor, Any]], blocks: Sequence[GalerkinBlock], i: int,
            coord: Tensor, cell: Tensor, context: Sequence[Tensor]) -> Tensor:
    """Block i's sum of k^T v over the queries coord, cell (B, q, 2) -> (B, heads, c, c) float32:
    the queries embedded, then blocks 0 .. i-1 applied with their means context[:i]."""
    x, _ = embed(coord, cell)
    for j in range(i):
        x = blocks[j](x, context[j])
    return blocks[i].kv_sum(x)


def accumulate_context(part: Callable[[int, Tensor, Tensor, Sequence[Tensor]], Tensor], n_blocks: int,
                       chunks: Chunks) -> list[Tensor]:
    """The attention means of one group of queries, given in chunks: [kv (B, heads, c, c)] per
    block, from part(i, coord, cell, context) = block i's sum of k^T v over one chunk given the
    means of the blocks before it (kv_part; another runtime's graph in the ONNX backend). Layer
    l's keys depend on layer l-1's means, so the chunks are walked once per block (each time from
    the embedding, nothing per query is kept: memory stays one chunk's)."""
    context: list[Tensor] = []
    for i in range(n_blocks):
        total, count = None, 0
        for coord, cell in chunks():
            p = part(i, coord, cell, context)
            total = p if total is None else total + p
            count += coord.shape[1]
        if total is None:
            raise ValueError('query_context needs at least one chunk of queries')
        context.append(total / count)
    return context


class GalerkinQueries(nn.Module):
    """The query path of SRNO and HIIF: `embed` (per query) -> attention blocks (coupled) ->
    `head` (per query) + the input sampled bilinearly. Subclasses define gen_feat (setting
    self.inp and self.feat), embed, attention_blocks and head.

    Rendering asks for `query_context` (docs/design.md §5): a model that has it couples the
    queries of a call, so renderers group queries deliberately (row blocks, or the whole image
    through the context) instead of chunking them freely."""

    def embed(self, coord: Tensor, cell: Tensor) -> tuple[Tensor, Any]:
        raise NotImplementedError

    def attention_blocks(self) -> Sequence[GalerkinBlock]:
        raise NotImplementedError

    def head(self, x: Tensor, aux: Any) -> Tensor:
        raise NotImplementedError

    def query_rgb(self, coord: Tensor, cell: Tensor, context: Optional[Sequence[Tensor]] = None) -> Tensor:
        """coord, cell (B, Q, 2) -> rgb (B, Q, 3) from the last gen_feat. Without `context` the
        attention spans exactly these Q queries (the authors' call); with one from
        `query_context`, it spans the group that context was accumulated over."""
        x, aux = self.embed(coord, cell)
        for i, block in enumerate(self.attention_blocks()):
            x = block(x, None if context is None else context[i])
        rgb = self.head(x, aux)  # (B, Q, 3)
        return rgb.to(torch.promote_types(rgb.dtype, torch.float32)) + sample_bilinear(self.inp, coord)

    def query_context(self, chunks: Chunks) -> list[Tensor]:
        """The attention means over all queries of `chunks()` (see accumulate_context), for
        query_rgb(..., context=...) on any of them: equal, up to float rounding, to querying
        them all in one call."""
        blocks = self.attention_blocks()
        return accumulate_context(lambda i, coord, cell, context: kv_part(self.embed, blocks, i, coord, cell, context),
                                  len(blocks), chunks)

    def query_inputs(self) -> dict[str, Tensor]:
        """What the queries read, from the last gen_feat: {'codes': the grid `embed` samples
        (B, C, h', w'), 'inp': the (normalised) input the bilinear term samples (B, 3, h, w)}."""
        return {'codes': self.feat, 'inp': self.inp}

    def set_query_inputs(self, state: dict[str, Tensor]) -> None:
        """Query from `state` (query_inputs' form, e.g. made by another graph) instead of gen_feat's."""
        self.feat, self.inp = state['codes'], state['inp']

    def encode(self, inp: Tensor) -> Tensor:
        """inp (B, 3, h, w) -> the encoder's output; keeps inp for the bilinear term."""
        self.inp = inp
        return self.encoder(encoder_input(inp))

    def forward(self, inp: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """inp (B, 3, h, w), coord and cell (B, Q, 2) -> rgb (B, Q, 3), all Q queries attending together."""
        self.gen_feat(inp)
        return self.query_rgb(coord, cell)
