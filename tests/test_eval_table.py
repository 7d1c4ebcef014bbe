"""scripts/results_table.py (the markdown table) and, marked slow, scripts/test-benchmark.sh."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata

from datasets.resize import imresize_matlab_uint8
from utils.errors import UserError
from script_loader import load_script

ROOT = Path(__file__).resolve().parents[1]
results_table = load_script('scripts/results_table.py', 'results_table')


def _result(path: Path, psnr: float, ssim: float) -> str:
    path.write_text(json.dumps({'mean': {'psnr': psnr, 'ssim': ssim}, 'images': []}))
    return str(path)


def test_table_rows_columns_and_missing_cells(tmp_path):
    entries = [results_table.parse_entry(e) for e in [
        f"Set5:4={_result(tmp_path / 'a.json', 32.456, 0.89764)}",
        f"Set5:2={_result(tmp_path / 'b.json', 38.0, 0.96)}",
        f"Set5:12={tmp_path / 'missing.json'}",
        f"B100:2={tmp_path / 'missing2.json'}",  # no result at all: row left out
        f"Urban100:12={_result(tmp_path / 'c.json', 21.0, 0.5)}",
    ]]
    assert results_table.markdown_table(entries, 'LIIF').splitlines() == [
        '**LIIF**', '',
        '| Dataset | ×2 | ×4 | ×12 |',
        '|---|---|---|---|',
        '| Set5 | 38.00 / 0.9600 | 32.46 / 0.8976 | - |',
        '| Urban100 | - | - | 21.00 / 0.5000 |',
    ]


def test_table_bad_entries(tmp_path):
    with pytest.raises(UserError, match='ROW:SCALE=FILE'):
        results_table.parse_entry('Set5-2=x.json')
    bad = tmp_path / 'bad.json'
    bad.write_text('{"psnr": 3}')
    with pytest.raises(UserError, match='not a test.py result file'):
        results_table.markdown_table([('Set5', 2, str(bad))])


@pytest.mark.slow
def test_benchmark_script_on_a_tiny_set(tmp_path):
    """The whole script: sample set evaluated at every scale, a missing X3 folder skipped, the
    paper's sets reported missing, and the table at the end."""
    set_root = tmp_path / 'data/benchmark/Sample3'
    hr = skdata.astronaut()[100:196, 180:276]  # (96, 96, 3)
    (set_root / 'HR').mkdir(parents=True)
    Image.fromarray(hr).save(set_root / 'HR/a.png')
    for s in (2, 4):
        (set_root / f'LR_bicubic/X{s}').mkdir(parents=True)
        Image.fromarray(imresize_matlab_uint8(hr, scale=1 / s)).save(set_root / f'LR_bicubic/X{s}/ax{s}.png')
    env = {**os.environ, 'DATA_ROOT': str(tmp_path / 'data'), 'OUT_DIR': str(tmp_path / 'out')}
    r = subprocess.run(['bash', 'scripts/test-benchmark.sh', 'bicubic', 'cpu'], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Set5         skipped: no folder {tmp_path / 'data/benchmark/Set5'}" in r.stdout
    assert 'Sample3      x3   skipped: dataset folder not found' in r.stdout
    table = (tmp_path / 'out/table.md').read_text().splitlines()
    assert table[0] == '**bicubic: PSNR (dB) / SSIM, luminance (Y), border scale**'
    assert table[2] == '| Dataset | ×2 | ×3 | ×4 | ×6 | ×8 |'
    cells = table[4].split(' | ')
    assert cells[0] == '| Sample3' and cells[2] == '-'
    psnr = {s: json.loads((tmp_path / f'out/test-sample3-{s}.json').read_text())['mean']['psnr']
            for s in (2, 4, 6, 8)}
    assert psnr[2] > psnr[4] > psnr[8]
    assert cells[1] == f"{psnr[2]:.2f} / " + cells[1].split(' / ')[1]
    # A second run never overwrites the first: its results are moved aside, byte for byte.
    before = {p.name: p.read_bytes() for p in (tmp_path / 'out').iterdir()}
    r = subprocess.run(['bash', 'scripts/test-benchmark.sh', 'bicubic', 'cpu'], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    (aside,) = tmp_path.glob('out.old-*')
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before


def _script(args, tmp_path, **env):
    """Run an evaluation script from the repository; (exit code, stdout, stderr)."""
    r = subprocess.run(['bash', *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **{k: str(v) for k, v in env.items()}})
    return r.returncode, r.stdout, r.stderr


@pytest.mark.parametrize('script', ['test-benchmark.sh', 'test-div2k.sh'])
def test_no_test_set_is_one_line_and_exit_2(script, tmp_path):
    (tmp_path / 'm.pth').write_bytes(b'x')
    code, out, err = _script([f'scripts/{script}', str(tmp_path / 'm.pth')], tmp_path,
                             DATA_ROOT=tmp_path / 'empty', OUT_DIR=tmp_path / 'out')
    assert code == 2, out + err
    assert err.count('\n') == 1 and err.startswith(f'error: no test set found under data root {tmp_path / "empty"}')
    assert 'DATA_ROOT=load/sample' in err and not (tmp_path / 'out/table.md').exists()


def test_results_of_two_runs_go_to_their_own_folders(tmp_path):
    """save/test/<run>/<checkpoint stem>/<script>-<data root>/: run-a and run-b never share a file."""
    folders = []
    for run in ('run-a', 'run-b'):
        (tmp_path / run).mkdir()
        (tmp_path / run / 'epoch-last.pth').write_bytes(b'x')
        code, out, _ = _script(['-c', f'source scripts/eval_common.sh && eval_setup benchmark {tmp_path / run}/epoch-last.pth '
                                      '&& echo "OUT=$OUT_DIR"'], tmp_path, DATA_ROOT='load/sample')
        assert code == 0
        folders.append(out.strip().splitlines()[-1])
    assert folders == ['OUT=save/test/run-a/epoch-last/benchmark-sample', 'OUT=save/test/run-b/epoch-last/benchmark-sample']
    for f in folders:
        out = ROOT / f.split('=', 1)[1]
        out.rmdir()
        (out.parent / f'.{out.name}.lock').unlink(missing_ok=True)  # the script's lock (scripts/eval_common.sh)


def test_first_failure_stops_the_script(tmp_path):
    """A CUDA request on a machine without CUDA fails once, with test.py's line, exit 1 (it used
    to be repeated as FAILED for all ten configs)."""
    set_root = tmp_path / 'data/benchmark/Set5'
    hr = skdata.astronaut()[100:196, 180:276]
    (set_root / 'HR').mkdir(parents=True)
    Image.fromarray(hr).save(set_root / 'HR/a.png')
    (set_root / 'LR_bicubic/X2').mkdir(parents=True)
    Image.fromarray(imresize_matlab_uint8(hr, scale=1 / 2)).save(set_root / 'LR_bicubic/X2/ax2.png')
    code, out, err = _script(['scripts/test-benchmark.sh', 'bicubic', '0'], tmp_path,
                             DATA_ROOT=tmp_path / 'data', OUT_DIR=tmp_path / 'out', CUDA_VISIBLE_DEVICES='')
    assert code == 1, out + err
    assert err.count('\n') == 1 and err.startswith('error: --gpu 0 asks for CUDA') and '(Set5 x2,' in err
