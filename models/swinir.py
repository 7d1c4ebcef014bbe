"""SwinIR (Liang et al. 2021) as a LIIF/LTE encoder, as the LTE release builds it
(docs/design.md §2.4); module and buffer names match that release's checkpoints.

conv_first, then residual groups of Swin Transformer blocks (models/swin.py) on the pixels as
tokens, a final LayerNorm and conv_after_body, plus conv_first's output; then conv_before_upsample
to 64 features. Windows tile the image, so the input is reflect-padded bottom/right to a multiple
of the window and the features cover the padded image (not cropped back): the evaluation pads
inputs the same way using the encoder's `window_size`. Attention reaches across whole windows, so
there is no `receptive_radius` and tiled encoding refuses this encoder.
"""
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .edsr import upsampler as pixel_shuffle_upsampler
from .registry import register
from .swin import SwinLayer

# The LTE release's encoder is always 64 wide, whatever embed_dim.
NUM_FEAT = 64


def pad_to_window(x: Tensor, window_size: int) -> Tensor:
    """x (B, C, h, w) reflect-padded at the bottom and right to multiples of window_size."""
    pad_h = -x.shape[-2] % window_size
    pad_w = -x.shape[-1] % window_size
    return F.pad(x, (0, pad_w, 0, pad_h), 'reflect')


def tokens(x: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, h*w, C): one token per pixel, row-major."""
    return x.flatten(2).transpose(1, 2)


def untokens(x: Tensor, x_size: tuple[int, int]) -> Tensor:
    """(B, h*w, C) -> (B, C, h, w)."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *x_size)


def residual_conv(dim: int, kind: str) -> nn.Module:
    """The conv closing a residual group: one 3x3 ('1conv'), or a 3x3-1x1-3x3 bottleneck ('3conv')."""
    if kind == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if kind == '3conv':
        return nn.Sequential(nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(0.2, inplace=True),
                             nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f"resi_connection must be '1conv' or '3conv', got {kind!r}")


class RSTB(nn.Module):
    """Residual Swin Transformer block: a SwinLayer, a conv on the map, plus the group input."""

    def __init__(self, dim: int, resi_connection: str, **layer_args):
        super().__init__()
        self.residual_group = SwinLayer(dim=dim, **layer_args)
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, x_size: tuple[int, int]) -> Tensor:
        return tokens(self.conv(untokens(self.residual_group(x, x_size), x_size))) + x


class PatchEmbed(nn.Module):
    """Pixels as tokens, (B, C, h, w) -> (B, h*w, C), then the optional LayerNorm."""

    def __init__(self, norm: Optional[nn.Module]):
        super().__init__()
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        x = tokens(x)
        return x if self.norm is None else self.norm(x)


@register('swinir')
class SwinIR(nn.Module):
    """SwinIR as the LTE release builds it: (B, in_chans, h, w) -> features (B, 64, h', w') with
    upsampler 'none' (h', w': h, w padded up to multiples of window_size), or an image
    (B, in_chans, upscale*h', upscale*w') with 'pixelshuffle'.

    Args (a config may pass any of them; defaults are the release's):
        img_size: training crop side; sets the size the stored shifted-window masks are for.
        patch_size: tokens are single pixels whatever it is (as in the release); img_size //
            patch_size is the resolution of the stored masks.
        in_chans: input (and, with 'pixelshuffle', output) channels.
        embed_dim: token width E.
        depths: Swin blocks per residual group (one entry per group).
        num_heads: attention heads per group (E must divide by each).
        window_size: attention window side; also the multiple inputs are padded to.
        mlp_ratio: MLP hidden width as a multiple of E.
        qkv_bias: whether the query/key/value projection has a bias.
        qk_scale: attention logit scale; None for head_dim ** -0.5.
        drop_rate, attn_drop_rate: dropout after the embedding, MLP and projections / on attention.
        drop_path_rate: stochastic depth, rising linearly from 0 to this over all blocks.
        norm_layer: normalisation layer class (LayerNorm).
        ape: add a learned absolute position embedding (only for inputs of img_size).
        patch_norm: LayerNorm after the patch embedding.
        use_checkpoint: recompute each block in backward (gradient checkpointing) to save memory.
        upscale: the 'pixelshuffle' tail's factor (2^n or 3).
        img_range: unused: the release's forward applies no mean or range normalisation.
        upsampler: 'none' (the 64-wide features LIIF/LTE decode) or 'pixelshuffle' (an image).
        resi_connection: '1conv' or '3conv', the conv closing each group and the body.
        no_upsampling: unused; the release's configs pass it (the output is set by `upsampler`).
    """

    def __init__(self, img_size: int = 48, patch_size: int = 1, in_chans: int = 3, embed_dim: int = 180,
                 depths: Sequence[int] = (6,) * 6, num_heads: Sequence[int] = (6,) * 6, window_size: int = 8,
                 mlp_ratio: float = 2., qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 drop_rate: float = 0., attn_drop_rate: float = 0., drop_path_rate: float = 0.1,
                 norm_layer: type[nn.Module] = nn.LayerNorm, ape: bool = False, patch_norm: bool = True,
                 use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1.,
                 upsampler: str = 'none', resi_connection: str = '1conv', no_upsampling: bool = True):
        super().__init__()
        if upsampler not in ('none', 'pixelshuffle'):
            raise ValueError(f"upsampler must be 'none' or 'pixelshuffle', got {upsampler!r}")
        self.window_size, self.upsampler, self.img_range = window_size, upsampler, img_range
        resolution = (img_size // patch_size, img_size // patch_size)
        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(norm_layer(embed_dim) if patch_norm else None)
        self.ape = ape
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, resolution[0] * resolution[1], embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=.02)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()  # plain numbers, also under a meta device
        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList([
            RSTB(embed_dim, resi_connection, input_resolution=resolution, depth=depth, num_heads=heads,
                 ws=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale, drop=drop_rate,
                 attn_drop=attn_drop_rate, drop_path=dpr[start:start + depth], norm_layer=norm_layer,
                 use_checkpoint=use_checkpoint)
            for depth, heads, start in zip(depths, num_heads, starts)])
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, NUM_FEAT, 3, 1, 1),
                                                  nn.LeakyReLU(inplace=True))
        self.out_dim = NUM_FEAT
        if upsampler == 'pixelshuffle':
            self.upsample = pixel_shuffle_upsampler(upscale, NUM_FEAT)
            self.conv_last = nn.Conv2d(NUM_FEAT, in_chans, 3, 1, 1)
            self.out_dim = in_chans
        self.apply(_init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        """(B, E, h, w) -> (B, E, h, w) through the residual Swin groups and the final norm."""
        x_size = (x.shape[2], x.shape[3])
        x = self.patch_embed(x)  # (B, h*w, E)
        if self.ape:
            if x.shape[1] != self.absolute_pos_embed.shape[1]:
                raise ValueError(f'ape: the position embedding is for {self.absolute_pos_embed.shape[1]} '
                                 f'tokens, the padded input has {x_size[0]} x {x_size[1]}')
            x = x + self.absolute_pos_embed
        x = self.pos_drop(x)
        for layer in self.layers:
            x = layer(x, x_size)
        return untokens(self.norm(x), x_size)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, in_chans, h, w) -> features (B, 64, h', w') or an image; see the class docstring."""
        x = self.conv_first(pad_to_window(x, self.window_size))
        x = self.conv_before_upsample(self.conv_after_body(self.forward_features(x)) + x)
        return x if self.upsampler == 'none' else self.conv_last(self.upsample(x))


def _init_weights(m: nn.Module) -> None:
    """The release's initialisation: truncated-normal Linear weights (std 0.02), zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
