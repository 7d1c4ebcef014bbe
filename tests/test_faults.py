"""Fault injection: hostile or damaged inputs, outputs that are inputs, full and read-only disks.
Every case is one line `error: ...` with exit status 2 and nothing the user had is lost (README,
"Reliability"). Training faults (configs, locks, disk full during a run) are in
tests/test_faults_training.py."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import models
from utils.checkpoints import save_checkpoint
from utils.errors import run_cli
from utils.files import atomic_write_text, clean_stale_temps
from script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
test_cli = load_script('test.py', 'liif_test_cli_faults')

NORM = {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
TINY_LIIF = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}


def one_line_error(main, capsys) -> str:
    """Run main() through run_cli: exit status 2 and exactly one stderr line `error: ...`."""
    with pytest.raises(SystemExit) as e:
        run_cli(main)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def files_of(folder: Path) -> dict:
    """{name: bytes} of the files in folder (what a failure must leave as it was)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


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


def fill(disk: Path) -> None:
    """Fill a (small) file system to its last byte."""
    with open(disk / 'filler', 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
        except OSError:
            pass


# ---------------------------------------------------------------- test.py --out

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


def run_test_py(eval_setup, *extra) -> dict:
    return test_cli.main(['--config', str(eval_setup['config']), '--model', str(eval_setup['ckpt']),
                          '--gpu', 'cpu', '--quiet', *map(str, extra)])


@pytest.mark.parametrize('target', ['ckpt', 'config'])
def test_test_py_out_never_overwrites_an_input(eval_setup, capsys, target):
    before = eval_setup[target].read_bytes()
    err = one_line_error(lambda: run_test_py(eval_setup, '--out', eval_setup[target]), capsys)
    assert 'itself' in err and str(eval_setup[target]) in err
    assert eval_setup[target].read_bytes() == before


def test_test_py_out_through_a_symlink_to_the_model_is_refused(eval_setup, tmp_path, capsys):
    link = tmp_path / 'res.json'
    link.symlink_to(eval_setup['ckpt'])
    before = eval_setup['ckpt'].read_bytes()
    assert 'itself' in one_line_error(lambda: run_test_py(eval_setup, '--out', link), capsys)
    assert eval_setup['ckpt'].read_bytes() == before


def test_test_py_out_is_checked_before_the_evaluation(eval_setup, tmp_path, capsys, monkeypatch):
    evaluated = []
    monkeypatch.setattr(test_cli, 'evaluate', lambda *a, **k: evaluated.append(1) or [])
    (tmp_path / 'dir.json').mkdir()
    assert 'is a folder' in one_line_error(lambda: run_test_py(eval_setup, '--out', tmp_path / 'dir.json'), capsys)
    assert evaluated == []


def test_test_py_out_into_a_read_only_folder(eval_setup, readonly_dir, capsys, monkeypatch):
    evaluated = []
    monkeypatch.setattr(test_cli, 'evaluate', lambda *a, **k: evaluated.append(1) or [])
    err = one_line_error(lambda: run_test_py(eval_setup, '--out', readonly_dir / 'res.json'), capsys)
    assert 'cannot write' in err and evaluated == []


def test_test_py_out_is_written_atomically(eval_setup, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'res.json'
    out.write_text('{"previous": 1}')
    stale = tmp_path / '.res.json.abcd1234.tmp'  # left by an earlier, killed write
    stale.write_text('{"half')
    os.utime(stale, (0, 0))
    import utils.files

    def full_disk(fd):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(utils.files.os, 'fsync', full_disk)
    err = one_line_error(lambda: run_test_py(eval_setup, '--out', out), capsys)
    assert 'No space left on device' in err
    assert out.read_text() == '{"previous": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['res.json']  # stale temp file removed too
    monkeypatch.undo()
    summary = run_test_py(eval_setup, '--out', out)
    assert json.loads(out.read_text())['mean'] == summary['mean']


def test_disk_full_on_a_real_tmpfs_keeps_the_previous_out(eval_setup, tmp_path, mount_tmpfs, capsys):
    disk = mount_tmpfs(tmp_path / 'small', size='64k')
    out = disk / 'res.json'
    out.write_text('{"previous": 1}')
    fill(disk)
    err = one_line_error(lambda: run_test_py(eval_setup, '--out', out), capsys)
    assert 'No space left on device' in err and out.read_text() == '{"previous": 1}'


def test_clean_stale_temps_only_takes_old_files_of_our_pattern(tmp_path):
    names = ['.a.pth.abc12345.tmp', '.a.pth.abc12345.tmp.keep', 'a.pth.abc12345.tmp', '.b.png.zz_9yy88.tmp',
             '.a.pth.new12345.tmp', 'notes.tmp']
    for n in names:
        (tmp_path / n).write_text('x')
        if n != '.a.pth.new12345.tmp':  # that one is being written right now
            os.utime(tmp_path / n, (0, 0))
    removed = clean_stale_temps(tmp_path, 'a.pth')
    assert [p.name for p in removed] == ['.a.pth.abc12345.tmp']
    removed = clean_stale_temps(tmp_path)
    assert [p.name for p in removed] == ['.b.png.zz_9yy88.tmp']
    assert '.a.pth.new12345.tmp' in os.listdir(tmp_path)
    atomic_write_text(tmp_path / 'c.txt', 'ok')
    assert (tmp_path / 'c.txt').read_text() == 'ok'
