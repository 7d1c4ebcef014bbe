"""scripts/results_table.py (one table comparing models, from result files, folders or checkpoints), test.py's
provenance, and the evaluation scripts (the whole of scripts/test-benchmark.sh marked slow)."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from skimage import data as skdata

from datasets.resize import imresize_matlab_uint8
from faults import run_test_py
from utils.checkpoints import file_digest
from utils.errors import UserError
from script_loader import load_script
from tiny import srno_spec, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
results_table = load_script('scripts/results_table.py', 'results_table')


def _result(path: Path, psnr: float, ssim: float, dataset: str = 'set5', scale=4, label='m', digest='d1',
            **extra) -> str:
    """A result file as test.py --out writes it (the fields the table reads)."""
    spec = {'dataset': {'name': 'image-folder', 'args': {'root_path': 'hr'}},
            'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': scale}}, 'batch_size': 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        'config': f'configs/test/test-{dataset}-{scale}.yaml', 'dataset_name': dataset, 'dataset': spec,
        'eval_type': f'benchmark-{scale}', 'protocol': {'scale': scale}, 'label': label,
        'checkpoint': {'label': label, 'digest': digest}, 'precision': 'fp32', 'sets': [],
        'mean': {'psnr': psnr, 'ssim': ssim}, 'images': [], **extra}))
    return str(path)


def test_rows_are_models_columns_are_sets_by_scale(tmp_path):
    _result(tmp_path / 'a/set5-4.json', 32.456, 0.89764)
    _result(tmp_path / 'a/set5-2.json', 38.0, 0.96, scale=2)
    _result(tmp_path / 'a/urban-12.json', 21.0, 0.5, dataset='urban100', scale=12)
    _result(tmp_path / 'a.old-20240101/set5-4.json', 1.0, 0.1)  # moved aside: not a result of now
    _result(tmp_path / 'b/set5-4.json', 31.0, 0.8, label='bicubic', digest=None)
    _result(tmp_path / 'b/set5-4-clip.json', 31.5, 0.81, label='bicubic', digest=None, cell_scale_max=4)
    _result(tmp_path / 'c/set5-4.json', 33.0, 0.9, label='lte', digest='d2', cell_scale_max=4)
    table = results_table.main([str(tmp_path / 'a'), str(tmp_path / 'b/set5-4.json'), f"LTE={tmp_path / 'c'}",
                                '--title', 'LIIF', '--out', str(tmp_path / 't.md'), '--out', str(tmp_path / 't.csv')])
    assert table.rows == ['m', 'bicubic', 'LTE, cell clip ×4']
    md = (tmp_path / 't.md').read_text().splitlines()
    assert md[0].startswith('**LIIF**: rows are models')
    assert md[2:7] == [
        '| model | Set5 ×2 | Set5 ×4 | Urban100 ×12 |',
        '|---|---|---|---|',
        '| m | 38.00 / 0.9600 | 32.46 / 0.8976 | 21.00 / 0.5000 |',
        '| bicubic | - | 31.00 / 0.8000 | - |',
        '| LTE, cell clip ×4 | - | 33.00 / 0.9000 | - |']
    assert md[8:] == ['Protocols:', '- Set5 ×2, ×4: LR made on the fly (PIL bicubic), border = scale, Y',
                      '- Urban100 ×12: LR made on the fly (PIL bicubic), border = scale, Y']
    csv = (tmp_path / 't.csv').read_text().splitlines()
    assert csv[0] == 'model,Set5 ×2 PSNR,Set5 ×2 SSIM,Set5 ×4 PSNR,Set5 ×4 SSIM,Urban100 ×12 PSNR,Urban100 ×12 SSIM'
    assert csv[2] == 'bicubic,,,31.0000,0.800000,,'


def test_checkpoints_find_their_results_by_file_hash(tmp_path):
    ckpt = tmp_path / 'run/epoch-best.pth'
    ckpt.parent.mkdir()
    ckpt.write_bytes(b'weights')
    other = tmp_path / 'other.pth'
    other.write_bytes(b'other weights')
    _result(tmp_path / 'res/x/set5-4.json', 30.0, 0.9, digest=file_digest(ckpt))
    _result(tmp_path / 'res/y/set5-4.json', 29.0, 0.9, digest=file_digest(other))
    table = results_table.main(['A=' + str(ckpt), '--results-root', str(tmp_path / 'res')])
    assert table.rows == ['A'] and table.cells['A', ('set5', 4)].psnr == 30.0
    with pytest.raises(UserError, match='no results of .*epoch-best.pth under'):
        results_table.main([str(ckpt), '--results-root', str(tmp_path / 'elsewhere')])


def test_one_label_for_two_checkpoints_shows_their_hashes(tmp_path):
    _result(tmp_path / 'a/r.json', 30.0, 0.9, digest='aaaaaaaaaaaa')
    _result(tmp_path / 'b/r.json', 31.0, 0.9, digest='bbbbbbbbbbbb')
    assert results_table.main([str(tmp_path)]).rows == ['m (aaaaaa)', 'm (bbbbbb)']


def test_bad_inputs_are_one_line(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"psnr": 3}')
    with pytest.raises(UserError, match='not a test.py result file'):
        results_table.main([str(bad)])
    with pytest.raises(UserError, match='no result file, folder or checkpoint at'):
        results_table.main([str(tmp_path / 'nothing*.json')])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='holds no test.py result file'):
        results_table.main([str(tmp_path / 'empty')])
    _result(tmp_path / 'r1.json', 30.0, 0.9)
    _result(tmp_path / 'r2.json', 31.0, 0.9)
    with pytest.raises(UserError, match='two results for m at Set5 ×4: .*r1.json and .*r2.json'):
        results_table.main([str(tmp_path / 'r1.json'), str(tmp_path / 'r2.json')])
    with pytest.raises(UserError, match='expected a .md, .csv or .json file'):
        results_table.main([str(tmp_path / 'r1.json'), '--out', str(tmp_path / 't.txt')])
    with pytest.raises(UserError, match='is the result .* itself'):
        results_table.main([str(tmp_path / 'r1.json'), '--out', str(tmp_path / 'r1.json')])
    with pytest.raises(UserError, match='expected a name of 1 to 100 printable characters on one line'):
        results_table.main([f"two\nlines={tmp_path / 'r1.json'}"])


def test_names_are_one_printable_line_and_a_bar_stays_in_its_cell(eval_setup, tmp_path, capsys):
    for label in ('a\nb', 'x' * 101, ''):
        with pytest.raises(UserError, match='--label: expected a name of 1 to 100 printable'):
            run_test_py(eval_setup, '--label', label)
    _result(tmp_path / 'r.json', 30.0, 0.9, label='a|b')
    assert '| a\\|b | 30.00 / 0.9000 |' in results_table.main([str(tmp_path / 'r.json')]).markdown()


def test_test_py_records_provenance_and_prints_the_protocol(eval_setup, tmp_path, capsys):
    """The result file says which checkpoint (path, epoch, hash, family) and which protocol; the
    protocol is printed in one line before the numbers."""
    summary = run_test_py(eval_setup, '--out', tmp_path / 'r.json', '--set', 'eval_type=benchmark-2',
                          '--cell-scale-max', '4')
    out = capsys.readouterr().out.splitlines()
    assert out[0] == 'x2: LR made on the fly (PIL bicubic), border 2, Y, cell clip at x4'
    assert out[-2].startswith('ssim: ') and out[-1].startswith('result: ')
    rec = json.loads((tmp_path / 'r.json').read_text())
    assert rec['checkpoint'] == {'path': str(eval_setup['ckpt']), 'label': 'tiny', 'epoch': None,
                                 'digest': file_digest(eval_setup['ckpt']), 'family': 'liif',
                                 'encoder': 'edsr-baseline', 'init': None}
    assert rec['protocol'] == {'text': out[0], 'eval_type': 'benchmark-2', 'scale': 2,
                               'lr': {'source': 'on the fly', 'resize': 'pil'}, 'border': 2, 'luminance': True,
                               'cell_scale_max': 4.0, 'window': None, 'attention_rows': None}
    assert rec['sets'] == ['eval_type=benchmark-2'] and summary['label'] == 'tiny'
    assert results_table.main([str(tmp_path / 'r.json')]).rows == ['tiny, cell clip ×4']


def test_the_attention_grouping_is_part_of_the_protocol(eval_setup, tmp_path, capsys):
    """SRNO (queries that attend to each other): the grouping test.py used is printed with the
    protocol and recorded; the config's attention_rows, overridden by --set and --attention-rows."""
    ckpt = tmp_path / 'srno.pth'
    tiny_checkpoint(ckpt, srno_spec())
    setup = {**eval_setup, 'ckpt': ckpt}
    lines = {}
    for flags in ([], ['--set', 'attention_rows=4'], ['--set', 'attention_rows=4', '--attention-rows', 'whole']):
        summary = run_test_py(setup, *flags)
        lines[len(lines)] = (capsys.readouterr().out.splitlines()[0], summary['protocol']['attention_rows'],
                             summary['attention_rows'])
    assert lines == {0: ('x2: LR made on the fly (PIL bicubic), all pixels, RGB, attention over the whole image',
                         'whole', None),
                     1: ('x2: LR made on the fly (PIL bicubic), all pixels, RGB, attention over blocks of 4 rows', 4, 4),
                     2: ('x2: LR made on the fly (PIL bicubic), all pixels, RGB, attention over the whole image',
                         'whole', None)}


def _tiny_sample3(root: Path) -> Path:
    """root/benchmark/Sample3: one 96x96 HR crop and its MATLAB-bicubic LR at x2 and x4."""
    set_root = root / 'benchmark/Sample3'
    hr = skdata.astronaut()[100:196, 180:276]  # (96, 96, 3)
    (set_root / 'HR').mkdir(parents=True)
    Image.fromarray(hr).save(set_root / 'HR/a.png')
    for s in (2, 4):
        (set_root / f'LR_bicubic/X{s}').mkdir(parents=True)
        Image.fromarray(imresize_matlab_uint8(hr, scale=1 / s)).save(set_root / f'LR_bicubic/X{s}/ax{s}.png')
    return root


@pytest.mark.slow
def test_benchmark_script_on_a_tiny_set(tmp_path, tiny_ckpt):
    """The whole script, two models: sample set evaluated at every scale, a missing X3 folder
    skipped, the paper's sets reported missing, each model's table, then one comparing them."""
    env = {**os.environ, 'DATA_ROOT': str(_tiny_sample3(tmp_path / 'data')), 'RESULTS_ROOT': str(tmp_path / 'res'),
           'TABLE_DIR': str(tmp_path / 'cmp')}
    args = ['bash', 'scripts/test-benchmark.sh', '--gpu', 'cpu', 'bicubic', f'tiny={tiny_ckpt}']
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(f"Set5         skipped: no folder {tmp_path / 'data/benchmark/Set5'}") == 1
    assert r.stdout.count('Sample3      x3   skipped: dataset folder not found') == 1
    out = tmp_path / f'res/bicubic/benchmark-data-{data_tag(tmp_path / "data")}'
    table = (tmp_path / 'cmp/table.md').read_text().splitlines()
    assert table[0].startswith('**PSNR (dB) / SSIM, luminance (Y), border scale**: rows are models')
    assert table[2] == '| model | Sample3 ×2 | Sample3 ×4 | Sample3 ×6 | Sample3 ×8 |'
    cells = table[4].split(' | ')
    assert cells[0] == '| bicubic' and table[5].startswith('| tiny | ')
    psnr = {s: json.loads((out / f'test-sample3-{s}.json').read_text())['mean']['psnr'] for s in (2, 4, 6, 8)}
    assert psnr[2] > psnr[4] > psnr[8]
    assert cells[1] == f"{psnr[2]:.2f} / " + cells[1].split(' / ')[1]
    assert json.loads((tmp_path / 'cmp/table.json').read_text())['rows'] == ['bicubic', 'tiny']
    # A second run never overwrites the first: its results are moved aside, byte for byte.
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    (aside,) = out.parent.glob(out.name + '.old-*')
    assert {p.name: p.read_bytes() for p in aside.iterdir()} == before
    assert len(list(tmp_path.glob('cmp.old-*'))) == 1


@pytest.mark.slow
def test_cell_clip_script_writes_one_table_of_two_rows(tmp_path, tiny_ckpt):
    """scripts/lte-cell-clip.sh: the model as trained and clipped at x2, one table; the clip changes
    nothing up to x2 and the scores beyond."""
    env = {**os.environ, 'DATA_ROOT': str(_tiny_sample3(tmp_path / 'data')), 'RESULTS_ROOT': str(tmp_path / 'res'),
           'EVAL': 'benchmark', 'CLIP': '2', 'GPU': 'cpu'}
    r = subprocess.run(['bash', 'scripts/lte-cell-clip.sh', str(tiny_ckpt)], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    table = json.loads((tmp_path / 'res/cell-clip/tiny/table.json').read_text())
    assert table['rows'] == ['tiny', 'tiny, cell clip ×2']
    cells = {(c['row'], c['scale']): c['psnr'] for c in table['cells']}
    assert cells['tiny', 2] == cells['tiny, cell clip ×2', 2] and cells['tiny', 8] != cells['tiny, cell clip ×2', 8]


@pytest.mark.parametrize('env, message', [({'CLIP': 'x'}, "CLIP must be a scale"), ({'CLIP': '0.5'}, 'CLIP must be a scale'),
                                          ({'EVAL': 'set5'}, 'EVAL must be div2k or benchmark')])
def test_cell_clip_script_checks_its_settings_first(tmp_path, tiny_ckpt, env, message):
    code, out, err = _script(['scripts/lte-cell-clip.sh', str(tiny_ckpt)], tmp_path, RESULTS_ROOT=tmp_path / 'res', **env)
    assert code == 2 and err.startswith('error: ' + message) and err.count('\n') == 1, err
    assert not (tmp_path / 'res').exists()


def data_tag(path: Path) -> str:
    """The 8 hex digits eval_common.sh appends to a data root outside ./load."""
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]


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
    kind = script[len('test-'):-len('.sh')]
    assert f'`bash scripts/download_data.sh {kind}`' in err
    assert f'`python -m datasets.layout {tmp_path / "empty" / kind} {kind}`' in err
    assert 'DATA_ROOT=load/sample' in err and not (tmp_path / 'out/table.md').exists()


def _folders(tmp_path, models, data_root, **env) -> list[str]:
    """The results folder eval_common.sh gives each model (nothing is evaluated)."""
    code, out, err = _script(['-c', 'source scripts/eval_common.sh && pick_python && eval_parse "$@" && '
                                    'KIND=benchmark; WHERE=$(data_root_tag); FIXED_OUT_DIR=; '
                                    'for i in "${!MODELS[@]}"; do eval_model "${MODELS[$i]}" "${LABELS[$i]}" >/dev/null; '
                                    'echo "$OUT_DIR|$LABEL"; done', 'x', *map(str, models)],
                             tmp_path, DATA_ROOT=data_root, RESULTS_ROOT=tmp_path / 'res', **env)
    assert code == 0, err
    return out.split()


def test_results_of_two_runs_and_two_data_roots_go_to_their_own_folders(tmp_path):
    """<results root>/<run>/<checkpoint stem>/<script>-<data root>/: run-a and run-b never share a
    file, nor do two data roots with the same last component."""
    for run in ('run-a', 'run-b'):
        (tmp_path / run).mkdir()
        (tmp_path / run / 'epoch-last.pth').write_bytes(b'x')
    res = tmp_path / 'res'
    assert _folders(tmp_path, [tmp_path / 'run-a/epoch-last.pth', f"B={tmp_path / 'run-b/epoch-last.pth'}", 'bicubic'],
                    'load/sample') == [f'{res}/run-a/epoch-last/benchmark-sample|', f'{res}/run-b/epoch-last/benchmark-sample|B',
                                       f'{res}/bicubic/benchmark-sample|']
    one, two = tmp_path / 'a/data', tmp_path / 'b/data'
    for d in (one, two):
        d.mkdir(parents=True)
    (a,), (b,) = (_folders(tmp_path, ['bicubic'], d) for d in (one, two))
    assert a == f'{res}/bicubic/benchmark-data-{data_tag(one)}|' and b == f'{res}/bicubic/benchmark-data-{data_tag(two)}|'
    assert a != b
    assert _folders(tmp_path, [tmp_path / 'run-a/epoch-last.pth', 'cpu'], 'load') == \
        [f'{res}/run-a/epoch-last/benchmark-load|']  # the old form MODEL GPU
    assert not (ROOT / 'save/test/run-a').exists()


def test_several_models_need_results_root_not_out_dir(tmp_path):
    code, _, err = _script(['scripts/test-benchmark.sh', 'bicubic', 'bicubic'], tmp_path, OUT_DIR=tmp_path / 'o')
    assert code == 2 and err.startswith("error: OUT_DIR names one model's results folder")


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
