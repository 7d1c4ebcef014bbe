"""The warm-up + cosine schedule (training/schedule.py): the rates of the SRNO and HIIF recipes, as
their authors' schedulers (GradualWarmupScheduler + CosineAnnealingLR; timm's CosineLRScheduler)
give them epoch by epoch, and its config checks."""
import copy

import pytest
import torch

from training.config import check_train_config
from training.schedule import MultiStepLR, WarmupCosineLR, build_scheduler, warmup_cosine
from utils.config import load_yaml
from utils.errors import UserError
from script_loader import ROOT

# Epoch -> rate, from the authors' schedulers (SRNO: lr 4e-5 warmed x10 over 50 epochs, then cosine
# over 1000 to 0; HIIF: 2e-6 to 4e-4 over 50, cosine over all 1050 epochs down to 2e-6).
SRNO = {1: 4e-5, 2: 4.72e-5, 50: 3.928e-4, 51: 4e-4, 300: 3.42e-4, 550: 2.01e-4, 800: 5.9e-5, 1000: 2.6e-6}
HIIF = {1: 2e-6, 50: 3.92e-4, 51: 3.98e-4, 300: 3.26e-4, 525: 2.02e-4, 800: 5.55e-5, 1000: 4.3e-6, 1050: 2e-6}


def rates(epoch_max: int, lr: float, **args) -> dict:
    """The rate of each epoch as training sees it: read before the epoch, stepped after."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    sched = WarmupCosineLR(opt, epoch_max, **args)
    out = {}
    for epoch in range(1, epoch_max + 1):
        out[epoch] = opt.param_groups[0]['lr']
        opt.step()
        sched.step()
    return out


def test_srno_and_hiif_recipes():
    srno = rates(1050, 4e-4, warmup_epochs=50, warmup_start_lr=4e-5, min_lr=0.0, warmup_prefix=True)
    hiif = rates(1050, 4e-4, warmup_epochs=50, warmup_start_lr=2e-6, min_lr=2e-6, warmup_prefix=False)
    for got, want in ((srno, SRNO), (hiif, HIIF)):
        for epoch, lr in want.items():
            assert got[epoch] == pytest.approx(lr, rel=0.02), epoch  # the rates are given to 2-3 digits
    assert srno[1050] < 1e-8 and min(hiif.values()) == pytest.approx(2e-6)
    assert warmup_cosine(2000, 4e-4, 1050, 50, 4e-5, 0.0, True) == 0.0  # past epoch_max it stays at min_lr


def test_configs_build_the_shipped_recipes():
    for name, cls in (('train_edsr-baseline-srno.yaml', WarmupCosineLR), ('train_edsr-baseline-hiif.yaml', WarmupCosineLR),
                      ('train_edsr-baseline-liif.yaml', MultiStepLR)):
        path = ROOT / 'configs/train-div2k' / name
        cfg = check_train_config(load_yaml(path), str(path))
        opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], **cfg['optimizer']['args'])
        assert type(build_scheduler(cfg, opt)) is cls


def base_config() -> dict:
    cfg = copy.deepcopy(load_yaml(ROOT / 'configs/train-div2k/train_edsr-baseline-hiif.yaml'))
    return cfg


@pytest.mark.parametrize('change, message', [
    ({'warmup_epochs': -1}, 'warmup_cosine_lr.warmup_epochs: expected an integer >= 0'),
    ({'warmup_start_lr': '2e-6'}, "warmup_cosine_lr.warmup_start_lr: expected a number, got the string"),
    ({'min_lr': -1.0e-6}, 'warmup_cosine_lr.min_lr: expected a rate >= 0'),
    ({'warmup_prefix': 'yes'}, 'warmup_cosine_lr.warmup_prefix: expected true or false'),
    ({'warmup': 5}, 'warmup_cosine_lr.warmup: unknown key'),
])
def test_bad_values_are_one_line(change, message):
    cfg = base_config()
    cfg['warmup_cosine_lr'].update(change)
    with pytest.raises(UserError, match=f'^x.yaml: {message}'):
        check_train_config(cfg, 'x.yaml')


def test_one_schedule_only():
    cfg = base_config()
    cfg['multi_step_lr'] = {'milestones': [10], 'gamma': 0.5}
    with pytest.raises(UserError, match='give one schedule'):
        check_train_config(cfg, 'x.yaml')
