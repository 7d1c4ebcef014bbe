"""A-LIIF (docs/design.md §2.3): layer-wise mixing of basis MLPs equals an explicit per-query network."""
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skdata

import models
from models.loading import load_model
from training import trainer
from training.config import check_train_config
from utils.checkpoints import load_checkpoint
from utils.config_sources import load_config
from tiny import aliif_spec, tiny_checkpoint


def tiny(**switches: bool) -> torch.nn.Module:
    """This file's tiny A-LIIF: 4 features, 3 bases of hidden widths 5 and 6."""
    return models.make(aliif_spec(n_feats=4, basis_hidden=(5, 6), **switches))


def explicit_decoder(dec, x: torch.Tensor) -> torch.Tensor:
    """Per query n: W_l = Σ_k c_nk W_lk, b_l = Σ_k c_nk b_lk built as a matrix (tests only)."""
    coef = dec.coefficients(x)  # (N, K)
    outs = []
    for n in range(x.shape[0]):
        h = x[n].double()
        c = coef[n].double()
        layers = list(zip(dec.basis_weight, dec.basis_bias))
        for l, (w, b) in enumerate(layers):
            w_n = torch.einsum('k,koi->oi', c, w.double())
            b_n = c @ b.double()
            h = w_n @ h + b_n
            if l < len(layers) - 1:
                h = torch.relu(h)
        outs.append(h)
    return torch.stack(outs)


def test_mixing_equals_explicit_weight_matrix():
    model = tiny()
    dec = model.imnet
    x = torch.randn(7, dec.in_dim)
    torch.testing.assert_close(dec(x).double(), explicit_decoder(dec, x), atol=1e-5, rtol=1e-5)


def test_coefficients_unit_norm_signs_kept():
    dec = tiny().imnet
    c = dec.coefficients(torch.randn(50, dec.in_dim))
    torch.testing.assert_close(c.norm(dim=-1), torch.ones(50))
    assert (c < 0).any() and (c > 0).any()  # L2 normalisation, not a softmax


def test_decoder_width_follows_switches():
    assert tiny().imnet.in_dim == 4 * 9 + 4
    assert tiny(feat_unfold=False, cell_decode=False).imnet.in_dim == 4 + 2


def test_paper_size_decoder_parameters():
    model = models.make({'name': 'a-liif', 'args': {'encoder_spec': {
        'name': 'edsr-baseline', 'args': {'no_upsampling': True}}}})
    # expansion 580-256-256-256-256-10 (348,682) + 10 bases 580-16-16-16-16-3 (10 x 10,163)
    assert sum(p.numel() for p in model.imnet.parameters()) == 450_312


def test_checkpoint_round_trip(tmp_path):
    model = tiny_checkpoint(tmp_path / 'a.pth', aliif_spec(n_feats=4, basis_hidden=(5, 6)), epoch=1)
    inp, coord, cell = torch.randn(1, 3, 6, 5), torch.rand(1, 30, 2) * 2 - 1, torch.full((1, 30, 2), 0.1)
    with torch.no_grad():
        assert torch.equal(model(inp, coord, cell), load_model(tmp_path / 'a.pth')(inp, coord, cell))


def test_sample_config_trains_two_epochs(tmp_path):
    """configs/train-sample/train_tiny-a-liif.yaml, pointed at a small folder of real photo crops,
    trains two epochs and leaves a checkpoint that loads as an A-LIIF."""
    photo = skdata.astronaut()  # (512, 512, 3)
    for split, n in (('train', 3), ('val', 1)):
        (tmp_path / split).mkdir()
        for i in range(n):
            crop = photo[100 * i:100 * i + 80, 60 * i:60 * i + 96]
            Image.fromarray(np.ascontiguousarray(crop)).save(tmp_path / split / f'{i}.png')
    raw = load_config(Path(__file__).parents[1] / 'configs/train-sample/train_tiny-a-liif.yaml')
    raw['train_dataset']['dataset']['args']['root_path'] = str(tmp_path / 'train')
    raw['val_dataset']['dataset']['args']['root_path'] = str(tmp_path / 'val')
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hist = trainer.train(check_train_config(raw, 'tiny-a-liif'), tmp_path / 'run')
    finally:
        torch.set_num_threads(threads)
    assert len(hist['train_loss']) == 2 and all(math.isfinite(v) for v in hist['train_loss'])
    ckpt = load_checkpoint(tmp_path / 'run' / 'epoch-last.pth')
    assert ckpt['epoch'] == 2 and ckpt['model']['name'] == 'a-liif'
    model = load_model(tmp_path / 'run' / 'epoch-last.pth')
    assert model.imnet.basis_num == 4
