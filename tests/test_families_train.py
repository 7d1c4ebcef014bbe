"""The model families beyond the paper's two encoders (RCAN, SwinIR, LTE) train on the tiny sample
config: one short epoch each, a finite loss and validation PSNR, and an epoch-last checkpoint.
SRNO, HIIF and LMF train on their own tiny configs (configs/train-sample/train_tiny-*.yaml), with
gradients reaching every parameter."""
import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import models
from datasets.seeding import seed_all
from tiny import edsr_spec, mlp_spec, rcan_spec, swinir_spec
from training import trainer
from training.config import check_train_config
from utils.checkpoints import load_checkpoint
from utils.config import load_yaml
from utils.config_sources import load_config
from script_loader import ROOT

FAMILIES = {
    'rcan-liif': {'name': 'liif', 'args': {'encoder_spec': rcan_spec(), 'imnet_spec': mlp_spec((16,))}},
    'edsr-lte': {'name': 'lte', 'args': {'encoder_spec': edsr_spec(), 'imnet_spec': mlp_spec((16,)), 'hidden_dim': 8}},
    'swinir-lte': {'name': 'lte', 'args': {'encoder_spec': swinir_spec(), 'imnet_spec': mlp_spec((16,)), 'hidden_dim': 8}},
    'swinir-metasr': {'name': 'metasr', 'args': {'encoder_spec': swinir_spec()}},
}


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """train/ (3 crops) and val/ (1 crop) of a real photo."""
    root = tmp_path_factory.mktemp('photos')
    photo = skdata.astronaut()
    for split, n in (('train', 3), ('val', 1)):
        (root / split).mkdir()
        for i in range(n):
            crop = photo[100 * i:100 * i + 70, 60 * i:60 * i + 90]
            Image.fromarray(np.ascontiguousarray(crop)).save(root / split / f'{i}.png')
    return root


@pytest.mark.parametrize('name', sorted(FAMILIES))
def test_family_trains_one_epoch(name, photos, tmp_path):
    raw = load_yaml(ROOT / 'configs/train-sample/train_tiny-liif.yaml')
    raw['train_dataset']['dataset']['args']['root_path'] = str(photos / 'train')
    raw['val_dataset']['dataset']['args']['root_path'] = str(photos / 'val')
    raw.update(model=FAMILIES[name], epoch_max=1, multi_step_lr=None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hist = trainer.train(check_train_config(raw, name), tmp_path / 'run')
    finally:
        torch.set_num_threads(threads)
    assert len(hist['train_loss']) == 1 and math.isfinite(hist['train_loss'][0])
    assert math.isfinite(hist['val_psnr'][0]) and hist['val_psnr'][0] > 5
    assert (tmp_path / 'run' / 'epoch-last.pth').is_file()


@pytest.mark.parametrize('config', ['train_tiny-srno.yaml', 'train_tiny-hiif.yaml', 'train_tiny-lmliif.yaml',
                                    'train_tiny-lmlte.yaml'])
def test_tiny_config_trains_every_parameter(config, photos, tmp_path):
    """SRNO's, HIIF's (their wrapper, the warm-up + cosine schedule) and LMF's tiny configs train: finite
    loss and validation PSNR, and after 2 epochs every trainable parameter has moved from the run's
    initial weights (the gradient reached it)."""
    raw = load_config(ROOT / 'configs/train-sample' / config)  # _base_ resolved
    raw['train_dataset']['dataset']['args']['root_path'] = str(photos / 'train')
    raw['val_dataset']['dataset']['args']['root_path'] = str(photos / 'val')
    cfg = check_train_config(raw, config)
    seed_all(cfg['seed'])
    initial = models.make(cfg['model']).state_dict()  # what the trainer builds from the same seed
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        hist = trainer.train(cfg, tmp_path / 'run')
    finally:
        torch.set_num_threads(threads)
    assert all(math.isfinite(v) for v in hist['train_loss'] + hist['val_psnr'])
    model = models.make(cfg['model'])
    trained = load_checkpoint(tmp_path / 'run' / 'epoch-last.pth')['model']['sd']
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(trained[name], initial[name]), f'{name} did not move'
