"""The exact fast decoder path shared by LIIF, A-LIIF and Meta-SR.

A decoder's first layer is linear in `q_feat`, and `q_feat` is a nearest-cell (with unfolding,
3x3-neighbourhood) copy of the latent grid. So that part of the layer is applied once on the
low-resolution grid — a 3x3 convolution with the weight reshaped to (O, C, 3, 3) when unfolding,
a 1x1 one without — and each query gathers the O-wide result instead of the 9C-wide feature;
the coordinate/cell columns are added per query. The unfolded map is never materialised.
The cell each query reads is chosen by `sample_nearest`, as in the plain path, so it is the same.

`query_rgb` of the models uses this path by default; `fast_path(False)` (a context manager) or
`query_rgb(..., fast=False)` selects the plain path, which stays the executable definition.
"""
import contextlib
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from utils.coords import sample_nearest

_FAST = {'enabled': True}
T = TypeVar('T')


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


def cell_rows(grid: Tensor) -> Tensor:
    """grid (B, O, h, w) -> (B*h*w, O): one row per latent cell, for `flat_index`."""
    return grid.permute(0, 2, 3, 1).reshape(-1, grid.shape[1])


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


def flat_index(index: Tensor, n_cells: int) -> Tensor:
    """index (B, N) per-image cell indices -> (B*N,) row indices into `cell_rows` of a batch."""
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


def decode_rows(imnet: nn.Module, table: Tensor, index: Tensor, rel: Tensor, weight_rel: Tensor) -> Tensor:
    """The decoder on N inputs whose first layer is table[index] + rel @ weight_rel^T:
    table (cells, O) the projected latent grid (first-layer bias included), index (N,), rel (N, R),
    weight_rel (O, R) -> (N, out_dim), in chunks of rows."""
    if torch.is_grad_enabled():
        # One gather, split (not sliced): its backward is one scatter into a table-sized gradient.
        chunks = zip(torch.split(F.embedding(index, table), TRAIN_ROW_CHUNK), torch.split(rel, TRAIN_ROW_CHUNK))
        outs = [decode_from_first(imnet, torch.addmm(cells, r, weight_rel.t())) for cells, r in chunks]  # (n, out)
    else:
        # The gathered rows are a fresh tensor: the coordinate part is added into them in place
        # (one activation-sized buffer less per chunk; measured 2-18% faster at x30 in fp32).
        # In-place ops escape autocast, so r and weight_rel take the rows' dtype as autocast would.
        w_t = weight_rel.t().to(table.dtype)
        outs = [decode_from_first(imnet, gather_rows(table, i).addmm_(r.to(table.dtype), w_t))
                for i, r in zip(torch.split(index, ROW_CHUNK), torch.split(rel, ROW_CHUNK))]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def _version(t: Tensor) -> int:
    """The in-place version counter of t, or -1 for inference tensors (which have none)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def cached_projection(model: nn.Module, feat: Tensor, params: Sequence[Tensor], compute: Callable[[], T]) -> T:
    """compute() (a projection of feat by params, alone or with facts about it), reused while
    rendering chunk after chunk of one image: kept only when gradients are off and while feat,
    params and autocast are unchanged."""
    if torch.is_grad_enabled():
        return compute()
    dev = feat.device.type
    key = (feat.data_ptr(), feat.shape, _version(feat), torch.is_autocast_enabled(dev),
           torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None,
           tuple((p.data_ptr(), _version(p)) for p in params))
    hit = getattr(model, '_fast_cache', None)
    if hit is not None and hit[0] is feat and hit[1] == key:
        return hit[2]
    out = compute()
    model._fast_cache = (feat, key, out)  # a plain attribute: not in the state dict
    return out


def with_finiteness(table: Tensor) -> tuple[Tensor, bool]:
    """(table, whether every entry is finite), to cache with the table: checked once per image."""
    return table, torch.is_grad_enabled() or bool(torch.isfinite(table).all())


def all_finite(tensors: Sequence[Tensor]) -> bool:
    """Whether every entry of every tensor is finite (one host sync)."""
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def inputs_finite(table_finite: bool, queries: Tensor, imnet: nn.Module) -> bool:
    """Whether the fast path may decode these queries. Inference fuses ReLU into ops that turn
    NaN into 0 (and Meta-SR's convolution skips the zero padding that makes 0 x NaN a NaN), so
    with a NaN or inf in the projected grid (with_finiteness), the queries' coordinate part or the
    decoder's weights the caller takes the plain path, which keeps it. With gradients: always."""
    return torch.is_grad_enabled() or (table_finite and all_finite([queries, *imnet.parameters()]))


def supports_fast(imnet: nn.Module) -> bool:
    """Whether the fast path knows how to split this decoder's first layer (`mlp` decoders and
    A-LIIF's adaptive decoder with an `mlp` expansion net)."""
    from .aliif import AdaptiveDecoder  # aliif imports liif, which imports this module
    from .mlp import MLP

    if isinstance(imnet, AdaptiveDecoder):
        return isinstance(imnet.expansion, MLP)
    return isinstance(imnet, MLP)


def first_layer(imnet: nn.Module) -> tuple[Tensor, Tensor]:
    """weight (O, D), bias (O,): every linear map the decoder applies to its input (D wide) first.
    An `mlp`: its first Linear. A-LIIF: the expansion net's first Linear (rows 0..255) then the
    K bases' first layers (basis-major, K*H rows)."""
    from .aliif import AdaptiveDecoder

    if isinstance(imnet, AdaptiveDecoder):
        lin, w, b = imnet.expansion.layers[0], imnet.basis_weight[0], imnet.basis_bias[0]
        return (torch.cat([lin.weight, w.reshape(-1, w.shape[-1])]),  # (256 + K*H, D)
                torch.cat([lin.bias, b.reshape(-1)]))
    return imnet.layers[0].weight, imnet.layers[0].bias


def decode_from_first(imnet: nn.Module, pre: Tensor) -> Tensor:
    """pre (N, O), the output of `first_layer` on the decoder input -> the decoder's output (N, 3)."""
    from .aliif import AdaptiveDecoder

    if isinstance(imnet, AdaptiveDecoder):
        n_exp = imnet.expansion.layers[0].out_features
        # (No ReLU in place here: the bases' columns of pre are kept for backward.)
        coef = F.normalize(mlp_from_first(imnet.expansion, pre[:, :n_exp], inplace=False), dim=-1)  # (N, K)
        first = pre[:, n_exp:].reshape(pre.shape[0], imnet.basis_num, -1)  # (N, K, H)
        return imnet.mix(first, coef, first_layer=first)
    return mlp_from_first(imnet, pre, inplace=True)


def mlp_from_first(mlp: nn.Module, pre: Tensor, inplace: bool) -> Tensor:
    """An `mlp`'s output from its first Linear's output pre (N, hidden); ReLU on pre in place if allowed."""
    layers = list(mlp.layers)  # Linear, ReLU, Linear, ReLU, ..., Linear
    x = (relu_(pre) if inplace else F.relu(pre)) if len(layers) > 1 else pre
    for i in range(2, len(layers), 2):
        x = linear(x, layers[i], relu=i + 1 < len(layers))
    return x


def relu_(x: Tensor) -> Tensor:
    """ReLU in place. A bf16 number is negative iff its sign bit is set, i.e. iff it is negative as
    an int16, so without gradients it is clamped as int16 (4x faster). A NaN with the sign bit set
    (torch's bf16 NaN) becomes 0 here, as in oneDNN's fused linear+ReLU: so LIIF's query_rgb_fast
    takes the plain path when its inputs are not all finite."""
    if x.dtype == torch.bfloat16 and not torch.is_grad_enabled() and x.is_contiguous():
        x.view(torch.int16).clamp_min_(0)
        return x
    return F.relu(x, inplace=True)


def _has_fused_linear() -> bool:
    """Whether this torch build has oneDNN's linear with a fused ReLU (a CPU op inductor uses)."""
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')
    except (AttributeError, RuntimeError):
        return False


FUSED_LINEAR = _has_fused_linear()


def linear(x: Tensor, layer: nn.Linear, relu: bool) -> Tensor:
    """layer(x), then ReLU if relu, for x (N, in). Without gradients on CPU: one oneDNN call with
    the bias and ReLU fused into the matrix product (same values, one pass over memory instead of
    three) — for ReLU layers, and in bf16 also for the last one (measured faster only there)."""
    w, b = layer.weight, layer.bias
    if FUSED_LINEAR and not torch.is_grad_enabled() and x.device.type == 'cpu' and b is not None:
        if torch.is_autocast_enabled('cpu'):
            dtype = torch.get_autocast_dtype('cpu')
            x, w, b = x.to(dtype), w.to(dtype), b.to(dtype)
        if (x.dtype == w.dtype == b.dtype and (x.dtype == torch.bfloat16 or relu and x.dtype == torch.float32)
                and x.is_contiguous()):
            return torch.ops.mkldnn._linear_pointwise(x, w, b, 'relu' if relu else 'none', [], '')
    x = F.linear(x, w, b)
    return F.relu(x, inplace=True) if relu else x
