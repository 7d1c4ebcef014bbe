"""The decoder MLP: Linear -> ReLU per hidden width, then Linear to out_dim."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fused import linear, lossy_kernels, relu_, tensor_version
from .registry import register


@register('mlp')
class MLP(nn.Module):
    """A plain MLP on the last dimension: `Linear -> ReLU` for each width of `hidden_list`, then a
    `Linear` to `out_dim`, as one `nn.Sequential` named `layers` (state-dict keys `layers.0`,
    `layers.2`, ..., as in the paper release).

    Config args:
        in_dim (int): input width. A parent model passes it (LIIF: its decoder input width), so
            configs leave it out of `imnet_spec`.
        out_dim (int): output width (3 for RGB).
        hidden_list (list[int]): hidden widths, e.g. [256, 256, 256, 256] (the paper's).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_list: list[int]):
        super().__init__()
        layers, last = [], in_dim
        for hidden in hidden_list:
            layers += [nn.Linear(last, hidden), nn.ReLU()]
            last = hidden
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: Tensor) -> Tensor:
        """x (..., in_dim) -> (..., out_dim)."""
        shape = x.shape[:-1]
        return self.layers(x.reshape(-1, x.shape[-1])).view(*shape, -1)

    # The fast path's interface (models/fast_query.py, docs/design.md §8).

    def first_layer(self) -> tuple[Tensor, Tensor]:
        """weight (O, in_dim), bias (O,) of the first Linear: the map applied to the input first."""
        return self.layers[0].weight, self.layers[0].bias

    def from_first(self, pre: Tensor, inplace: bool = True) -> Tensor:
        """The output (N, out_dim) from the first Linear's output pre (N, O); with `inplace`, the
        ReLU overwrites pre (the fast path hands over a fresh tensor). Without gradients the fused
        kernels run (models/fused.py), which turn a NaN into 0; they run only when no layer can
        overflow (overflow_free), otherwise the plain layers keep the inf or NaN that the
        definition gives (docs/design.md §8), so a broken model is never a plausible colour."""
        layers = list(self.layers)  # Linear, ReLU, Linear, ReLU, ..., Linear
        if lossy_kernels(pre) and not self.overflow_free(pre):
            x = F.relu(pre) if len(layers) > 1 else pre
            for i in range(2, len(layers), 2):
                x = layers[i](x)
                x = F.relu(x) if i + 1 < len(layers) else x
            return x
        x = (relu_(pre) if inplace else F.relu(pre)) if len(layers) > 1 else pre
        for i in range(2, len(layers), 2):
            x = linear(x, layers[i], relu=i + 1 < len(layers))
        return x

    def overflow_free(self, pre: Tensor) -> bool:
        """Whether, for first-layer outputs as large as pre's (N, O), every later layer's values
        provably stay finite in the dtype they are computed in: |x_{l+1}| <= ||W_l||_inf |x_l|
        + max|b_l| (ReLU only shrinks), kept 16x below the dtype's largest value for rounding. One
        reduction over pre per call; the weights' norms are cached while they are unchanged.
        False for a non-finite pre."""
        lo, hi = torch.aminmax(pre)
        bound = max(-float(lo), float(hi))
        dev = pre.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else pre.dtype
        limit = torch.finfo(dtype).max / 16
        for norm, bias in self.layer_norms():
            if not bound < limit:
                return False
            bound = norm * bound + bias
        return bound < limit

    def layer_norms(self) -> list[tuple[float, float]]:
        """(max row sum of |W|, max |b|) of every Linear after the first, in float64, cached on the
        module (a plain attribute, not in the state dict) while the parameters are unchanged."""
        linears = list(self.layers)[2::2]
        key = tuple((p.data_ptr(), tensor_version(p)) for m in linears for p in (m.weight, m.bias))
        hit = self.__dict__.get('_norm_cache')
        if hit is None or hit[0] != key:
            norms = [(float(m.weight.detach().double().abs().sum(1).max()),
                      float(m.bias.detach().double().abs().max())) for m in linears]
            hit = (key, norms)
            self.__dict__['_norm_cache'] = hit
        return hit[1]

    def last_layer(self) -> tuple[Tensor, Tensor]:
        """weight (out_dim, H), bias (out_dim,) of the last Linear (Meta-SR's fast path folds it
        into the latent grid)."""
        return self.layers[-1].weight, self.layers[-1].bias

    def hidden(self, x: Tensor) -> Tensor:
        """x (N, in_dim) -> (N, H): every layer but the last, i.e. the last Linear's input."""
        return self.layers[:-1](x)
