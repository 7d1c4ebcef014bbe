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


# ---------------------------------------------------------------- one image reader

def hostile_images(folder: Path) -> dict:
    """Files whose decoding needs care, and the 8-bit RGB pixels each must read as."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    want = {}
    g16 = rng.integers(0, 65536, (12, 10)).astype(np.uint16)
    Image.fromarray(g16).save(folder / 'gray16.png')
    g8 = np.clip(np.round(g16 / 257), 0, 255).astype(np.uint8)
    want['gray16.png'] = np.repeat(g8[:, :, None], 3, axis=2)
    pal = Image.fromarray(rgb).quantize(16)
    pal.save(folder / 'palette.png', transparency=0)
    want['palette.png'] = np.asarray(pal.convert('RGB'))
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, (12, 10), dtype=np.uint8)]), 'RGBA').save(folder / 'rgba.png')
    want['rgba.png'] = rgb
    cmyk = Image.fromarray(rgb).convert('CMYK')
    cmyk.save(folder / 'cmyk.jpg', quality=100)
    want['cmyk.jpg'] = np.asarray(Image.open(folder / 'cmyk.jpg').convert('RGB'))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(folder / 'rotated.jpg', exif=exif, quality=100)
    want['rotated.jpg'] = np.rot90(np.asarray(Image.open(folder / 'rotated.jpg').convert('RGB')), -1)
    return want


@pytest.mark.parametrize('cache', ['none', 'in_memory', 'bin'])
def test_datasets_and_demo_read_the_same_pixels(tmp_path, cache):
    import datasets
    from utils.images import read_image

    want = hostile_images(tmp_path / 'imgs')
    folder = datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path / 'imgs'), 'cache': cache}})
    for i, name in enumerate(sorted(want)):
        assert folder.describe(i).endswith(name)
        got = (folder[i] * 255).round().byte().permute(1, 2, 0).numpy()
        demo_rgb = read_image(tmp_path / 'imgs' / name).rgb
        assert np.array_equal(got, demo_rgb), name
        assert np.array_equal(got, want[name]), name


def test_a_16_bit_test_image_scores_as_its_8_bit_copy(tmp_path):
    """Before: the dataset reader clipped 16-bit values, so every pixel was white."""
    rng = np.random.default_rng(1)
    g16 = (rng.integers(0, 256, (24, 20)) * 257).astype(np.uint16)
    scores = {}
    for depth, arr in (('16', g16), ('8', (g16 // 257).astype(np.uint8))):
        (tmp_path / depth).mkdir()
        Image.fromarray(arr).save(tmp_path / depth / 'a.png')
        cfg = tmp_path / f'{depth}.yaml'
        cfg.write_text(yaml.safe_dump({'test_dataset': {
            'dataset': {'name': 'image-folder', 'args': {'root_path': str(tmp_path / depth)}},
            'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2}}, 'batch_size': 1}}))
        scores[depth] = test_cli.main(['--config', str(cfg), '--model', 'bicubic', '--quiet'])['mean']['psnr']
    assert scores['16'] == scores['8'] and scores['8'] < 40


def test_bin_cache_built_by_an_older_reader_is_rebuilt(tmp_path):
    import datasets

    Image.fromarray((np.arange(20 * 12).reshape(12, 20) * 200).astype(np.uint16)).save(tmp_path / 'a.png')
    datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    npy = tmp_path.parent / f'_bin_{tmp_path.name}' / 'a.png.npy'
    index = npy.parent / '_index.json'
    stamps = json.loads(index.read_text())
    np.save(npy, np.full((12, 20, 3), 255, np.uint8))  # what the clipping reader cached
    index.write_text(json.dumps({k: v[:2] for k, v in stamps.items()}))  # its stamp had no version
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    assert ds[0].max() < 1


def test_wrong_shaped_bin_cache_file_is_one_line_naming_it(tmp_path):
    import datasets
    from utils.errors import UserError

    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'a.png')
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    npy = tmp_path.parent / f'_bin_{tmp_path.name}' / 'a.png.npy'
    np.save(npy, np.zeros((6, 5), np.float32))
    with pytest.raises(UserError, match=f'corrupt cache file {npy}: .*expected uint8') as e:
        ds[0]
    assert '\n' not in str(e.value)


# ---------------------------------------------------------------- hostile checkpoints

def flip_bit_in_weights(src: Path, dst: Path) -> None:
    """Copy src to dst with one bit flipped in the first tensor's data (an exponent bit of its
    first float: the weight becomes huge or tiny, and torch.load alone does not notice)."""
    import struct
    import zipfile

    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if '/data/' in i.filename and not i.filename.endswith('.pkl'))
    n, m = struct.unpack('<HH', data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + n + m + 3] ^= 0x40
    dst.write_bytes(bytes(data))


def test_a_flipped_bit_is_refused_naming_the_file(eval_setup, tmp_path, capsys):
    from utils.checkpoints import load_checkpoint
    from utils.errors import UserError

    bad = tmp_path / 'flipped.pth'
    flip_bit_in_weights(eval_setup['ckpt'], bad)
    # torch.load alone loads it, with a different weight
    a = torch.load(eval_setup['ckpt'], weights_only=True)['model']['sd']
    b = torch.load(bad, weights_only=True)['model']['sd']
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(UserError, match=f'{bad}: damaged checkpoint, .* fails its checksum'):
        load_checkpoint(bad)
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', str(bad),
                                                '--quiet']), capsys)
    assert 'damaged checkpoint' in err
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(eval_setup['ckpt'].read_bytes()[:-100])
    with pytest.raises(UserError, match=f'{truncated}: damaged checkpoint'):
        load_checkpoint(truncated)


def non_finite_checkpoint(path: Path, value: float) -> Path:
    model = models.make(TINY_LIIF)
    sd = model.state_dict()
    sd['imnet.layers.0.weight'][0, 0] = value
    save_checkpoint({'model': {**TINY_LIIF, 'sd': sd}}, path)
    return path


@pytest.mark.parametrize('value', [float('nan'), float('inf')])
def test_non_finite_weights_are_refused_by_test_py_and_demo(eval_setup, tmp_path, capsys, value):
    import demo

    ckpt = non_finite_checkpoint(tmp_path / 'nan.pth', value)
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', str(ckpt),
                                                '--quiet']), capsys)
    assert 'imnet.layers.0.weight hold NaN or inf' in err
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '2', '--model', str(ckpt),
                                            '--output', str(tmp_path / 'out.png')]), capsys)
    assert 'hold NaN or inf' in err and not (tmp_path / 'out.png').exists()


def test_test_py_refuses_a_plain_encoder_checkpoint(eval_setup, tmp_path, capsys):
    spec = {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8}}
    save_checkpoint({'model': {**spec, 'sd': models.make(spec).state_dict()}}, tmp_path / 'enc.pth')
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model',
                                                str(tmp_path / 'enc.pth'), '--quiet']), capsys)
    assert 'not an implicit image function' in err


def test_a_render_with_nan_predictions_is_never_written(tmp_path, capsys, monkeypatch):
    """Finite weights, yet NaN predictions (an overflow, a hostile input): refused, nothing written."""
    import demo
    from inference.render import render
    from inference.norm import DataNorm
    from utils.errors import UserError

    model = models.make(TINY_LIIF).eval()
    real_query = model.query_rgb
    model.query_rgb = lambda coord, cell: real_query(coord, cell) * float('nan')
    with pytest.raises(UserError, match=r'NaN or inf for 20 of 20 pixels'):
        render(model, torch.rand(1, 3, 2, 5), (4, 5), DataNorm.from_config(NORM))
    ckpt = tmp_path / 'tiny.pth'
    save_checkpoint({'model': {**TINY_LIIF, 'sd': models.make(TINY_LIIF).state_dict()}}, ckpt)
    real_load = demo.load_renderer

    def poisoned(path, device):
        m, norm = real_load(path, device)
        q = m.query_rgb
        m.query_rgb = lambda coord, cell: q(coord, cell) * float('nan')
        return m, norm
    monkeypatch.setattr(demo, 'load_renderer', poisoned)
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '2', '--model', str(ckpt),
                                            '--output', str(tmp_path / 'out.png')]), capsys)
    assert 'not written' in err and not (tmp_path / 'out.png').exists()


# ---------------------------------------------------------------- demo.py sizes

@pytest.fixture(scope='module')
def tiny_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    save_checkpoint({'model': {**TINY_LIIF, 'sd': models.make(TINY_LIIF).state_dict()}}, path)
    return path


def zeros_png(path: Path, h: int, w: int) -> Path:
    """A PNG of h x w black pixels written row by row (a few hundred KB for 9000 x 9000)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    comp = zlib.compressobj(9)
    row = b'\0' * (1 + 3 * w)  # filter byte + RGB
    body = b''.join(comp.compress(row) for _ in range(h)) + comp.flush()
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                     + chunk(b'IDAT', body) + chunk(b'IEND', b''))
    return path


def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path, tiny_ckpt, capsys, monkeypatch):
    import demo
    from PIL import ImageFile

    inp = zeros_png(tmp_path / 'zeros.png', 9000, 9000)
    assert inp.stat().st_size < 400_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, 'load', lambda self: decoded.append(1) or real_load(self))
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '0.01', '--model', str(tiny_ckpt)]), capsys)
    assert '9000x9000' in err and f'{demo.MAX_INPUT_MEGAPIXELS}-megapixel budget' in err and '--force' in err
    assert decoded == []


@pytest.mark.parametrize('flags, expect', [
    (['--scale', '1e300'], 'stores at most'),
    (['--scale', '1e300', '--force'], 'stores at most'),
    (['--scale', '1.7e308', '--force'], 'stores at most'),
    (['--scale', '60000', '--force'], 'memory of this machine'),
    (['--resolution', '70000,10', '--force', '--output', 'big.jpg'], 'JPEG stores at most 65,535'),
    (['--scale', '60', '--output', 'icon.ico'], 'ICO stores at most 256'),
])
def test_impossible_output_sizes_are_one_line(tmp_path, tiny_ckpt, capsys, monkeypatch, flags, expect):
    import demo
    from utils import images

    monkeypatch.setattr(images, 'physical_memory', lambda: 8 << 30)
    monkeypatch.chdir(tmp_path)
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--model', str(tiny_ckpt), *flags]), capsys)
    assert expect in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.png']


def test_ico_output_keeps_its_size(tmp_path, tiny_ckpt):
    import demo

    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((10, 6, 3), np.uint8)).save(inp)
    out = demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '10', '--output', str(tmp_path / 'o.ico')])
    assert Image.open(out).size == (60, 100)


# ---------------------------------------------------------------- YAML

BOMB = ''.join(f'{k}: &{k} [{", ".join([f"*{p}"] * 9)}]\n' for p, k in zip('abcdefgh', 'bcdefghi'))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) when a test runs over 20 s."""
    import signal

    def timeout(signum, frame):
        raise TimeoutError('over 20 s: hangs')
    old = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize('text, expect', [
    (BOMB, 'alias bomb'),
    ('a: &a [1, *a]\n', 'self-referencing alias'),
    ('a: &a {b: *a}\n', 'self-referencing alias'),
    ('optimizer: {name: adam, args: {lr: 1.0e-4}}\nepoch_max: 2\nepoch_max: 3\n', "line 3: duplicate key 'epoch_max'"),
    ('x: ' + '[' * 200 + ']' * 200 + '\n', 'deeper than'),
    ('x: ' + '[' * 5000 + ']' * 5000 + '\n', 'not valid YAML'),
    (b'epoch_max: 2\nname: caf\xe9\n', 'not UTF-8 text (byte 0xe9 at offset 22)'),
    ('x: "\x00"\n', 'not valid YAML'),
])
def test_hostile_yaml_is_one_line(tmp_path, capsys, monkeypatch, deadline, text, expect):
    import train_liif

    path = tmp_path / 'cfg.yaml'
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.chdir(tmp_path)
    err = one_line_error(lambda: train_liif.main(['--config', str(path)]), capsys)
    assert expect in err and str(path) in err
    assert not (tmp_path / 'save').exists()


def test_aliases_and_merge_keys_within_limits_still_load(tmp_path):
    from utils.config import load_yaml

    path = tmp_path / 'cfg.yaml'
    path.write_text('base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  y: 3\nsame: *b\n')
    assert load_yaml(path) == {'base': {'x': 1, 'y': [1, 2]}, 'other': {'x': 1, 'y': 3}, 'same': {'x': 1, 'y': [1, 2]}}
    path.write_text('\ufeffa: 1\n', encoding='utf-8')  # a byte-order mark is fine
    assert load_yaml(path) == {'a': 1}


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
    import demo

    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    stale = tmp_path / '.out.png.k9_2abcd.tmp'  # a killed demo's, mode 0600
    stale.write_bytes(b'half a png')
    stale.chmod(0o600)
    os.utime(stale, (0, 0))
    demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '2', '--output', str(tmp_path / 'out.png')])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.png', 'out.png']
