"""The decoder MLP: Linear -> ReLU per hidden width, then Linear to out_dim."""
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .fused import linear, relu_
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
        ReLU overwrites pre (the fast path hands over a fresh tensor)."""
        layers = list(self.layers)  # Linear, ReLU, Linear, ReLU, ..., Linear
        x = (relu_(pre) if inplace else F.relu(pre)) if len(layers) > 1 else pre
        for i in range(2, len(layers), 2):
            x = linear(x, layers[i], relu=i + 1 < len(layers))
        return x

    def last_layer(self) -> tuple[Tensor, Tensor]:
        """weight (out_dim, H), bias (out_dim,) of the last Linear (Meta-SR's fast path folds it
        into the latent grid)."""
        return self.layers[-1].weight, self.layers[-1].bias

    def hidden(self, x: Tensor) -> Tensor:
        """x (N, in_dim) -> (N, H): every layer but the last, i.e. the last Linear's input."""
        return self.layers[:-1](x)
