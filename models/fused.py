"""Inference kernels for the decoder's layers on CPU: oneDNN's linear with a fused ReLU, and an
in-place bf16 ReLU done on the raw bits. Same values as F.linear + F.relu, fewer passes over memory
(benchmarks/bench_decoder.py). Used by the decoders' `from_first` (the fast path, docs/design.md §8)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


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


def tensor_version(t: Tensor) -> int:
    """The in-place version counter of t, or -1 for inference tensors (which have none)."""
    try:
        return t._version
    except RuntimeError:
        return -1


def cast_params(layer: nn.Linear, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The layer's weight and bias in `dtype`, cast once and kept on the layer (a plain attribute,
    not in the state dict) while the parameters are unchanged: a render calls the layer once per
    chunk of rows, and each call used to cast them again."""
    w, b = layer.weight, layer.bias
    key = (dtype, w.data_ptr(), tensor_version(w), b.data_ptr(), tensor_version(b))
    hit = layer.__dict__.get('_cast_cache')
    if hit is None or hit[0] != key:
        hit = (key, w.to(dtype), b.to(dtype))
        layer.__dict__['_cast_cache'] = hit
    return hit[1], hit[2]


def lossy_kernels(x: Tensor) -> bool:
    """Whether relu_ and linear would run a kernel that turns NaN into 0 on inputs like x: without
    gradients, on CPU with oneDNN's fused linear, or in bf16 (the bit-clamped ReLU). Never while
    traced for export (the graph has the plain ops, which keep a NaN)."""
    if torch.is_grad_enabled() or torch.compiler.is_exporting():
        return False
    dev = x.device.type
    bf16 = x.dtype == torch.bfloat16 or (torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.bfloat16)
    return bf16 or (dev == 'cpu' and FUSED_LINEAR)


def linear(x: Tensor, layer: nn.Linear, relu: bool) -> Tensor:
    """layer(x), then ReLU if relu, for x (N, in). Without gradients on CPU: one oneDNN call with
    the bias and ReLU fused into the matrix product (same values, one pass over memory instead of
    three) — for ReLU layers, and in bf16 also for the last one (measured faster only there).
    Traced for export, the plain ops (an ONNX graph has no oneDNN kernels)."""
    w, b = layer.weight, layer.bias
    if (FUSED_LINEAR and not torch.is_grad_enabled() and x.device.type == 'cpu' and b is not None
            and not torch.compiler.is_exporting()):
        if torch.is_autocast_enabled('cpu'):
            dtype = torch.get_autocast_dtype('cpu')
            x = x.to(dtype)
            w, b = cast_params(layer, dtype)
        if (x.dtype == w.dtype == b.dtype and (x.dtype == torch.bfloat16 or relu and x.dtype == torch.float32)
                and x.is_contiguous()):
            return torch.ops.mkldnn._linear_pointwise(x, w, b, 'relu' if relu else 'none', [], '')
    x = F.linear(x, w, b)
    return F.relu(x, inplace=True) if relu else x
