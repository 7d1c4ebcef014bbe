"""The pieces of exact resume and sharded data: random states and scheduler state survive a
weights_only round trip; loaders follow (seed, rank, epoch); the metric reshapes are exact."""
import io
import random

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from inference.norm import DataNorm
from training.data import EpochLoaders
from training.distributed import DistEnv
from training.run_folder import check_run_folder
from training.state import derive_seed, forked_rng, load_scheduler_state, rng_state, scheduler_state, set_rng_state
from utils.errors import UserError


def weights_only_round_trip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def draws() -> tuple:
    return random.random(), float(np.random.rand()), np.random.randn(), torch.rand(3).tolist()


def test_rng_state_round_trip_repeats_every_generator():
    np.random.randn()  # leave a cached gaussian in numpy's state
    state = weights_only_round_trip(rng_state())
    expected = draws()
    draws()
    set_rng_state(state)
    assert draws() == expected


def test_forked_rng_is_repeatable_and_leaves_the_stream_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    with forked_rng(123):
        inside = draws()
    with forked_rng(123):
        assert draws() == inside
    assert torch.equal(torch.rand(2), expected)


def test_derive_seed_is_stable_and_separates_keys():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    seeds = {derive_seed(s, r, e) for s in range(2) for r in range(3) for e in range(4)}
    assert len(seeds) == 24 and all(0 <= s < 2 ** 63 for s in seeds)


def make_scheduler():
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.5)


def test_scheduler_state_restores_without_replaying():
    opt, sched = make_scheduler()
    for _ in range(3):
        opt.step()
        sched.step()
    sd = weights_only_round_trip(scheduler_state(sched))
    opt2, sched2 = make_scheduler()
    opt2.load_state_dict(opt.state_dict())
    load_scheduler_state(sched2, sd)
    lrs = []
    for s, o in ((sched, opt), (sched2, opt2)):
        seq = [o.param_groups[0]['lr']]
        for _ in range(3):
            o.step()
            s.step()
            seq.append(o.param_groups[0]['lr'])
        lrs.append(seq)
    assert lrs[0] == lrs[1] == [0.5, 0.25, 0.25, 0.25]  # halved once more at 4, not twice


def test_data_norm_round_trip_per_channel():
    norm = DataNorm.from_config({'inp': {'sub': [0.1, 0.2, 0.3], 'div': [2.0]},
                                 'gt': {'sub': [0.4488, 0.4371, 0.4040], 'div': [1.0]}})
    x = torch.rand(2, 3, 4, 5)
    assert torch.allclose(norm.inp(x)[:, 1], (x[:, 1] - 0.2) / 2)
    y = torch.rand(2, 7, 3)
    assert torch.allclose(norm.pred_to_rgb(norm.gt(y)), y, atol=1e-6)
    assert norm.pred_to_rgb(torch.full((1, 1, 3), 9.0)).max() == 1  # clamped
    assert DataNorm.from_config(None) == DataNorm()


class Items(Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {'i': torch.tensor(i), 'r': torch.rand(())}


def epoch_items(loaders: EpochLoaders, epoch: int) -> tuple[list, list]:
    out = [(b['i'].tolist(), b['r'].tolist()) for b in loaders(epoch)]
    return [i for b in out for i in b[0]], [r for b in out for r in b[1]]


@pytest.mark.parametrize('workers', [0, 1])
def test_train_shards_follow_seed_and_epoch(workers):
    ranks = [EpochLoaders(Items(10), 2, DistEnv(r, 2), seed=3, num_workers=workers, pin_memory=False, train=True)
             for r in range(2)]
    e1 = [epoch_items(ld, 1)[0] for ld in ranks]
    assert sorted(e1[0] + e1[1]) == list(range(10))  # disjoint, complete
    assert e1 == [epoch_items(ld, 1)[0] for ld in ranks]  # repeatable
    assert e1 != [epoch_items(ld, 2)[0] for ld in ranks]  # reshuffled per epoch
    if workers:  # worker draws come from (seed, rank, epoch), not the main process
        torch.manual_seed(0)
        a = epoch_items(ranks[0], 1)[1]
        torch.manual_seed(1)
        assert epoch_items(ranks[0], 1)[1] == a


def test_val_shards_cover_each_item_once():
    ranks = [EpochLoaders(Items(7), 3, DistEnv(r, 3), seed=0, num_workers=0, pin_memory=False, train=False)
             for r in range(3)]
    items = [epoch_items(ld, 1)[0] for ld in ranks]
    assert sorted(sum(items, [])) == list(range(7)) and items[0] == [0, 3, 6]


def test_run_folder_rule(tmp_path):
    run = tmp_path / 'run'
    assert check_run_folder(run, None, None, None, overwrite=False) is False  # new
    run.mkdir()
    assert check_run_folder(run, None, None, None, overwrite=False) is False  # empty
    (run / 'log.txt').write_text('x')
    with pytest.raises(UserError, match='already holds a run'):
        check_run_folder(run, None, None, None, overwrite=False)
    assert check_run_folder(run, None, None, None, overwrite=True) is True
    last = run / 'epoch-last.pth'
    assert check_run_folder(run, last, 5, 5, overwrite=False) is False  # continue in place
    with pytest.raises(UserError, match='epoch-last.pth is at epoch 8'):
        check_run_folder(run, run / 'epoch-5.pth', 5, 8, overwrite=False)
    with pytest.raises(UserError, match='already holds a run'):
        check_run_folder(run, tmp_path / 'other' / 'epoch-last.pth', 5, None, overwrite=False)
