"""The exact fast decoder path shared by LIIF, A-LIIF and Meta-SR.

A decoder's first layer is linear in `q_feat`, and `q_feat` is a nearest-cell (with unfolding,
3x3-neighbourhood) copy of the latent grid. So that part of the layer is applied once on the
low-resolution grid — a 3x3 convolution with the weight reshaped to (O, C, 3, 3) when unfolding,
a 1x1 one without — and each query gathers the O-wide result instead of the 9C-wide feature;
the coordinate/cell columns are added per query. The unfolded map is never materialised.
The cell each query reads is chosen by `sample_nearest`, as in the plain path, so it is the same.

`query_rgb` of the models uses this path by default; `fast_path(False)` (a context manager) or
`query_rgb(..., fast=False)` selects the plain path, which stays the executable definition.

A model's fast path is two steps: `fast_state()`, what its queries read, computed once per image
(the projected grid as a table of rows), and `query_state(state, coord, cell)`. Traced by
torch.export (the ONNX exporter, inference/onnx_export.py), the same code becomes one graph for any
number of queries: no chunk loop over rows, no cache, no data-dependent check (`exporting`).
"""
import contextlib
from typing import Any, Callable, Iterator, Optional, Sequence, TypeVar, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import make_coord, sample_nearest, shift_coord, to_latent_units

from .fused import tensor_version

_FAST = {'enabled': True}
T = TypeVar('T')


def exporting() -> bool:
    """Whether the code is being traced by torch.export (the ONNX exporter): then a query must be one
    graph for any number of queries, so row chunks, caches and finiteness checks are left out."""
    return torch.compiler.is_exporting()


def use_fast(fast: Optional[bool] = None) -> bool:
    """`fast` if given, else the process-wide default set by `fast_path` (True)."""
    return _FAST['enabled'] if fast is None else bool(fast)


@contextlib.contextmanager
def fast_path(enabled: bool = True) -> Iterator[None]:
    """Within the context, models' `query_rgb` uses the fast path iff `enabled`."""
    before = _FAST['enabled']
    _FAST['enabled'] = bool(enabled)
    try:
        yield
    finally:
        _FAST['enabled'] = before


def encoder_input(inp: Tensor, fast: Optional[bool] = None) -> Tensor:
    """inp (B, 3, h, w), with the fast path on CPU in channels-last layout: oneDNN's native layout,
    in which the encoder's convolutions (same math) run 1.4-2.3x faster (benchmarks/)."""
    if use_fast(fast) and inp.device.type == 'cpu' and inp.dim() == 4:
        return inp.contiguous(memory_format=torch.channels_last)
    return inp


def project_feat(feat: Tensor, weight: Tensor, unfold: bool, bias: Optional[Tensor] = None) -> Tensor:
    """feat (B, C, h, w), weight (O, 9C) (unfold) or (O, C), bias (O,) -> (B, O, h, w): the weight
    applied to every cell's (unfolded) feature, plus bias. Unfolded channel c*9 + k is channel c at
    3x3 position k = 3*dy + dx with zero padding: exactly a padded 3x3 convolution's weight layout."""
    out_dim, c = weight.shape[0], feat.shape[1]
    if unfold:
        return F.conv2d(feat, weight.reshape(out_dim, c, 3, 3), bias, padding=1)  # (B, O, h, w)
    return F.conv2d(feat, weight.reshape(out_dim, c, 1, 1), bias)


def cell_table(grid: Tensor) -> Tensor:
    """grid (B, O, h, w) -> (B, h, w, O): one row per latent cell (`table_rows` flattens it for
    `flat_index`). Without gradients the rows are made contiguous: a channels-last grid is that
    layout already, a channels-first one is copied once (per image, in the cached state), since its
    view would be column-major and gather_rows' row copy needs rows. (Training gathers with
    F.embedding, which takes either layout; there the copy measured slower,
    benchmarks/bench_decoder.py --only train.)"""
    table = grid.permute(0, 2, 3, 1)  # (B, h, w, O)
    return table if torch.is_grad_enabled() else table.contiguous()


def table_rows(table: Tensor) -> Tensor:
    """table (B, h, w, O) -> (B*h*w, O), a view of contiguous rows."""
    return table.reshape(-1, table.shape[-1])


def cell_rows(grid: Tensor) -> Tensor:
    """grid (B, O, h, w) -> (B*h*w, O): cell_table's rows, for `flat_index`."""
    return table_rows(cell_table(grid))


def nearest_index(coord: Tensor, hw: Sequence[int]) -> Tensor:
    """coord (B, N, 2) -> (B, N) flat index row * w + col of the nearest latent cell of an
    (h, w) grid, chosen by `sample_nearest` itself (so it is the plain path's choice). The grid
    sampled holds each cell's row and column (exact in float32 up to 2^24 per side), not its flat
    index, which float32 cannot hold exactly beyond 2^24 cells."""
    h, w = hw
    rows = torch.arange(h, device=coord.device, dtype=coord.dtype).view(h, 1).expand(h, w)
    cols = torch.arange(w, device=coord.device, dtype=coord.dtype).view(1, w).expand(h, w)
    grid = torch.stack([rows, cols]).unsqueeze(0).expand(coord.shape[0], 2, h, w)
    rc = sample_nearest(grid, coord).long()  # (B, N, 2)
    return rc[..., 0] * w + rc[..., 1]


def corner_picks(coord: Tensor, hw: Sequence[int], corners: Sequence[tuple[int, int]],
                 eps: float) -> tuple[Tensor, Tensor]:
    """The latent cell each query picks for each corner, batched: coord (B, Q, 2) -> (index
    (B, K*Q) as nearest_index, corner-major, rel_coord (B, K, Q, 2) in latent units from the
    picked cell's centre), the plain path's shift, clamp and nearest rule (docs/design.md §2.1)."""
    coord_ = torch.stack([shift_coord(coord, dr, dc, hw, eps) for dr, dc in corners], 1)  # (B, K, Q, 2)
    b, k, q = coord_.shape[:3]
    index = nearest_index(coord_.view(b, k * q, 2), hw)  # (B, K*Q)
    q_coord = make_coord(hw, device=coord.device)[index].view(b, k, q, 2)
    return index, to_latent_units(coord.unsqueeze(1) - q_coord, hw)


def flat_index(index: Tensor, n_cells: int) -> Tensor:
    """index (B, N) per-image cell indices -> (B*N,) row indices into `table_rows` of a batch."""
    offset = torch.arange(index.shape[0], device=index.device).unsqueeze(1) * n_cells
    return (index + offset).view(-1)


def gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """table (cells, O), index (N,) -> table[index] (N, O). Without gradients, 16-bit rows are
    moved as 32-bit words: torch's row gather is several times slower for 16-bit types."""
    if torch.is_grad_enabled() or table.element_size() != 2 or table.shape[1] % 2 or not table.is_contiguous():
        return F.embedding(index, table)
    return table.view(torch.int32).index_select(0, index).view(table.dtype)


# Rows of the decoder run at a time: its activations (rows x 256) then stay in the L2 cache
# instead of streaming through memory (measured by benchmarks/bench_decoder.py --sweep-rows).
# With gradients on (training), everything is kept for backward anyway: TRAIN_ROW_CHUNK.
ROW_CHUNK = 4096
TRAIN_ROW_CHUNK = 1 << 30


def row_spans(n: int) -> list[slice]:
    """The rows decoded together: ROW_CHUNK at a time in inference; all at once with gradients
    (TRAIN_ROW_CHUNK) or when traced for export (one graph for any n)."""
    if exporting():
        return [slice(None)]
    chunk = TRAIN_ROW_CHUNK if torch.is_grad_enabled() else ROW_CHUNK
    return [slice(i, i + chunk) for i in range(0, n, chunk)]


def decode_rows(imnet: nn.Module, table: Tensor, index: Tensor, rel: Tensor, weight_rel: Tensor) -> Tensor:
    """The decoder on N inputs whose first layer is table[index] + rel @ weight_rel^T:
    table (cells, O) the projected latent grid (first-layer bias included), index (N,), rel (N, R),
    weight_rel (O, R) -> (N, out_dim) through imnet.from_first, in chunks of rows. Without
    gradients the rows are fresh tensors, which from_first may overwrite."""
    if exporting():
        return imnet.from_first(torch.addmm(F.embedding(index, table), rel, weight_rel.t()))
    if torch.is_grad_enabled():
        # One gather, split (not sliced): its backward is one scatter into a table-sized gradient.
        chunks = zip(torch.split(F.embedding(index, table), TRAIN_ROW_CHUNK), torch.split(rel, TRAIN_ROW_CHUNK))
        outs = [imnet.from_first(torch.addmm(cells, r, weight_rel.t())) for cells, r in chunks]  # (n, out)
    else:
        # The gathered rows are a fresh tensor: the coordinate part is added into them in place
        # (one activation-sized buffer less per chunk; measured 2-18% faster at x30 in fp32).
        # In-place ops escape autocast, so r and weight_rel take the rows' dtype as autocast would.
        w_t = weight_rel.t().to(table.dtype)
        outs = [imnet.from_first(gather_rows(table, i).addmm_(r.to(table.dtype), w_t))
                for i, r in zip(torch.split(index, ROW_CHUNK), torch.split(rel, ROW_CHUNK))]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def cached_projection(model: nn.Module, feat: Tensor, params: Sequence[Tensor], compute: Callable[[], T],
                      extra: tuple = ()) -> T:
    """compute() (a projection of feat by params, alone or with facts about it), reused while
    rendering chunk after chunk of one image: kept only when gradients are off and while feat,
    params, autocast and `extra` (hashable facts compute() also depends on) are unchanged (never
    while traced for export)."""
    if torch.is_grad_enabled() or exporting():
        return compute()
    dev = feat.device.type
    key = (feat.data_ptr(), feat.shape, tensor_version(feat), torch.is_autocast_enabled(dev),
           torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None,
           tuple((p.data_ptr(), tensor_version(p)) for p in params), extra)
    hit = getattr(model, '_fast_cache', None)
    if hit is not None and hit[0] is feat and hit[1] == key:
        return hit[2]
    out = compute()
    model._fast_cache = (feat, key, out)  # a plain attribute: not in the state dict
    return out


def with_finiteness(state: Union[Tensor, dict[str, Tensor]], params: Sequence[Tensor] = ()) -> tuple[Any, bool]:
    """(state, whether every entry of it (a table, or a fast_state dict's tensors) and of `params`
    (the decoder's weights) is finite), to cache with the state, keyed on those params: checked
    once per image, not once per chunk. Always True with gradients or when traced for export."""
    tensors = list(state.values()) if isinstance(state, dict) else [state]
    return state, torch.is_grad_enabled() or exporting() or all_finite([*tensors, *params])


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every entry of every tensor is finite (one host sync)."""
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def inputs_finite(table_finite: bool, queries: Tensor) -> bool:
    """Whether the fast path may decode these queries. Inference fuses ReLU into ops that turn
    NaN into 0 (and Meta-SR's convolution skips the zero padding that makes 0 x NaN a NaN), so
    with a NaN or inf in the projected grid or the decoder's weights (with_finiteness, cached per
    image) or in the queries' coordinate part, the caller takes the plain path, which keeps it.
    With gradients or when traced for export: always."""
    return torch.is_grad_enabled() or exporting() or (table_finite and all_finite([queries]))


def supports_fast(imnet: nn.Module) -> bool:
    """Whether a decoder can take the fast path: it says so by defining `first_layer()`, which
    returns (weight (O, D), bias (O,)) of every linear map it applies to its input first (or None
    when it cannot), and `from_first(pre)`, its output from that map's output pre (N, O)."""
    return callable(getattr(imnet, 'from_first', None)) and callable(getattr(imnet, 'first_layer', None)) \
        and imnet.first_layer() is not None
