"""The sample data builder (real scikit-image photos, EDSR-pack layout) and the layout check."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

import datasets
from datasets.layout import check_layout
from datasets.resize import imresize_matlab_uint8
from utils.errors import UserError
from script_loader import load_script



def load_prepare():
    return load_script('scripts/prepare_sample_data.py', 'prepare_sample_data')


@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    """load/sample built into a temporary folder; returns (root, script module, written files)."""
    script = load_prepare()
    root = str(tmp_path_factory.mktemp('load') / 'sample')
    return root, script, script.prepare(root)


def read(path):
    return np.array(Image.open(path))


def test_sample_layout_is_complete_and_rebuilding_is_a_no_op(sample):
    root, script, written = sample
    assert len(written) == len(script.planned_files(root)) == 42
    assert check_layout(root, 'sample') == []
    assert script.prepare(root) == []
    assert sorted(os.listdir(os.path.join(root, 'benchmark'))) == ['Sample3', 'Sample5']
    assert len(os.listdir(os.path.join(root, 'train_HR'))) == 8
    assert len(os.listdir(os.path.join(root, 'valid_HR'))) == 2


def test_sample_photos_are_disjoint_rgb_and_real(sample):
    root, script, _ = sample
    sources = [set(script.TRAIN.values()), set(script.VALID.values())]
    sources += [set(photos.values()) for photos in script.BENCHMARK.values()]
    assert sum(map(len, sources)) == len(set().union(*sources))
    for name in ('chelsea', 'hubble'):
        img = read(os.path.join(root, 'train_HR', f'{name}.png'))
        assert img.ndim == 3 and img.shape[2] == 3 and img.std() > 20  # a photo, not a flat pattern
    camera = read(os.path.join(root, 'benchmark', 'Sample5', 'HR', 'camera.png'))
    assert camera.shape == (256, 256, 3) and (camera[..., 0] == camera[..., 2]).all()


@pytest.mark.parametrize('s', [2, 3, 4])
def test_benchmark_lr_is_matlab_bicubic_of_the_cropped_hr(sample, s):
    root, _, _ = sample
    set_root = os.path.join(root, 'benchmark', 'Sample5')
    hr = read(os.path.join(set_root, 'HR', 'page.png'))  # 191x256: not a multiple of 2, 3 or 4
    lr = read(os.path.join(set_root, 'LR_bicubic', f'X{s}', f'pagex{s}.png'))
    assert lr.shape == (191 // s, 256 // s, 3)
    assert np.array_equal(lr, imresize_matlab_uint8(hr[:191 // s * s, :256 // s * s], scale=1 / s))
    pairs = datasets.make({'name': 'paired-image-folders',
                           'args': {'root_path_1': os.path.join(set_root, 'LR_bicubic', f'X{s}'),
                                    'root_path_2': os.path.join(set_root, 'HR')}})
    item = datasets.make({'name': 'sr-implicit-paired', 'args': {}}, args={'dataset': pairs})[3]
    assert item['inp'].shape == (3, 191 // s, 256 // s)
    assert torch.allclose(item['cell'][0], torch.tensor([2 / (191 // s * s), 2 / (256 // s * s)]))


def test_layout_check_says_what_is_missing(sample, tmp_path):
    root, _, _ = sample
    os.rename(os.path.join(root, 'benchmark', 'Sample3', 'LR_bicubic', 'X3', 'textx3.png'), tmp_path / 't.png')
    try:
        assert check_layout(root, 'sample') == [
            f'{root}/benchmark/Sample3/LR_bicubic/X3: 2 of 3 images; missing textx3.png']
    finally:
        os.rename(tmp_path / 't.png', os.path.join(root, 'benchmark', 'Sample3', 'LR_bicubic', 'X3', 'textx3.png'))
    div2k = tmp_path / 'div2k'
    (div2k / 'DIV2K_train_HR').mkdir(parents=True)
    for i in range(1, 800):
        (div2k / 'DIV2K_train_HR' / f'{i:04d}.png').touch()
    problems = check_layout(str(div2k), 'div2k')
    assert problems[0] == f'{div2k}/DIV2K_train_HR: 799 of 800 images; missing 0800.png'
    assert problems[1:] == [f'missing folder {div2k}/DIV2K_valid_HR'] + [
        f'missing folder {div2k}/DIV2K_valid_LR_bicubic/X{s}' for s in (2, 3, 4)]
    assert check_layout(str(tmp_path / 'none'), 'benchmark') == [f'missing folder {tmp_path}/none']
    with pytest.raises(UserError, match="unknown data layout 'celeba'"):
        check_layout(root, 'celeba')
