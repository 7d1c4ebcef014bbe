"""Tiny model specs and builders shared by the tests (a few features, one or two blocks), so each
test file does not write its own copy. Sizes are arguments: each test keeps the sizes it uses."""
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn as nn

import models
from utils.checkpoints import save_checkpoint

Spec = dict[str, Any]


def edsr_spec(n_feats: int = 8, n_resblocks: int = 1, scale: Optional[int] = None) -> Spec:
    """A tiny EDSR-baseline: a feature encoder (no_upsampling), or with `scale` an upsampler to RGB."""
    tail = {'no_upsampling': True} if scale is None else {'scale': scale}
    return {'name': 'edsr-baseline', 'args': {'n_resblocks': n_resblocks, 'n_feats': n_feats, **tail}}


def rcan_spec(scale: Optional[int] = None) -> Spec:
    """A tiny RCAN (one group of one block, 8 features): an encoder, or with `scale` an upsampler."""
    tail = {'no_upsampling': True} if scale is None else {'scale': scale}
    return {'name': 'rcan', 'args': {'n_resgroups': 1, 'n_resblocks': 1, 'n_feats': 8, 'reduction': 4, **tail}}


def swinir_spec(**args: Any) -> Spec:
    """A tiny SwinIR (img_size 8, window 4, 6 channels, one stage of two blocks); `args` override."""
    base = {'img_size': 8, 'embed_dim': 6, 'depths': [2], 'num_heads': [2], 'window_size': 4}
    return {'name': 'swinir', 'args': {**base, **args}}


def mlp_spec(hidden: Sequence[int] = (16, 16), out_dim: Optional[int] = 3, in_dim: Optional[int] = None) -> Spec:
    """A small MLP; in_dim None lets the owning model set it, out_dim None too (A-LIIF's expansion)."""
    args: dict[str, Any] = {} if in_dim is None else {'in_dim': in_dim}
    if out_dim is not None:
        args['out_dim'] = out_dim
    args['hidden_list'] = list(hidden)
    return {'name': 'mlp', 'args': args}


def liif_spec(n_feats: int = 8, hidden: Optional[Sequence[int]] = (16, 16), n_resblocks: int = 1,
              **liif_args: Any) -> Spec:
    """A LIIF over a tiny EDSR-baseline; hidden None: no decoder (it returns the features)."""
    imnet = None if hidden is None else mlp_spec(hidden)
    return {'name': 'liif', 'args': {'encoder_spec': edsr_spec(n_feats, n_resblocks), 'imnet_spec': imnet,
                                     **liif_args}}


def metasr_spec(n_feats: int = 8) -> Spec:
    """A Meta-SR over a tiny EDSR-baseline."""
    return {'name': 'metasr', 'args': {'encoder_spec': edsr_spec(n_feats)}}


def aliif_spec(n_feats: int = 8, basis_num: int = 3, basis_hidden: Sequence[int] = (4, 4),
               expansion: Sequence[int] = (8,), **aliif_args: Any) -> Spec:
    """An A-LIIF over a tiny EDSR-baseline, with `basis_num` bases and a small expansion MLP."""
    return {'name': 'a-liif', 'args': {'encoder_spec': edsr_spec(n_feats), 'basis_num': basis_num,
                                       'basis_hidden': list(basis_hidden),
                                       'expansion_spec': mlp_spec(expansion, out_dim=None), **aliif_args}}


def lmmlp_spec(hidden_dim: int = 8, hidden_depth: int = 2, **args: Any) -> Spec:
    """LMF's render MLP (out_dim 3); the owning model sets in_dim."""
    return {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': hidden_dim, 'hidden_depth': hidden_depth, **args}}


def lmf_spec(name: str = 'lmliif', n_feats: int = 8, hidden_dim: int = 8, hidden_depth: int = 2,
             hyper: Sequence[int] = (16,), mlp_args: Optional[dict] = None, **model_args: Any) -> Spec:
    """An LM-LIIF (`name` 'lmliif') or LM-LTE ('lmlte', hidden_dim 8 unless given) over a tiny
    EDSR-baseline, with the release configs' mod_input true unless given."""
    args = {'encoder_spec': edsr_spec(n_feats), 'imnet_spec': lmmlp_spec(hidden_dim, hidden_depth, **(mlp_args or {})),
            'hypernet_spec': mlp_spec(hyper, out_dim=None), 'mod_input': True, **model_args}
    if name == 'lmlte':
        args.setdefault('hidden_dim', 8)
    return {'name': name, 'args': args}


def srno_spec(width: int = 16, blocks: int = 2) -> Spec:
    """An SRNO over a one-block EDSR-baseline of 64 features (SRNO's lifting layer takes 64)."""
    return {'name': 'sronet', 'args': {'encoder_spec': edsr_spec(n_feats=64), 'width': width, 'blocks': blocks}}


def hiif_spec(hidden_dim: int = 16, blocks: int = 2, encoder: Optional[Spec] = None) -> Spec:
    """A HIIF over a tiny EDSR-baseline (or `encoder`)."""
    return {'name': 'hiif', 'args': {'encoder_spec': encoder or edsr_spec(), 'hidden_dim': hidden_dim,
                                     'blocks': blocks}}


def tiny_liif(n_feats: int = 8, hidden: Optional[Sequence[int]] = (16, 16), n_resblocks: int = 1,
              **liif_args: Any) -> nn.Module:
    """The model of `liif_spec(...)`, built and in eval mode."""
    return models.make(liif_spec(n_feats, hidden, n_resblocks, **liif_args)).eval()


def save_release(path: Path, spec: Spec, sd: dict[str, torch.Tensor], **extra: Any) -> Path:
    """Save `{'model': {**spec, 'sd': sd}, **extra}` at `path` (the released checkpoint format)."""
    save_checkpoint({'model': {**spec, 'sd': sd}, **extra}, path)
    return path


def tiny_checkpoint(path: Path, spec: Spec, **extra: Any) -> nn.Module:
    """Build `spec`, save it at `path` with `save_release`, and return the model in eval mode."""
    model = models.make(spec)
    save_release(path, spec, model.state_dict(), **extra)
    return model.eval()
