"""scripts/export_model.py: a training checkpoint stripped to the released model-only format."""
from pathlib import Path

import pytest
import torch

import models
from models.loading import load_model
from utils.checkpoints import load_checkpoint, save_checkpoint
from utils.errors import UserError
from script_loader import load_script

TINY_SPEC = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 4, 'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [8]}}}}


def load_export():
    return load_script('scripts/export_model.py', 'export_model').export


def test_export_keeps_only_the_model(tmp_path):
    model = models.make(TINY_SPEC)
    opt = torch.optim.Adam(model.parameters())
    src, dst = tmp_path / 'epoch-last.pth', tmp_path / 'model.pth'
    save_checkpoint({'model': {**TINY_SPEC, 'sd': model.state_dict()},
                     'optimizer': {'name': 'adam', 'args': {}, 'sd': opt.state_dict()},
                     'epoch': 7, 'rng': [torch.get_rng_state()], 'best_val': 30.0}, src)
    load_export()(str(src), str(dst))
    out = load_checkpoint(dst)
    assert set(out) == {'model', 'epoch'} and out['epoch'] == 7
    inp, coord, cell = torch.randn(1, 3, 5, 6), torch.rand(1, 9, 2) * 2 - 1, torch.full((1, 9, 2), 0.1)
    with torch.no_grad():
        assert torch.equal(load_model(dst)(inp, coord, cell), model.eval()(inp, coord, cell))
    with pytest.raises(UserError, match='is the source checkpoint itself'):
        load_export()(str(dst), str(dst))
