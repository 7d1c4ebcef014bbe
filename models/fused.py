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
