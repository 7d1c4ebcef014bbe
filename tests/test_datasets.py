"""Image folders: reading, ordering, splits, the three caches, pairing, and user errors."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from datasets.image_store import bin_root
from utils.errors import UserError


def save(path, arr: np.ndarray, mode: str = None) -> np.ndarray:
    """Write arr as an image at path (creating folders); return what RGB reading should give."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    im = Image.fromarray(arr)
    if mode is not None:
        im = im.convert(mode)
    im.save(path)
    return np.array(Image.open(path).convert('RGB'))


@pytest.fixture
def folder(tmp_path):
    """Three images of different modes and sizes; returns (path, {name: expected RGB uint8})."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'hr'
    expected = {
        'b.png': save(root / 'b.png', rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)),
        'a.png': save(root / 'a.png', rng.integers(0, 256, (25, 16), dtype=np.uint8)),  # L
        'c.png': save(root / 'c.png', rng.integers(0, 256, (18, 22, 4), dtype=np.uint8)),  # RGBA
    }
    (root / 'notes.txt').write_text('not an image')
    return str(root), expected


def test_image_folder_items_sorted_rgb_float(folder):
    root, expected = folder
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': root}})
    assert len(ds) == 3
    for i, name in enumerate(['a.png', 'b.png', 'c.png']):
        img = ds[i]
        assert img.dtype == torch.float32 and img.shape == (3, *expected[name].shape[:2])
        assert 0 <= img.min() and img.max() <= 1
        assert torch.equal(img, torch.from_numpy(expected[name]).permute(2, 0, 1).float() / 255)
    gray = ds[0]
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])


def test_split_first_k_repeat_and_make_copies_args(folder, tmp_path):
    root, expected = folder
    split = tmp_path / 'split.json'
    split.write_text(json.dumps({'train': ['c.png', 'a.png'], 'val': ['b.png']}))
    spec = {'name': 'image-folder', 'args': {'root_path': root, 'split_file': str(split), 'split_key': 'train'}}
    ds = datasets.make(spec, args={'repeat': 3, 'first_k': 1})
    assert spec['args'] == {'root_path': root, 'split_file': str(split), 'split_key': 'train'}
    assert len(ds) == 3 and all(ds[i].shape == (3, 18, 22) for i in range(3))
    with pytest.raises(UserError, match="has no key 'test'; keys: train, val"):
        datasets.make(spec, args={'split_key': 'test'})
    split.write_text(json.dumps({'train': ['zzz.png']}))
    with pytest.raises(UserError, match=r'zzz.png \(listed in .*split.json\) is not an image in'):
        datasets.make(spec)


def test_three_cache_modes_give_identical_items(folder):
    root, _ = folder
    made = {c: datasets.make({'name': 'image-folder', 'args': {'root_path': root, 'cache': c, 'repeat': 2}})
            for c in ('none', 'in_memory', 'bin')}
    for i in range(6):
        assert torch.equal(made['none'][i], made['in_memory'][i])
        assert torch.equal(made['none'][i], made['bin'][i])
    arrays = made['in_memory'].store.arrays
    assert all(a.dtype == np.uint8 for a in arrays)
    assert made['in_memory'].store.nbytes() == (25 * 16 + 20 * 30 + 18 * 22) * 3
    npy = os.path.join(bin_root(root), 'a.png.npy')
    assert os.path.basename(bin_root(root)) == '_bin_hr'
    assert np.load(npy, allow_pickle=False).shape == (25, 16, 3)


def test_bin_cache_rebuilds_only_changed_images(folder):
    root, _ = folder
    datasets.make({'name': 'image-folder', 'args': {'root_path': root, 'cache': 'bin'}})
    npy_a, npy_b = (os.path.join(bin_root(root), n) for n in ('a.png.npy', 'b.png.npy'))
    stamp_a = os.stat(npy_a).st_mtime_ns
    new_b = np.full((7, 9, 3), 200, dtype=np.uint8)
    save(os.path.join(root, 'b.png'), new_b)
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': root, 'cache': 'bin'}})
    assert torch.equal(ds[1], torch.full((3, 7, 9), 200 / 255))
    assert os.stat(npy_a).st_mtime_ns == stamp_a
    assert np.load(npy_b, allow_pickle=False).shape == (7, 9, 3)


def edsr_pack(tmp_path, hr_names, lr_names, scale=2):
    """A benchmark set in the EDSR pack layout; returns (LR folder, HR folder)."""
    rng = np.random.default_rng(1)
    hr_root, lr_root = tmp_path / 'Set' / 'HR', tmp_path / 'Set' / 'LR_bicubic' / f'X{scale}'
    for n in hr_names:
        save(hr_root / n, rng.integers(0, 256, (8 * scale, 6 * scale, 3), dtype=np.uint8))
    for n in lr_names:
        save(lr_root / n, rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
    return str(lr_root), str(hr_root)


def test_paired_folders_match_edsr_pack_names(tmp_path):
    lr, hr = edsr_pack(tmp_path, ['a.png', 'a_b.png', 'baby.png', 'box2.png'],
                       ['ax2.png', 'a_bx2.png', 'babyx2.png', 'box2x2.png'])
    ds = datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr, 'root_path_2': hr}})
    pairs = list(zip(ds.store_1.names, ds.store_2.names))
    assert pairs == [('a_bx2.png', 'a_b.png'), ('ax2.png', 'a.png'), ('babyx2.png', 'baby.png'),
                     ('box2x2.png', 'box2.png')]
    img_lr, img_hr = ds[2]
    assert img_lr.shape == (3, 8, 6) and img_hr.shape == (3, 16, 12)
    assert torch.equal(img_hr, datasets.make({'name': 'image-folder', 'args': {'root_path': hr}})[2])


def test_paired_folder_mismatches_are_one_line_errors(tmp_path):
    lr, hr = edsr_pack(tmp_path / 'count', ['a.png', 'b.png'], ['ax2.png'])
    with pytest.raises(UserError) as e:
        datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr, 'root_path_2': hr}})
    msg = str(e.value)
    assert '\n' not in msg and f'{lr} has 1 images' in msg and f'{hr} has 2' in msg
    assert f'b.png in {hr} has no partner in {lr}' in msg
    lr, hr = edsr_pack(tmp_path / 'names', ['a.png', 'b.png'], ['ax2.png', 'cx2.png'])
    with pytest.raises(UserError, match=f'first unmatched: b.png in {hr} has no partner in {lr}'):
        datasets.make({'name': 'paired-image-folders', 'args': {'root_path_1': lr, 'root_path_2': hr}})


def test_folder_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match=f'image folder not found: {tmp_path}/nope'):
        datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path / 'nope')}})
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('x')
    with pytest.raises(UserError, match=f'no images in folder {tmp_path}/empty'):
        datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path / 'empty')}})
    bad = tmp_path / 'bad'
    save(bad / 'good.png', np.zeros((4, 4, 3), dtype=np.uint8))
    (bad / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    for cache in ('none', 'in_memory', 'bin'):
        with pytest.raises(UserError, match=f'cannot read image {bad}/broken.png: ') as e:
            ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(bad), 'cache': cache}})
            ds[0]
        assert '\n' not in str(e.value)
    truncated = tmp_path / 'trunc'
    save(truncated / 'x.png', np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    data = (truncated / 'x.png').read_bytes()
    (truncated / 'x.png').write_bytes(data[:len(data) // 2])
    with pytest.raises(UserError, match=f'cannot read image {truncated}/x.png'):
        datasets.make({'name': 'image-folder', 'args': {'root_path': str(truncated)}})[0]
    with pytest.raises(UserError, match="unknown cache 'ram'"):
        datasets.make({'name': 'image-folder', 'args': {'root_path': str(bad), 'cache': 'ram'}})
    with pytest.raises(UserError, match='repeat of .* must be a positive integer, got 0'):
        datasets.make({'name': 'image-folder', 'args': {'root_path': str(bad), 'repeat': 0}})
    with pytest.raises(UserError, match="unknown dataset 'image-foldr'; known: .*image-folder"):
        datasets.make({'name': 'image-foldr', 'args': {}})


def test_registry_has_every_dataset():
    assert datasets.DATASETS.names() == ['image-folder', 'paired-image-folders', 'sr-implicit-degraded',
                                         'sr-implicit-downsampled', 'sr-implicit-downsampled-fast',
                                         'sr-implicit-paired', 'sr-implicit-uniform-varied']
