"""scripts/export_model.py: a training checkpoint stripped to the released model-only format."""
from pathlib import Path

import pytest
import torch

import models
from inference.norm import DataNorm
from models.loading import load_model
from utils.checkpoints import load_checkpoint
from utils.errors import UserError
from script_loader import load_script
from tiny import liif_spec, save_release

TINY_SPEC = liif_spec(n_feats=4, hidden=(8,))


def load_export():
    return load_script('scripts/export_model.py', 'export_model').export


def test_export_keeps_only_the_model(tmp_path):
    model = models.make(TINY_SPEC)
    opt = torch.optim.Adam(model.parameters())
    src, dst = tmp_path / 'epoch-last.pth', tmp_path / 'model.pth'
    save_release(src, TINY_SPEC, model.state_dict(), optimizer={'name': 'adam', 'args': {}, 'sd': opt.state_dict()},
                 epoch=7, rng=[torch.get_rng_state()], best_val=30.0)
    load_export()(str(src), str(dst))
    out = load_checkpoint(dst)
    assert set(out) == {'model', 'epoch', 'data_norm'} and out['epoch'] == 7
    # A release-format source has no normalisation of its own: the export names the paper's.
    assert DataNorm.from_config(out['data_norm']) == DataNorm((0.5,), (0.5,), (0.5,), (0.5,))
    inp, coord, cell = torch.randn(1, 3, 5, 6), torch.rand(1, 9, 2) * 2 - 1, torch.full((1, 9, 2), 0.1)
    with torch.no_grad():
        assert torch.equal(load_model(dst)(inp, coord, cell), model.eval()(inp, coord, cell))
    with pytest.raises(UserError, match='is the source checkpoint itself'):
        load_export()(str(dst), str(dst))


def test_export_keeps_the_normalisation_and_config(tmp_path):
    """A model trained with another data_norm keeps it through the export, so demo.py and test.py
    use it (previously the export dropped the config and demo.py shifted the colours)."""
    model = models.make(TINY_SPEC)
    mmedit = {'inp': {'sub': [0.4488, 0.4371, 0.404], 'div': [1.0]}, 'gt': {'sub': [0.4488, 0.4371, 0.404], 'div': [1.0]}}
    src, dst = tmp_path / 'epoch-last.pth', tmp_path / 'model.pth'
    save_release(src, TINY_SPEC, model.state_dict(), optimizer={'name': 'adam', 'args': {}, 'sd': {}}, epoch=3,
                 config={'data_norm': mmedit, 'seed': 0}, data_norm=mmedit)
    load_export()(str(src), str(dst))
    out = load_checkpoint(dst)
    assert DataNorm.from_checkpoint(out) == DataNorm.from_config(mmedit)
    assert out['config'] == {'data_norm': mmedit, 'seed': 0}
