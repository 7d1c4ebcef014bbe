"""Swin Transformer blocks (Liu et al. 2021) as SwinIR uses them (docs/design.md §2.4): multi-head
self-attention inside non-overlapping windows with a learned relative position bias, every second
block on windows shifted by half a window (a mask keeps the regions the shift wraps around apart).
Module and buffer names match the LTE release's checkpoints.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.utils.checkpoint
from torch import Tensor


def window_partition(x: Tensor, ws: int) -> Tensor:
    """x (B, h, w, C) -> (B*nW, ws*ws, C): non-overlapping ws x ws windows, row-major, tokens
    row-major inside each window."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)  # (B*nW, ws*ws, C)


def window_reverse(windows: Tensor, ws: int, h: int, w: int) -> Tensor:
    """The inverse of window_partition: (B*nW, ws*ws, C) -> (B, h, w, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)  # (B, h/ws, w/ws, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(ws: int) -> Tensor:
    """(ws*ws, ws*ws) long: for tokens i, j of a window, the row of the bias table holding their
    offset (dr, dc), both in [-(ws-1), ws-1], as (dr + ws - 1) * (2ws - 1) + (dc + ws - 1)."""
    rc = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing='ij')).flatten(1)  # (2, N)
    offset = rc[:, :, None] - rc[:, None, :] + (ws - 1)  # (2, N, N)
    return offset[0] * (2 * ws - 1) + offset[1]


def shifted_window_mask(hw: Sequence[int], ws: int, shift: int, device=None,
                        dtype: torch.dtype = torch.float32) -> Tensor:
    """(nW, ws*ws, ws*ws): 0 between tokens of the same region of an (h, w) map, -100 between
    regions. Shifting by `shift` rolls the bottom/right edge into windows with the top/left one;
    the mask keeps those strips (regions [0, n-ws), [n-ws, n-shift), [n-shift, n) per axis) apart."""
    def regions(n: int) -> Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - ws).long() + (i >= n - shift).long()

    label = regions(hw[0])[:, None] * 3 + regions(hw[1])[None, :]  # (h, w)
    windows = window_partition(label[None, :, :, None], ws)[..., 0]  # (nW, ws*ws)
    apart = windows[:, None, :] != windows[:, :, None]  # (nW, N, N)
    return torch.zeros(apart.shape, device=device, dtype=dtype).masked_fill(apart, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, plus a learned bias per head and relative
    offset between the two tokens."""

    def __init__(self, dim: int, ws: int, num_heads: int, qkv_bias: bool, qk_scale: Optional[float],
                 attn_drop: float, proj_drop: float):
        super().__init__()
        self.ws, self.num_heads = ws, num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * ws - 1) ** 2, num_heads))
        self.register_buffer('relative_position_index', relative_position_index(ws))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x (B*nW, N, C) windows of N tokens, mask (nW, N, N) or None -> (B*nW, N, C)."""
        b_, n, c = x.shape
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B*nW, nH, N, d)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, nH, N, N)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attn = attn + bias.view(n, n, -1).permute(2, 0, 1).unsqueeze(0)  # bias: (1, nH, N, N)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(b_ // nw, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)  # (B*nW, nH, N, N)
        attn = self.attn_drop(attn.softmax(-1))
        x = (attn @ v).transpose(1, 2).reshape(b_, n, c)  # heads concatenated: (B*nW, N, C)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """Linear -> GELU -> Linear, with dropout after each."""

    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def drop_path_layer(p: float) -> nn.Module:
    """DropPath (per-sample stochastic depth) of rate p: torchvision's StochasticDepth in 'row' mode,
    or an identity for p = 0. torchvision is imported here, not with this module: importing it
    takes about a second, which every process that never builds a SwinIR would pay."""
    if p <= 0:
        return nn.Identity()
    from torchvision.ops import StochasticDepth  # third-party and slow to import: only when needed
    return StochasticDepth(p, mode='row')


class SwinBlock(nn.Module):
    """LayerNorm, (shifted) window attention, residual; LayerNorm, MLP, residual. `attn_mask` is
    the shifted-window mask for `input_resolution` (the release's checkpoints carry it); for other
    sizes the mask is computed in forward."""

    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, ws: int, shift: int,
                 mlp_ratio: float, qkv_bias: bool, qk_scale: Optional[float], drop: float, attn_drop: float,
                 drop_path: float, norm_layer: type[nn.Module]):
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= ws:
            # The release's rule: a window as large as the training crop is not partitioned.
            ws, shift = min(input_resolution), 0
        self.ws, self.shift = ws, shift
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, ws, num_heads, qkv_bias, qk_scale, attn_drop, drop)
        self.drop_path = drop_path_layer(drop_path)
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.register_buffer('attn_mask', shifted_window_mask(input_resolution, ws, shift) if shift else None)

    def mask(self, x_size: tuple[int, int], x: Tensor) -> Optional[Tensor]:
        """The attention mask for a map of x_size: none without shift, else the stored one for
        input_resolution (as loaded) or one computed for this size (always, when traced for export:
        the graph serves any size)."""
        if not self.shift:
            return None
        if not torch.compiler.is_exporting() and x_size == self.input_resolution:
            return self.attn_mask
        return shifted_window_mask(x_size, self.ws, self.shift, x.device, x.dtype)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        """x (B, h*w, C) tokens of an (h, w) map -> same."""
        (h, w), (b, _, c) = x_size, x.shape
        shortcut = x
        x = self.norm1(x).view(b, h, w, c)
        if self.shift:
            x = torch.roll(x, (-self.shift, -self.shift), dims=(1, 2))
        windows = self.attn(window_partition(x, self.ws), self.mask(x_size, x))  # (B*nW, ws*ws, C)
        x = window_reverse(windows, self.ws, h, w)  # (B, h, w, C)
        if self.shift:
            x = torch.roll(x, (self.shift, self.shift), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SwinLayer(nn.Module):
    """A sequence of SwinBlocks, alternately unshifted and shifted by half a window."""

    def __init__(self, depth: int, ws: int, drop_path: Sequence[float], use_checkpoint: bool, **block_args):
        super().__init__()
        self.blocks = nn.ModuleList([SwinBlock(ws=ws, shift=0 if i % 2 == 0 else ws // 2,
                                               drop_path=drop_path[i], **block_args) for i in range(depth)])
        self.use_checkpoint = use_checkpoint

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        for block in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, x_size, use_reentrant=False)
            else:
                x = block(x, x_size)
        return x
