"""The README's research workflow: two models trained, one fine-tuned, both evaluated, one table
comparing them, one figure, and the ablation's four-row table. The whole README block runs as
written in a copy of the repository (slow); its core runs in-process on tiny data (fast)."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from inference.results import Table, find_results
from script_loader import load_script
from test_train import data, one_thread, tiny_raw  # noqa: F401  (fixtures, helpers)
from training import trainer
from training.config import check_train_config
from utils.checkpoints import file_digest, load_checkpoint

REPO = Path(__file__).resolve().parents[1]
test_cli = load_script('test.py', 'liif_test_workflow')
compare_crop = load_script('scripts/compare_crop.py', 'compare_crop_workflow')
LTE = {'name': 'lte', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}, 'hidden_dim': 8}}


def readme_workflow() -> str:
    """The bash block of the README's "Research workflow" section."""
    text = (REPO / 'README.md').read_text()
    section = text[text.index('## Research workflow'):]
    return re.search(r'```bash\n(.*?)```', section, re.S).group(1)


def test_workflow_core_in_process(data, tmp_path, capsys):
    """Train LIIF and LTE, fine-tune LIIF from its checkpoint, evaluate both with test.py, one
    table of the two, one figure: each step's output feeds the next."""
    runs = {}
    for name, model in (('liif', None), ('lte', LTE)):
        raw = tiny_raw(data, epoch_max=1, val_images=0, **({'model': model} if model else {}))
        trainer.train(check_train_config(raw, name), tmp_path / name)
        runs[name] = tmp_path / name / 'epoch-last.pth'
    ft = check_train_config(tiny_raw(data, epoch_max=1, val_images=0), 'ft')
    trainer.train(ft, tmp_path / 'ft', init=str(runs['liif']))
    assert load_checkpoint(tmp_path / 'ft/epoch-last.pth')['init']['digest'] == file_digest(runs['liif'])
    test_cfg = tmp_path / 'test-x3.yaml'
    test_cfg.write_text(yaml.safe_dump({
        'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(data / 'val')}},
                         'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 3}}, 'batch_size': 1},
        'eval_type': 'benchmark-3', 'data_norm': tiny_raw(data)['data_norm']}))
    for label, ckpt in (('LIIF', tmp_path / 'ft/epoch-last.pth'), ('LTE', runs['lte'])):
        test_cli.main(['--config', str(test_cfg), '--model', str(ckpt), '--label', label, '--quiet',
                       '--out', str(tmp_path / f'res/{label}.json')])
    table = Table.build(find_results([str(tmp_path / 'res')]), 'core')
    assert table.rows == ['LIIF', 'LTE'] and table.columns == [('x3', 3)]
    assert all(10 < table.cells[r, ('x3', 3)].psnr < 60 for r in table.rows)
    hr = np.asarray(Image.open(sorted((data / 'val').iterdir())[0]))
    Image.fromarray(hr).save(tmp_path / 'hr.png')
    psnrs = compare_crop.main(['--model', f"LIIF={tmp_path / 'ft/epoch-last.pth'}", '--model', f"LTE={runs['lte']}",
                               '--hr', str(tmp_path / 'hr.png'), '--scale', '3', '--crop', '10,10,30,30',
                               '--out', str(tmp_path / 'fig.png'), '--gpu', 'cpu'])
    assert list(psnrs) == ['bicubic', 'LIIF', 'LTE'] and (tmp_path / 'fig.png').is_file()


def copy_of_the_repository(dest: Path) -> Path:
    """The checkout's files (no .git, load, save or virtualenv) copied to dest."""
    skip = shutil.ignore_patterns('.git', 'load', 'save', '.venv', '__pycache__', '.pytest_cache')
    shutil.copytree(REPO, dest, ignore=skip, symlinks=True)
    return dest


@pytest.mark.slow
def test_readme_research_workflow_as_written(tmp_path):
    repo = copy_of_the_repository(tmp_path / 'repo')
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'python').write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this virtualenv's python
    (bin_dir / 'python').chmod(0o755)
    env = {**os.environ, 'PATH': f"{bin_dir}:{os.environ['PATH']}", 'PYTHON': sys.executable}
    r = subprocess.run(['bash', '-euo', 'pipefail', '-c', readme_workflow()], cwd=repo, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    save = repo / 'save'
    assert yaml.safe_load((save / 'tiny-liif-ft/config.yaml').read_text())['init'] == 'save/tiny-liif/epoch-last.pth'
    assert load_checkpoint(save / 'tiny-liif-ft/epoch-last.pth')['epoch'] == 3  # resumed to the new epoch_max
    (compare,) = (save / 'test/compare').glob('benchmark-sample-*')
    table = json.loads((compare / 'table.json').read_text())
    assert table['rows'] == ['bicubic', 'LIIF', 'LTE']
    assert table['columns'][:3] == ['Sample5 ×2', 'Sample5 ×3', 'Sample5 ×4']
    assert (repo / 'compare.csv').read_text().splitlines()[1].startswith('LIIF,')
    assert Image.open(repo / 'compare.png').width > 4 * 48
    (ablation,) = (save / 'test/compare').glob('div2k-sample-*')
    assert json.loads((ablation / 'table.json').read_text())['rows'] == ['-c', '-u', '-e', '-d']
