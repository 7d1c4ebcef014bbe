"""SR wrappers (docs/design.md §3): shapes, size rules, cells, sampling, augmentation, caches, seeding."""
import itertools
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import datasets
from datasets.image_store import to_tensor
from datasets.resize import resize_fn
from datasets.wrappers import augment as apply_flips
from utils.errors import UserError

ALL_FLIPS = list(itertools.product([False, True], repeat=3))


def save(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """Two real photos from scikit-image (coffee 400x600, astronaut 512x512) in a folder."""
    from skimage import data
    root = tmp_path_factory.mktemp('photos') / 'train_HR'
    save(root / 'astronaut.png', data.astronaut())
    save(root / 'coffee.png', data.coffee())
    return str(root)


def random_folder(tmp_path, shape, name='hr', count=1, seed=0):
    rng = np.random.default_rng(seed)
    arrs = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]
    for i, a in enumerate(arrs):
        save(tmp_path / name / f'{i:02d}.png', a)
    return str(tmp_path / name), [to_tensor(a) for a in arrs]


def wrap(dataset, name, **args):
    return datasets.make({'name': name, 'args': args}, args={'dataset': dataset})


def folder(root, **args):
    return datasets.make({'name': 'image-folder', 'args': {'root_path': root, **args}})


def hr_of(sample):
    """Rebuild the HR image (3, H, W) from an unsampled item, H and W read off the cell."""
    h, w = (round(2 / c) for c in sample['cell'][0].tolist())
    assert sample['gt'].shape[0] == h * w
    return sample['gt'].view(h, w, 3).permute(2, 0, 1)


def test_downsampled_training_items(photos):
    w = wrap(folder(photos, repeat=3), 'sr-implicit-downsampled', inp_size=48, scale_max=4,
             augment=True, sample_q=2304)
    assert len(w) == 6
    datasets.seed_all(0)
    for i in range(6):
        s = w[i]
        assert set(s) == {'inp', 'coord', 'cell', 'gt'}
        assert all(v.dtype == torch.float32 for v in s.values())
        assert s['inp'].shape == (3, 48, 48) and s['coord'].shape == (2304, 2)
        assert s['cell'].shape == (2304, 2) and s['gt'].shape == (2304, 3)
        for key in ('inp', 'gt'):
            assert 0 <= s[key].min() and s[key].max() <= 1
        assert s['coord'].abs().max() < 1
        h_hr = 2 / s['cell'][0, 0].item()
        assert abs(h_hr - round(h_hr)) < 1e-4 and 48 <= round(h_hr) <= 192
        assert torch.equal(s['cell'], s['cell'][:1].expand(2304, 2))
        assert len(torch.unique(s['coord'], dim=0)) == 2304  # drawn without replacement


def test_downsampled_crop_side_is_round_inp_size_times_s(tmp_path):
    root, (img,) = random_folder(tmp_path, (40, 50, 3))
    s = wrap(folder(root), 'sr-implicit-downsampled', inp_size=10, scale_min=2.5)[0]
    assert s['inp'].shape == (3, 10, 10)
    assert torch.allclose(s['cell'], torch.full((625, 2), 2 / 25))
    hr = hr_of(s)
    offsets = [(x, y) for x in range(16) for y in range(26) if torch.equal(img[:, x:x + 25, y:y + 25], hr)]
    assert len(offsets) == 1
    assert torch.equal(s['inp'], resize_fn(hr, 10))


@pytest.mark.parametrize('hw, scale, lr', [((100, 77), 3, (33, 25)), ((100, 77), 2.5, (40, 30)),
                                           ((90, 45), 1.8, (50, 25))])
def test_downsampled_whole_image_size_rule(tmp_path, hw, scale, lr):
    root, (img,) = random_folder(tmp_path, (*hw, 3))
    s = wrap(folder(root), 'sr-implicit-downsampled', scale_min=scale)[0]
    hr_size = (round(lr[0] * scale), round(lr[1] * scale))
    assert s['inp'].shape == (3, *lr)
    assert torch.allclose(s['cell'][0], torch.tensor([2 / hr_size[0], 2 / hr_size[1]]))
    crop = img[:, :hr_size[0], :hr_size[1]]
    assert torch.equal(hr_of(s), crop)
    assert torch.equal(s['inp'], resize_fn(crop, lr))


def test_sample_q_picks_distinct_pixels_with_their_colours(tmp_path):
    root, (img,) = random_folder(tmp_path, (30, 41, 3))
    s = wrap(folder(root), 'sr-implicit-downsampled', sample_q=500)[0]
    rows = torch.round(((s['coord'][:, 0] + 1) * 30 - 1) / 2).long()
    cols = torch.round(((s['coord'][:, 1] + 1) * 41 - 1) / 2).long()
    assert len(set(zip(rows.tolist(), cols.tolist()))) == 500
    assert torch.equal(s['gt'], img[:, rows, cols].T)
    assert torch.allclose(s['cell'], torch.tensor([2 / 30, 2 / 41]).expand(500, 2))


def flips_applied(plain: dict, aug: dict) -> list:
    """The flip combinations that turn the plain item's LR and HR into the augmented item's."""
    return [f for f in ALL_FLIPS
            if torch.equal(apply_flips(plain['inp'], f), aug['inp'])
            and torch.equal(apply_flips(hr_of(plain), f), hr_of(aug))]


def test_downsampled_augmentation_is_identical_on_lr_and_hr(tmp_path):
    root, _ = random_folder(tmp_path, (40, 40, 3))
    args = dict(inp_size=12, scale_min=2, scale_max=3)
    plain_w = wrap(folder(root), 'sr-implicit-downsampled', **args)
    aug_w = wrap(folder(root), 'sr-implicit-downsampled', augment=True, **args)
    seen = set()
    for seed in range(80):
        datasets.seed_all(seed)
        plain = plain_w[0]
        datasets.seed_all(seed)
        aug = aug_w[0]
        found = flips_applied(plain, aug)
        assert len(found) == 1, seed  # random content: exactly one combination fits both
        seen.add(found[0])
        if seen == set(ALL_FLIPS):
            break
    assert seen == set(ALL_FLIPS)


ALL_ORDERS = list(itertools.permutations(range(3)))


def orders_applied(plain: dict, aug: dict) -> list:
    """The (flips, channel order) pairs that turn the plain item's LR and HR into the augmented item's."""
    return [(f, o) for f in ALL_FLIPS for o in ALL_ORDERS
            if torch.equal(apply_flips(plain['inp'], f)[list(o)], aug['inp'])
            and torch.equal(apply_flips(hr_of(plain), f)[list(o)], hr_of(aug))]


@pytest.mark.parametrize('flips', [False, True])
@pytest.mark.parametrize('wrapper', ['sr-implicit-downsampled', 'sr-implicit-paired'])
def test_rgb_permute_reorders_lr_and_hr_channels_alike(tmp_path, wrapper, flips):
    if wrapper == 'sr-implicit-paired':
        lr_root, _ = random_folder(tmp_path, (8, 10, 3), 'lr')
        hr_root, _ = random_folder(tmp_path, (24, 30, 3), 'hr', seed=1)
        ds = datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr_root, 'root_path_2': hr_root}})
        args = dict(inp_size=4)
    else:
        ds = folder(random_folder(tmp_path, (40, 40, 3))[0])
        args = dict(inp_size=12, scale_min=2, scale_max=3)
    plain_w = wrap(ds, wrapper, **args)
    perm_w = wrap(ds, wrapper, augment=flips, rgb_permute=True, **args)
    seen = set()
    for seed in range(200):
        datasets.seed_all(seed)
        plain = plain_w[0]
        datasets.seed_all(seed)
        found = orders_applied(plain, perm_w[0])
        assert len(found) == 1, seed  # random content: exactly one (flips, order) fits LR and HR
        (f, order), = found
        assert f == (False, False, False) or flips
        seen.add(order)
        if seen == set(ALL_ORDERS):
            break
    assert seen == set(ALL_ORDERS)


def test_rgb_permute_must_be_a_boolean(tmp_path):
    ds = folder(random_folder(tmp_path, (40, 40, 3))[0])
    with pytest.raises(UserError, match=r"^dataset 'sr-implicit-downsampled': args.rgb_permute: expected true or "
                                        r"false \(a YAML boolean, unquoted\), got 'yes' \(str\)$"):
        wrap(ds, 'sr-implicit-downsampled', rgb_permute='yes')
    with pytest.raises(UserError, match=r"^augment must be true or false, got 'no'$"):
        datasets.wrappers.SRImplicitPaired(ds, augment='no')  # built directly, not through make


@pytest.mark.parametrize('method', ['pil', 'matlab'])
def test_downsampling_the_augmented_hr_gives_the_augmented_lr(photos, method):
    w = wrap(folder(photos), 'sr-implicit-downsampled', inp_size=24, scale_min=2, augment=True, resize=method)
    datasets.seed_all(3)
    for i in range(8):
        s = w[i % 2]
        diff = (resize_fn(hr_of(s), 24, method) - s['inp']).abs() * 255
        if method == 'matlab':
            assert diff.max() < 1e-4
        else:  # PIL's 8-bit two-pass resize is not exactly flip/transpose equivariant
            assert diff.max() < 2 + 1e-4 and diff.mean() < 0.5


def test_paired_crops_and_scale(tmp_path):
    lr_root, (lr,) = random_folder(tmp_path, (8, 10, 3), 'lr')
    hr_root, (hr,) = random_folder(tmp_path, (25, 31, 3), 'hr', seed=1)
    pairs = datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr_root, 'root_path_2': hr_root}})
    s = wrap(pairs, 'sr-implicit-paired')[0]
    assert torch.equal(s['inp'], lr) and torch.equal(hr_of(s), hr[:, :24, :30])
    assert torch.allclose(s['cell'][0], torch.tensor([2 / 24, 2 / 30]))
    for _ in range(5):
        s = wrap(pairs, 'sr-implicit-paired', inp_size=4, sample_q=None)[0]
        (x0, y0), = [(x, y) for x in range(5) for y in range(7) if torch.equal(lr[:, x:x + 4, y:y + 4], s['inp'])]
        assert torch.equal(hr_of(s), hr[:, 3 * x0:3 * x0 + 12, 3 * y0:3 * y0 + 12])
    plain_w, aug_w = wrap(pairs, 'sr-implicit-paired', inp_size=4), wrap(pairs, 'sr-implicit-paired', inp_size=4, augment=True)
    for seed in range(6):
        datasets.seed_all(seed)
        plain = plain_w[0]
        datasets.seed_all(seed)
        assert len(flips_applied(plain, aug_w[0])) == 1
    with pytest.raises(UserError, match=r'LR image of .*00.png is 8x10, smaller than the 9x9 crop'):
        wrap(pairs, 'sr-implicit-paired', inp_size=9)[0]


def test_uniform_varied_sizes(tmp_path):
    lr_root, _ = random_folder(tmp_path, (8, 8, 3), 'lr', count=3)
    hr_root, hrs = random_folder(tmp_path, (32, 48, 3), 'hr', count=3, seed=1)
    pairs = datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr_root, 'root_path_2': hr_root}})
    w = wrap(pairs, 'sr-implicit-uniform-varied', size_min=10, size_max=20)
    for i, side in enumerate([10, 15, 20]):
        s = w[i]
        hr_size = (side, int(side * 48 / 32))  # shorter side = side, aspect kept
        assert s['inp'].shape == (3, 8, 8)
        assert torch.allclose(s['cell'][0], torch.tensor([2 / hr_size[0], 2 / hr_size[1]]))
        assert torch.equal(hr_of(s), resize_fn(hrs[i], hr_size))
    assert wrap(pairs, 'sr-implicit-uniform-varied', size_min=10, size_max=20, gt_resize=12, sample_q=100)[2]['gt'].shape == (100, 3)
    assert torch.allclose(wrap(pairs, 'sr-implicit-uniform-varied', size_min=10, gt_resize=12)[2]['cell'][0],
                          torch.tensor([2 / 12, 2 / 18]))
    aug_w = wrap(pairs, 'sr-implicit-uniform-varied', size_min=10, size_max=20, augment=True)
    flipped = [torch.equal(aug_w[1]['inp'], w[1]['inp'].flip(-1)) for _ in range(20)]
    assert any(flipped) and not all(flipped)
    for _ in range(10):
        s = aug_w[1]
        lr_flipped = not torch.equal(s['inp'], w[1]['inp'])
        assert torch.equal(hr_of(s), hr_of(w[1]).flip(-1) if lr_flipped else hr_of(w[1]))


def test_three_cache_modes_give_identical_samples(photos):
    spec = {'name': 'sr-implicit-downsampled', 'args': {'inp_size': 24, 'scale_max': 4, 'augment': True, 'sample_q': 300}}
    items = {}
    for cache in ('none', 'in_memory', 'bin'):
        w = datasets.make(spec, args={'dataset': folder(photos, cache=cache)})
        datasets.seed_all(7)
        items[cache] = [w[i] for i in range(2)]
    for cache in ('in_memory', 'bin'):
        for a, b in zip(items['none'], items[cache]):
            assert all(torch.equal(a[k], b[k]) for k in a)


def epoch(loader):
    return [torch.cat([b['inp'].flatten(), b['gt'].flatten(), b['coord'].flatten()]) for b in loader]


@pytest.mark.parametrize('workers', [0, 2])
def test_seeded_dataloader_runs_repeat(photos, workers):
    w = wrap(folder(photos, repeat=2, cache='in_memory'), 'sr-implicit-downsampled', inp_size=16,
             scale_max=4, augment=True, sample_q=256)
    loader = DataLoader(w, batch_size=2, shuffle=True, num_workers=workers, worker_init_fn=datasets.seed_worker)
    runs = []
    for seed in (0, 0, 1):
        datasets.seed_all(seed)
        runs.append(epoch(loader))
    batch = next(iter(loader))
    assert batch['inp'].shape == (2, 3, 16, 16) and batch['coord'].shape == (2, 256, 2)
    assert batch['cell'].shape == (2, 256, 2) and batch['gt'].shape == (2, 256, 3)
    assert len(runs[0]) == 2 and all(torch.equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], runs[2]))


def test_wrapper_errors_say_the_sizes(tmp_path):
    root, _ = random_folder(tmp_path, (40, 50, 3))
    with pytest.raises(UserError, match=r'image .*00.png is 40x50, smaller than the 48x48 HR crop for inp_size 48'):
        wrap(folder(root), 'sr-implicit-downsampled', inp_size=48)[0]
    with pytest.raises(UserError, match=r'sample_q 2304 exceeds the 40x50 = 2000 pixels of the HR image from .*00.png'):
        wrap(folder(root), 'sr-implicit-downsampled', sample_q=2304)[0]
    with pytest.raises(UserError, match="unknown resize method 'bilinear'"):
        wrap(folder(root), 'sr-implicit-downsampled', resize='bilinear')
    with pytest.raises(UserError, match='need 0 < scale_min <= scale_max, got 4 and 2'):
        wrap(folder(root), 'sr-implicit-downsampled', scale_min=4, scale_max=2)


def test_fast_wrapper_keeps_as_many_queries_as_lr_pixels(photos):
    """sr-implicit-downsampled-fast (SRNO/HIIF): inp_size^2 distinct HR pixels of the crop, each with
    its colour, one cell (the crop's) for all; the same draws as sr-implicit-downsampled with
    sample_q = inp_size^2, so it is seeded like it; whole images without inp_size."""
    args = dict(inp_size=12, scale_min=1.5, scale_max=3.5, augment=True)
    fast = wrap(folder(photos), 'sr-implicit-downsampled-fast', **args)
    plain = wrap(folder(photos), 'sr-implicit-downsampled', sample_q=144, **args)
    for i in range(2):
        datasets.seed_all(7 + i)
        item = fast[i]
        datasets.seed_all(7 + i)
        ref = plain[i]
        assert all(torch.equal(item[k], ref[k]) for k in ('inp', 'coord', 'cell', 'gt'))
        assert item['inp'].shape == (3, 12, 12) and item['coord'].shape == (144, 2) and item['gt'].shape == (144, 3)
        assert len({tuple(c) for c in item['coord'].tolist()}) == 144
        h_hr = round(2 / item['cell'][0, 0].item())
        assert 18 <= h_hr <= 42 and torch.equal(item['cell'], item['cell'][:1].expand(144, 2))
    whole = wrap(folder(photos), 'sr-implicit-downsampled-fast', scale_min=4)[0]
    assert torch.equal(whole['gt'], wrap(folder(photos), 'sr-implicit-downsampled', scale_min=4)[0]['gt'])
    with pytest.raises(UserError, match=r"args.inp_size: expected an integer >= 0, got '48'"):
        wrap(folder(photos), 'sr-implicit-downsampled-fast', inp_size='48')
