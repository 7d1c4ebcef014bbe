"""Every registered model builds, runs forward and backward, gives every trainable
parameter a finite gradient, and documents its config args; the registry refuses what it should."""
import inspect
import re

import pytest
import torch

import models
from models.registry import MODELS
from utils.errors import UserError
from utils.registry import Registry
from tiny import (aliif_spec, edsr_spec, hiif_spec, liif_spec, lmf_spec, lmmlp_spec, metasr_spec, mlp_spec, rcan_spec,
                  srno_spec, swinir_spec)

TINY_EDSR = edsr_spec()
TINY_MLP = mlp_spec(hidden=(16,))
TINY_SWINIR = swinir_spec()
# One tiny spec per registered name (a list: several variants of one name are welcome).
TINY = {
    'mlp': [mlp_spec(hidden=(8, 8), in_dim=5)],
    'edsr-baseline': [TINY_EDSR, edsr_spec(scale=2), edsr_spec(scale=3), edsr_spec(scale=4)],
    'edsr': [{'name': 'edsr', 'args': {'n_resblocks': 2, 'n_feats': 8, 'no_upsampling': True}}],
    'rdn': [{'name': 'rdn', 'args': {'G0': 8, 'RDNconfig': 'A', 'no_upsampling': True}},
            {'name': 'rdn', 'args': {'G0': 8, 'RDNconfig': 'A', 'scale': 4}}],
    'liif': [liif_spec(hidden=(16,)),
             liif_spec(hidden=(16,), local_ensemble=False, feat_unfold=False, cell_decode=False)],
    'rcan': [rcan_spec(), rcan_spec(scale=2)],
    # Window 4 on the 6 x 7 input: padded to 8 x 8, the stored masks' size, and (img_size 12) another size.
    'swinir': [TINY_SWINIR,
               swinir_spec(img_size=12, upsampler='pixelshuffle', depths=[1, 2], num_heads=[2, 3],
                           drop_path_rate=0.0),
               swinir_spec(embed_dim=8, ape=True, resi_connection='3conv', use_checkpoint=True)],
    'lte': [{'name': 'lte', 'args': {'encoder_spec': TINY_EDSR, 'imnet_spec': TINY_MLP, 'hidden_dim': 8}},
            {'name': 'lte', 'args': {'encoder_spec': TINY_SWINIR, 'imnet_spec': TINY_MLP, 'hidden_dim': 8}}],
    'metasr': [metasr_spec()],
    'a-liif': [aliif_spec()],
    'lmmlp': [{'name': 'lmmlp', 'args': {'in_dim': 5, **lmmlp_spec()['args']}},
              {'name': 'lmmlp', 'args': {'in_dim': 5, **lmmlp_spec(mod_scale=False)['args']}}],
    'lmliif': [lmf_spec('lmliif'), lmf_spec('lmliif', mod_input=False, feat_unfold=False),
               lmf_spec('lmliif', local_ensemble=False, cell_decode=False, mlp_args={'mod_shift': False}),
               lmf_spec('lmliif', encoder_spec=swinir_spec())],
    'lmlte': [lmf_spec('lmlte'), lmf_spec('lmlte', mod_input=False), lmf_spec('lmlte', encoder_spec=TINY_SWINIR)],
    'sronet': [srno_spec()],
    'hiif': [hiif_spec(), hiif_spec(encoder=TINY_SWINIR)],
}


def test_every_registered_model_has_a_tiny_spec():
    assert set(MODELS.names()) <= set(TINY), f'add a tiny spec for {set(MODELS.names()) - set(TINY)}'


def run(model, spec):
    """Forward a tiny input through `model`; returns the output."""
    if spec['name'] == 'mlp':
        return model(torch.randn(2, 4, 5))
    if spec['name'] == 'lmmlp':
        return model(torch.randn(2, 4, 5), torch.randn(2, 4, model.mod_dim))
    inp = torch.randn(2, 3, 6, 7)
    if hasattr(model, 'query_rgb'):
        coord = torch.rand(2, 20, 2) * 2 - 1
        cell = torch.full((2, 20, 2), 2 / 17)
        return model(inp, coord, cell)
    return model(inp)


@pytest.mark.parametrize('spec', [s for specs in TINY.values() for s in specs],
                         ids=lambda s: s['name'] + '-' + '-'.join(f'{k}={v}' for k, v in s['args'].items()
                                                                  if not isinstance(v, dict))[:40])
def test_forward_backward_gradients(spec):
    model = models.make(spec)
    out = run(model, spec)
    assert torch.isfinite(out).all()
    if getattr(model, 'out_dim', None) == 3 and spec['name'] in ('edsr-baseline', 'rdn', 'rcan'):
        scale = spec['args']['scale']
        assert out.shape == (2, 3, 6 * scale, 7 * scale)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f'{name} got no gradient'
            assert torch.isfinite(p.grad).all(), f'{name} has a non-finite gradient'
            assert p.grad.abs().sum() > 0, f'{name} got an all-zero gradient'


def test_encoder_out_dim():
    for spec, dim in [(TINY_EDSR, 8), (TINY['rdn'][0], 8), (TINY['edsr-baseline'][1], 3)]:
        enc = models.make(spec)
        assert enc.out_dim == dim
        assert enc(torch.randn(1, 3, 5, 5)).shape[1] == dim


def test_make_merges_args_into_a_copy():
    spec = mlp_spec(hidden=(8,), in_dim=5)
    model = models.make(spec, args={'in_dim': 7})
    assert model.in_dim == 7 and spec['args']['in_dim'] == 5


def test_unknown_model_lists_known_names():
    with pytest.raises(UserError, match=r"unknown model 'nope'; known: .*edsr-baseline.*liif"):
        models.make({'name': 'nope', 'args': {}})


def test_double_registration_refused():
    reg = Registry('thing')
    reg.register('a')(int)
    with pytest.raises(ValueError, match='registered twice'):
        reg.register('a')(float)
    with pytest.raises(ValueError, match='registered twice'):
        models.register('liif')(object)


def test_re_running_a_registration_replaces_it():
    """A notebook cell defining and registering a model, run twice, registers the new class (same
    module and name); another class under that name is still refused."""
    reg = Registry('thing')
    code = "@reg.register('enc')\nclass MyEncoder:\n    pass\n"
    first, second = {'reg': reg, '__name__': 'notebook'}, {'reg': reg, '__name__': 'notebook'}
    exec(code, first)
    exec(code, second)
    assert reg.get('enc') is second['MyEncoder'] is not first['MyEncoder']
    with pytest.raises(ValueError, match=r"'enc' is registered twice \(notebook.MyEncoder and notebook.Other\)"):
        exec("@reg.register('enc')\nclass Other:\n    pass\n", {'reg': reg, '__name__': 'notebook'})


@pytest.mark.parametrize('spec', [TINY_EDSR, edsr_spec(scale=2), rcan_spec(), rcan_spec(scale=3)],
                         ids=['edsr', 'edsr-x2', 'rcan', 'rcan-x3'])
def test_mean_shift_not_applied(spec):
    """Released EDSR and RCAN checkpoints carry sub_mean/add_mean, but forward never applies them,
    with or without the upsampling tail (the rcan-upsample vector, made with the tail, matches only
    this way); they are frozen."""
    enc = models.make(spec)
    x = torch.randn(1, 3, 5, 6)
    before = enc(x)
    with torch.no_grad():
        enc.sub_mean.bias.fill_(10.0)
        enc.add_mean.bias.fill_(-10.0)
    assert torch.equal(enc(x), before)
    assert before.shape[1] == enc.out_dim == (3 if 'scale' in spec['args'] else 8)
    assert not any(p.requires_grad for p in enc.sub_mean.parameters())


@pytest.mark.parametrize('name', MODELS.names())
def test_every_registered_model_documents_its_config_args(name):
    """The class or factory registered under `name` has its own docstring, naming every argument
    a config may pass (the parameters of its signature)."""
    factory = MODELS.get(name)
    doc = factory.__doc__ or ''  # the object's own, not one inherited from nn.Module
    assert doc.strip(), f'{name}: no docstring'
    params = [p for p in inspect.signature(factory).parameters if p != 'self']
    assert params, name
    missing = [p for p in params if not re.search(rf'\b{re.escape(p)}\b', doc)]
    assert not missing, f'{name}: docstring does not name {missing}'
