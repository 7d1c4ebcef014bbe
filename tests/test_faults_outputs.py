"""Faults around outputs: test.py --out and demo outputs that are inputs, folders that take no
files, full disks, stale temporary files; data-loader failures in test.py (tests/faults.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import demo
import utils.files
from faults import NORM, REPO, fill, one_line_error, run_test_py, test_cli
from utils.files import atomic_write_text, clean_stale_temps


# ---------------------------------------------------------------- test.py --out

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




# ---------------------------------------------------------------- data-loader failures

def eval_config(tmp_path: Path, folder: Path, batch_size: int = 1) -> Path:
    path = tmp_path / 'test.yaml'
    path.write_text(yaml.safe_dump({'test_dataset': {
        'dataset': {'name': 'image-folder', 'args': {'root_path': str(folder), 'cache': 'none'}},
        'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2}}, 'batch_size': batch_size},
        'data_norm': NORM}))
    return path


def test_a_corrupt_image_read_by_a_worker_is_one_line(tmp_path, tiny_ckpt):
    """Subprocess: the worker's exception travels back through the DataLoader as a traceback."""
    folder = tmp_path / 'imgs'
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.zeros((24, 20, 3), np.uint8)).save(folder / f"{i}.png")
    (folder / '1.png').write_bytes((folder / '1.png').read_bytes()[:40])
    proc = subprocess.run([sys.executable, str(REPO / 'test.py'), '--config', str(eval_config(tmp_path, folder)),
                           '--model', str(tiny_ckpt), '--workers', '2', '--quiet', '--gpu', 'cpu'],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(f'error: cannot read image {folder}/1.png: ')


@pytest.mark.parametrize('workers', [0, 1])
def test_a_batch_of_images_of_different_sizes_is_one_line(tmp_path, tiny_ckpt, capsys, workers):
    folder = tmp_path / 'imgs'
    folder.mkdir()
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(folder / 'a.png')
    Image.fromarray(np.zeros((14, 10, 3), np.uint8)).save(folder / 'b.png')
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_config(tmp_path, folder, batch_size=2)),
                                                '--model', str(tiny_ckpt), '--quiet', '--workers', str(workers)]),
                         capsys)
    assert 'test_dataset: the items of one batch differ in size' in err and 'batch_size 1' in err


def test_demo_removes_stale_temp_files_of_its_output(tmp_path, tiny_ckpt):
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    stale = tmp_path / '.out.png.k9_2abcd.tmp'  # a killed demo's, mode 0600
    stale.write_bytes(b'half a png')
    stale.chmod(0o600)
    os.utime(stale, (0, 0))
    demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '2', '--output', str(tmp_path / 'out.png')])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.png', 'out.png']


def test_outputs_that_are_inputs_by_hard_link_or_as_the_model_are_refused(eval_setup, tmp_path, tiny_ckpt, capsys):
    link = tmp_path / 'res.json'
    os.link(eval_setup['config'], link)
    before = eval_setup['config'].read_bytes()
    assert 'is the --config file itself' in one_line_error(lambda: run_test_py(eval_setup, '--out', link), capsys)
    assert eval_setup['config'].read_bytes() == before
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    model = tiny_ckpt.read_bytes()
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '2',
                                            '--output', str(tiny_ckpt)]), capsys)
    assert 'is the model checkpoint itself' in err and tiny_ckpt.read_bytes() == model


# ---------------------------------------------------------------- outputs are never data (round 3)

def paired_setup(tmp_path: Path, cache: str = 'none') -> dict:
    """A paired x2 test set (LR 12x10, HR 24x20) and its config."""
    rng = np.random.default_rng(0)
    for sub, (h, w) in (('lr', (12, 10)), ('hr', (24, 20))):
        (tmp_path / sub).mkdir()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / sub / 'a.png')
    config = tmp_path / 'paired.yaml'
    config.write_text(yaml.safe_dump({'test_dataset': {
        'dataset': {'name': 'paired-image-folders', 'args': {'root_path_1': str(tmp_path / 'lr'),
                                                             'root_path_2': str(tmp_path / 'hr'), 'cache': cache}},
        'wrapper': {'name': 'sr-implicit-paired', 'args': {}}, 'batch_size': 1}, 'eval_type': 'benchmark-2'}))
    return {'config': config, 'lr': tmp_path / 'lr' / 'a.png', 'hr': tmp_path / 'hr' / 'a.png'}


@pytest.mark.parametrize('target', ['hr', 'lr', 'new file in the data folder', 'cache file'])
def test_test_py_out_never_writes_into_the_data(tmp_path, capsys, target):
    setup = paired_setup(tmp_path, cache='bin')
    test_cli.main(['--config', str(setup['config']), '--model', 'bicubic', '--quiet'])  # builds the cache
    out = {'hr': setup['hr'], 'lr': setup['lr'], 'new file in the data folder': tmp_path / 'hr' / 'res.json',
           'cache file': tmp_path / '_bin_hr' / 'a.png.npy'}[target]
    before = {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()}
    err = one_line_error(lambda: test_cli.main(['--config', str(setup['config']), '--model', 'bicubic',
                                                '--quiet', '--out', str(out)]), capsys)
    assert '--out' in err and ('itself' in err or 'inside the' in err), err
    assert {p: p.read_bytes() for p in tmp_path.rglob('*') if p.is_file()} == before


def test_test_py_save_images_never_go_into_the_data(eval_setup, tmp_path, capsys):
    link = tmp_path / 'link'
    link.symlink_to(eval_setup['root'] / 'hr')
    for folder in (eval_setup['root'] / 'hr' / 'sr', link / 'sr', eval_setup['root']):
        err = one_line_error(lambda: run_test_py(eval_setup, '--save-images', folder), capsys)
        assert '--save-images' in err and ('inside the data folder' in err or 'holds the' in err), err
    assert sorted(p.name for p in (eval_setup['root'] / 'hr').iterdir()) == ['0.png', '1.png']


@pytest.mark.parametrize('out', ['sr', 'sr/0.png', 'sr/results.json'])
def test_test_py_out_never_goes_into_the_save_images_folder(eval_setup, tmp_path, capsys, monkeypatch, out):
    """Before: --out sr/0.png replaced the saved prediction 0.png with the JSON (exit 0), and --out
    equal to --save-images failed only after the whole evaluation."""
    monkeypatch.chdir(tmp_path)
    err = one_line_error(lambda: run_test_py(eval_setup, '--out', out, '--save-images', 'sr'), capsys)
    assert f'--out {out} is inside --save-images sr' in err, err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- --save-images names (round 3)

def test_unique_stems_rule():
    from utils.files import unique_stems
    assert unique_stems(['a', 'b']) == ['a', 'b']
    assert unique_stems(['a', 'a', 'a_1']) == ['a_2', 'a_3', 'a_1']
    assert unique_stems(['A', 'a', 'b', 'b']) == ['A_1', 'a_2', 'b_1', 'b_2']
    names = ['x', 'x', 'x_1', 'x_2', 'x_1_1', 'X']
    assert len({n.casefold() for n in unique_stems(names)}) == len(names)


@pytest.mark.parametrize('files', [['a.png', 'a.tif', 'a_1.png'], ['a.png', 'A.bmp', 'b.png']])
def test_save_images_never_loses_a_prediction(tmp_path, capsys, files):
    rng = np.random.default_rng(0)
    (tmp_path / 'hr').mkdir()
    for name in files:
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / 'hr' / name)
    cfg = eval_config(tmp_path, tmp_path / 'hr')
    test_cli.main(['--config', str(cfg), '--model', 'bicubic', '--quiet', '--save-images', str(tmp_path / 'sr')])
    saved = [p.read_bytes() for p in (tmp_path / 'sr').iterdir()]
    assert len(saved) == len(files) and len(set(saved)) == len(files)


# ---------------------------------------------------------------- the library keeps the CLI's promises (round 3)

def test_upscale_file_never_overwrites_its_input_or_model(tmp_path, tiny_ckpt):
    from inference.upscale import Upscaler
    from utils.errors import UserError
    up = Upscaler.load(tiny_ckpt, 'cpu')
    src = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(src)
    link = tmp_path / 'link.png'
    os.link(src, link)
    before = src.read_bytes()
    for dst, expect in ((src, 'is the input itself'), (link, 'is the input itself')):
        with pytest.raises(UserError, match=expect):
            up.upscale_file(src, dst, scale=2)
    assert src.read_bytes() == before
    copy = tmp_path / 'model.png'  # an image extension, so only the input check can stop it
    copy.write_bytes(tiny_ckpt.read_bytes())
    up2 = Upscaler.load(copy, 'cpu')
    with pytest.raises(UserError, match='is the model checkpoint itself'):
        up2.upscale_file(src, copy, scale=2)
    assert copy.read_bytes() == tiny_ckpt.read_bytes()
    with pytest.raises(UserError, match='unknown image extension'):
        up.upscale_file(tmp_path / 'missing.png', tmp_path / 'out.xyz', scale=2)  # before reading


# ---------------------------------------------------------------- output formats hold the image (round 3)

@pytest.mark.parametrize('name, expect', [
    ('out.icns', 'ICNS keeps sizes of its own'),
    ('out.pbm', 'holds black-and-white images only'),
    ('out.pgm', 'holds grey images only, and this one is RGB'),
    ('out.pdf', 'cannot be read back'),
])
def test_output_formats_that_cannot_hold_the_image_are_refused(tmp_path, tiny_ckpt, capsys, name, expect):
    inp = tmp_path / 'in.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '2', '--model', str(tiny_ckpt),
                                            '--output', str(tmp_path / name)]), capsys)
    assert expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.png']


@pytest.mark.parametrize('mode, name, want_mode', [
    ('L', 'out.pgm', 'L'), ('L', 'out.ppm', 'RGB'), ('RGB', 'out.ppm', 'RGB'),
    ('RGBA', 'out.bmp', 'RGB'), ('RGBA', 'out.ppm', 'RGB'), ('LA', 'out.pgm', 'L'),
])
def test_outputs_are_what_their_extension_means(tmp_path, tiny_ckpt, mode, name, want_mode):
    """.pgm holds grey, .ppm colour; a format that drops alpha says so (BMP and PPM used to drop it silently)."""
    n = len(mode)
    a = np.random.default_rng(0).integers(0, 256, (6, 5, n), dtype=np.uint8)
    inp = tmp_path / 'in.png'
    Image.fromarray(a[..., 0] if n == 1 else a, mode).save(inp)
    from inference.upscale import Upscaler
    (h, w), note = Upscaler.load(tiny_ckpt, 'cpu').upscale_file(inp, tmp_path / name, scale=2)
    out = Image.open(tmp_path / name)
    assert out.mode == want_mode and out.size == (w, h)
    assert (note is not None) == (mode != want_mode)
    if name.endswith(('.pgm', '.ppm')):
        assert (tmp_path / name).read_bytes()[:2] == {'L': b'P5', 'RGB': b'P6'}[want_mode]


# ---------------------------------------------------------------- numeric options of the scripts (round 3)

def test_test_py_workers_are_validated(eval_setup, capsys):
    for value, expect in (('-1', '--workers: expected an integer >= 0'), ('100000', '--workers: expected an integer <=')):
        assert expect in one_line_error(lambda: run_test_py(eval_setup, '--workers', value), capsys)


@pytest.mark.parametrize('flags, expect', [
    (['--zoom', '1000000'], 'megapixel limit'),
    (['--crop', '0,0,100000,100000'], 'megapixel limit'),
    (['--scale', '1000000'], 'too small to shrink by --scale 1e+06'),
    (['--scale', 'inf'], '--scale: expected a finite number'),
    (['--scale', 'nan'], '--scale: expected a finite number'),
    (['--out-ext', '.xyz'], 'unknown image extension'),
    (['--out-ext', '.icns'], 'ICNS keeps sizes of its own'),
])
def test_compare_crop_checks_before_rendering(tmp_path, tiny_ckpt, capsys, monkeypatch, flags, expect):
    from script_loader import load_script
    from inference.upscale import Upscaler
    compare = load_script('scripts/compare_crop.py', 'compare_crop_faults')
    monkeypatch.setattr(Upscaler, 'load', lambda *a, **k: pytest.fail('the model was loaded before the checks'))
    Image.fromarray(np.zeros((24, 24, 3), np.uint8)).save(tmp_path / 'hr.png')
    ext = flags[1] if flags[0] == '--out-ext' else '.png'
    flags = [] if flags[0] == '--out-ext' else flags
    base = {'--scale': '2', '--crop': '0,0,8,8'}
    for k, v in zip(flags[::2], flags[1::2]):
        base[k] = v
    argv = ['--model', str(tiny_ckpt), '--hr', str(tmp_path / 'hr.png'), '--out', str(tmp_path / f'fig{ext}'),
            *[x for kv in base.items() for x in kv], *[x for x in flags if x not in base and x not in base.values()]]
    assert expect in one_line_error(lambda: compare.main(argv), capsys)


# ---------------------------------------------------------------- scripts and temporary files (round 3)

def _bash(args, tmp_path, **env):
    proc = subprocess.run(['bash', *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **{k: str(v) for k, v in env.items()}})
    return proc.returncode, proc.stdout, proc.stderr


def test_eval_scripts_check_precision_out_dir_and_lock_before_moving_anything(tmp_path):
    import fcntl
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'old.json').write_text('{}')
    code, _, err = _bash(['scripts/test-benchmark.sh', 'bicubic'], tmp_path, OUT_DIR=out, PRECISION='fp33',
                         DATA_ROOT=tmp_path / 'none')
    assert code == 2 and err == "error: PRECISION must be fp32, bf16 or fp16, got 'fp33'\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out'] and (out / 'old.json').exists()
    (tmp_path / 'file').write_text('x')
    code, _, err = _bash(['scripts/test-div2k.sh', 'bicubic'], tmp_path, OUT_DIR=tmp_path / 'file')
    assert code == 2 and err.startswith('error: OUT_DIR') and err.count('\n') == 1, err
    code, _, err = _bash(['scripts/test-div2k.sh', 'bicubic'], tmp_path, OUT_DIR=tmp_path / 'file' / 'sub')
    assert code == 2 and err.startswith('error: cannot create the folder of OUT_DIR') and err.count('\n') == 1, err
    with open(tmp_path / '.out.lock', 'w') as lock:  # another evaluation into the same folder
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = _bash(['scripts/test-benchmark.sh', 'bicubic'], tmp_path, OUT_DIR=out)
    assert code == 2 and 'is in use by another evaluation script' in err, err
    assert (out / 'old.json').exists() and not list(tmp_path.glob('out.old-*'))


def test_eval_scripts_take_model_paths_starting_with_a_dash(tmp_path):
    (tmp_path / '-m.pth').write_bytes(b'x')
    proc = subprocess.run(['bash', '-c', f'source {REPO}/scripts/eval_common.sh && pick_python && eval_parse -m.pth '
                                         '&& KIND=benchmark RESULTS_ROOT=save/test WHERE=$(data_root_tag) '
                                         '&& eval_model "${MODELS[0]}" "" && echo "OUT=$OUT_DIR"'],
                          cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, 'DATA_ROOT': 'load/sample', 'PYTHON': sys.executable})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == 'OUT=save/test/-m/benchmark-sample'
    assert test_cli.parse_args(['--config', 'c.yaml', '--model=-m.pth']).model == '-m.pth'


def test_download_script_refuses_an_unknown_set(tmp_path):
    code, out, err = _bash(['scripts/download_data.sh', 'divk2'], tmp_path)
    assert code == 2 and 'done' not in out and err == "error: unknown data set 'divk2'; expected div2k, benchmark or all\n"


def test_a_second_writer_never_removes_the_first_ones_temporary_file(tmp_path, tiny_ckpt):
    """Each temporary file names its writer's pid: one of a running process is left alone."""
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        live = tmp_path / f'.out.png.{sleeper.pid}-ab12cd34.tmp'
        dead = tmp_path / '.out.png.999999999-ab12cd34.tmp'
        for p in (live, dead):
            p.write_bytes(b'half')
            os.utime(p, (0, 0))
        inp = tmp_path / 'in.png'
        Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
        demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '2', '--output', str(tmp_path / 'out.png')])
        assert live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.parametrize('entry', ['test.py', 'train_liif.py', 'demo.py', 'scripts/export_model.py',
                                   'scripts/compare_crop.py', 'scripts/results_table.py'])
def test_usage_errors_are_one_line_without_the_usage_block(entry):
    proc = subprocess.run([sys.executable, str(REPO / entry), '--no-such-flag'], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr


def test_a_huge_name_is_shortened_in_the_error_line(tmp_path, capsys):
    err = one_line_error(lambda: demo.main(['--input', 'x' * 4_000_000, '--scale', '2']), capsys)
    assert len(err) < 1000 and '4,000,000 characters' in err, err[:300]
