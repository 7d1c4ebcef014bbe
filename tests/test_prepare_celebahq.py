"""scripts/prepare_celebahq.py: the resized folders and split file the CelebA-HQ configs read."""
import json

import numpy as np
import pytest
from PIL import Image

import datasets
from inference.eval_config import load_test_spec, rewrite_data_root
from script_loader import ROOT, load_script
from utils.config import load_yaml
from utils.errors import UserError

prep = load_script('scripts/prepare_celebahq.py', 'prepare_celebahq')


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    """Four 1024x1024 'faces' (smooth gradients with a random tint) as JPEG, like data1024x1024."""
    src = tmp_path_factory.mktemp('data1024x1024')
    ramp = np.linspace(0, 255, 1024)
    for i in range(4):
        img = np.stack([np.add.outer(ramp, ramp) / 2, np.tile(ramp, (1024, 1)), np.full((1024, 1024), 60 * i)], -1)
        Image.fromarray(img.astype(np.uint8)).save(src / f'{i:05d}.jpg')
    return src


def test_folders_split_and_configs(source, tmp_path):
    root = tmp_path / 'celebAHQ'
    prep.main([str(source), '--root', str(root), '--val', '1'])
    for size in (256, 128, 64, 32):
        files = sorted(p.name for p in (root / str(size)).iterdir())
        assert files == [f'{i:05d}.png' for i in range(4)]
        assert Image.open(root / str(size) / '00002.png').size == (size, size)
    # 128 is made from 256 with PIL's bicubic, as the LIIF authors made it.
    want = Image.open(root / '256/00001.png').resize((128, 128), Image.BICUBIC)
    assert np.array_equal(np.asarray(Image.open(root / '128/00001.png')), np.asarray(want))
    split = json.loads((root / 'split.json').read_text())
    assert split == {'train': ['00000.png', '00001.png', '00002.png'], 'val': ['00003.png']}
    # The shipped test config reads the result (its ./load paths moved under tmp_path).
    cfg = load_yaml(ROOT / 'configs/test/test-celebAHQ-32-256.yaml')
    spec = rewrite_data_root(load_test_spec(cfg, 'test-celebAHQ-32-256.yaml'), str(tmp_path))
    item = datasets.make(spec['wrapper'], args={'dataset': datasets.make(spec['dataset'])})[0]
    assert item['inp'].shape == (3, 32, 32) and item['gt'].shape == (256 * 256, 3)


def test_authors_split_is_checked_and_copied(source, tmp_path):
    good = tmp_path / 'split.json'
    good.write_text(json.dumps({'train': ['00003.png', '00000.png'], 'val': ['00001.png']}))
    prep.main([str(source), '--root', str(tmp_path / 'a'), '--split', str(good)])
    assert json.loads((tmp_path / 'a/split.json').read_text())['train'] == ['00003.png', '00000.png']
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps({'train': ['99999.png'], 'val': []}))
    with pytest.raises(UserError, match='99999.png is not among the prepared images'):
        prep.main([str(source), '--root', str(tmp_path / 'b'), '--split', str(bad)])
    assert not (tmp_path / 'b').exists()  # refused before anything was written
    with pytest.raises(UserError, match='--val must be between 1 and 3'):
        prep.main([str(source), '--root', str(tmp_path / 'c'), '--val', '4'])
    with pytest.raises(UserError, match='source folder not found'):
        prep.main([str(tmp_path / 'nope')])
