import os
import random
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import models
from faults import NORM, TINY_LIIF
from utils.checkpoints import save_checkpoint


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


# ---------------------------------------------------------------- fault injection (tests/test_faults_*.py)

@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount_tmpfs(folder, size, readonly): a small tmpfs at folder (unmounted afterwards); skips
    where mounting is not permitted. Tests run as root, where chmod does not stop writes."""
    mounted = []

    def mount(folder: Path, size: str = '1m', readonly: bool = False) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        opts = f'size={size}' + (',ro' if readonly else '')
        proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', opts, 'tmpfs', str(folder)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f'cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})')
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(['umount', '-l', str(folder)], capture_output=True)


@pytest.fixture
def readonly_dir(tmp_path, mount_tmpfs) -> Path:
    """An empty folder this process cannot write into: chmod 555 when not root, else a read-only
    tmpfs (skipped where neither works)."""
    folder = tmp_path / 'readonly'
    if os.geteuid() != 0:
        folder.mkdir()
        folder.chmod(0o555)
    else:
        mount_tmpfs(folder, readonly=True)
    if os.access(folder, os.W_OK):
        pytest.skip('cannot make a read-only folder here')
    yield folder
    if os.geteuid() != 0:
        folder.chmod(0o755)


@pytest.fixture(scope='module')
def eval_setup(tmp_path_factory) -> dict:
    """Two 24x20 HR images, a test config at x2 and a tiny LIIF checkpoint."""
    root = tmp_path_factory.mktemp('eval')
    (root / 'hr').mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(root / 'hr' / f'{i}.png')
    config = root / 'test.yaml'
    config.write_text(yaml.safe_dump({
        'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(root / 'hr')}},
                         'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2}},
                         'batch_size': 1},
        'data_norm': NORM}))
    ckpt = root / 'tiny.pth'
    save_checkpoint({'model': {**TINY_LIIF, 'sd': models.make(TINY_LIIF).state_dict()}}, ckpt)
    return {'root': root, 'config': config, 'ckpt': ckpt}


@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory) -> Path:
    """A tiny random LIIF checkpoint."""
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    save_checkpoint({'model': {**TINY_LIIF, 'sd': models.make(TINY_LIIF).state_dict()}}, path)
    return path
