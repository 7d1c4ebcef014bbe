"""Faults in inputs: images that need care (one reader for datasets and demo), files claiming huge
sizes, impossible output sizes, hostile YAML (tests/faults.py)."""
import json
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageFile

import datasets
import demo
import train_liif
from faults import one_line_error, test_cli
from utils import images
from utils.config import load_yaml
from utils.errors import UserError
from utils.images import read_image


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

    Image.fromarray((np.arange(20 * 12).reshape(12, 20) * 200).astype(np.uint16)).save(tmp_path / 'a.png')
    datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    npy = tmp_path.parent / f'_bin_{tmp_path.name}' / 'a.png.npy'
    index = npy.parent / '_index.json'
    stamps = json.loads(index.read_text())
    np.save(npy, np.full((12, 20, 3), 255, np.uint8))  # what the clipping reader cached
    index.write_text(json.dumps({k: v['stamp'][:2] for k, v in stamps.items()}))  # its stamp had no version
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    assert ds[0].max() < 1


def test_wrong_shaped_bin_cache_file_is_one_line_naming_it(tmp_path):

    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'a.png')
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(tmp_path), 'cache': 'bin'}})
    npy = tmp_path.parent / f'_bin_{tmp_path.name}' / 'a.png.npy'
    np.save(npy, np.zeros((6, 5), np.float32))
    with pytest.raises(UserError, match=f'corrupt cache file {npy}: .*expected uint8') as e:
        ds[0]
    assert '\n' not in str(e.value)




# ---------------------------------------------------------------- demo.py sizes

def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC."""
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def zeros_png(path: Path, h: int, w: int) -> Path:
    """A PNG of h x w black pixels written row by row (a few hundred KB for 9000 x 9000)."""
    comp = zlib.compressobj(9)
    row = b'\0' * (1 + 3 * w)  # filter byte + RGB
    body = b''.join(comp.compress(row) for _ in range(h)) + comp.flush()
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                     + png_chunk(b'IDAT', body) + png_chunk(b'IEND', b''))
    return path


def test_a_small_file_claiming_a_huge_image_is_refused_before_decoding(tmp_path, tiny_ckpt, capsys, monkeypatch):
    inp = zeros_png(tmp_path / 'zeros.png', 9000, 9000)
    assert inp.stat().st_size < 400_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, 'load', lambda self: decoded.append(self.size) or real_load(self))
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '0.01', '--model', str(tiny_ckpt)]), capsys)
    assert '9000x9000' in err and f'{demo.MAX_INPUT_MEGAPIXELS}-megapixel budget' in err and '--force' in err
    assert (9000, 9000) not in decoded  # (the output format's small probe image may be decoded)


@pytest.mark.parametrize('flags, expect', [
    (['--scale', '1e300'], 'stores at most'),
    (['--scale', '1e300', '--force'], 'stores at most'),
    (['--scale', '1.7e308', '--force'], 'stores at most'),
    (['--scale', '60000', '--force'], 'memory of this machine'),
    (['--resolution', '70000,10', '--force', '--output', 'big.jpg'], 'JPEG stores at most 65,535'),
    (['--scale', '60', '--output', 'icon.ico'], 'ICO stores at most 256'),
])
def test_impossible_output_sizes_are_one_line(tmp_path, tiny_ckpt, capsys, monkeypatch, flags, expect):
    monkeypatch.setattr(images, 'physical_memory', lambda: 8 << 30)
    monkeypatch.chdir(tmp_path)
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--model', str(tiny_ckpt), *flags]), capsys)
    assert expect in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['in.png']


def test_ico_output_keeps_its_size(tmp_path, tiny_ckpt):
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((10, 6, 3), np.uint8)).save(inp)
    (out,) = demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '10', '--output', str(tmp_path / 'o.ico')])
    assert Image.open(out).size == (60, 100)




# ---------------------------------------------------------------- YAML

BOMB = ''.join(f'{k}: &{k} [{", ".join([f"*{p}"] * 9)}]\n' for p, k in zip('abcdefgh', 'bcdefghi'))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + BOMB


@pytest.fixture
def deadline():
    """Fail (instead of hanging the suite) when a test runs over 20 s."""
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
    path = tmp_path / 'cfg.yaml'
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.chdir(tmp_path)
    err = one_line_error(lambda: train_liif.main(['--config', str(path)]), capsys)
    assert expect in err and str(path) in err
    assert not (tmp_path / 'save').exists()


def test_aliases_and_merge_keys_within_limits_still_load(tmp_path):
    path = tmp_path / 'cfg.yaml'
    path.write_text('base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  y: 3\nsame: *b\n')
    assert load_yaml(path) == {'base': {'x': 1, 'y': [1, 2]}, 'other': {'x': 1, 'y': 3}, 'same': {'x': 1, 'y': [1, 2]}}
    path.write_text('\ufeffa: 1\n', encoding='utf-8')  # a byte-order mark is fine
    assert load_yaml(path) == {'a': 1}


def test_an_in_memory_cache_larger_than_the_machine_is_refused_before_decoding(tmp_path, monkeypatch):
    import datasets.image_store as store
    src = tmp_path / 'imgs'
    src.mkdir()
    for name, (h, w) in {'a.png': (12, 10), 'b.png': (30, 20)}.items():
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(src / name)
    spec = {'name': 'image-folder', 'args': {'root_path': str(src), 'cache': 'in_memory'}}
    decoded = []
    monkeypatch.setattr(store, 'read_image', lambda p: decoded.append(p) or np.zeros((1, 1, 3), np.uint8))
    monkeypatch.setattr(store, 'physical_memory', lambda: (12 * 10 + 30 * 20) * 3 - 1)  # one byte short
    with pytest.raises(UserError, match=r"cache in_memory for .*imgs: its 2 images decode to .* GiB, over the"):
        datasets.make(spec)
    assert decoded == []
    monkeypatch.setattr(store, 'physical_memory', lambda: (12 * 10 + 30 * 20) * 3)  # exactly fits
    assert len(datasets.make(spec)) == 2 and len(decoded) == 2


# ---------------------------------------------------------------- cache: bin checks content (round 3)

@pytest.mark.parametrize('how', ['cp -p', 'rsync -a', 'tar'])
def test_bin_cache_sees_a_file_replaced_with_its_size_and_mtime(tmp_path, monkeypatch, how):
    import os
    import shutil
    import subprocess
    import datasets.image_store as store
    src = tmp_path / 'imgs'
    src.mkdir()
    old, new = (np.full((12, 10, 3), v, np.uint8) for v in (10, 200))
    Image.fromarray(old).save(src / 'a.png', compress_level=0)
    Image.fromarray(old).save(src / 'b.png', compress_level=0)
    spec = {'name': 'image-folder', 'args': {'root_path': str(src), 'cache': 'bin'}}
    assert datasets.make(spec)[0].mul(255).round().max() == 10
    st = os.stat(src / 'a.png')
    other = tmp_path / 'other'
    other.mkdir()
    Image.fromarray(new).save(other / 'a.png', compress_level=0)
    assert os.stat(other / 'a.png').st_size == st.st_size
    os.utime(other / 'a.png', ns=(st.st_atime_ns, st.st_mtime_ns))
    if how == 'cp -p':  # overwrites in place: same inode, size and mtime
        subprocess.run(['cp', '-p', str(other / 'a.png'), str(src / 'a.png')], check=True)
    elif how == 'rsync -a':  # a new file renamed over the old one, times kept
        shutil.copy2(other / 'a.png', src / '.a.png.tmp')
        os.replace(src / '.a.png.tmp', src / 'a.png')
    else:  # extracted afresh
        (src / 'a.png').unlink()
        shutil.copy2(other / 'a.png', src / 'a.png')
    assert (os.stat(src / 'a.png').st_size, os.stat(src / 'a.png').st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    decoded = []
    real = store.read_image
    monkeypatch.setattr(store, 'read_image', lambda p: decoded.append(os.path.basename(p)) or real(p))
    ds = datasets.make(spec)
    assert ds[0].mul(255).round().min() == 200  # the new pixels, not the cached ones
    assert decoded == ['a.png']  # b.png was not decoded again
    os.chmod(src / 'b.png', 0o644)  # a new ctime, the same content: hashed, not decoded
    decoded.clear()
    datasets.make(spec)
    assert decoded == []


# ---------------------------------------------------------------- paired LR/HR sizes (round 3)

def paired_config(tmp_path: Path, lr_hw, hr_hw, eval_type='benchmark-2', name='a') -> Path:
    rng = np.random.default_rng(0)
    for sub, (h, w) in (('lr', lr_hw), ('hr', hr_hw)):
        (tmp_path / sub).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(tmp_path / sub / f'{name}.png')
    cfg = tmp_path / 'paired.yaml'
    cfg.write_text(yaml.safe_dump({'test_dataset': {
        'dataset': {'name': 'paired-image-folders', 'args': {'root_path_1': str(tmp_path / 'lr'),
                                                             'root_path_2': str(tmp_path / 'hr')}},
        'wrapper': {'name': 'sr-implicit-paired', 'args': {}}, 'batch_size': 1}, 'eval_type': eval_type}))
    return cfg


@pytest.mark.parametrize('lr_hw, hr_hw, eval_type', [
    ((24, 17), (48, 48), 'benchmark-2'),   # another aspect: HR used to be cropped silently
    ((12, 12), (48, 48), 'benchmark-2'),   # an x4 LR under X2: reported as x2
    ((48, 48), (48, 48), 'benchmark-2'),   # LR = HR: result inf
    ((48, 48), (48, 48), None),            # the same without a protocol scale
    ((16, 16), (48, 48), 'div2k-2'),       # x3 under x2
    ((25, 24), (48, 48), 'rgb-2'),         # one pixel too many
])
def test_paired_sizes_are_checked_against_the_protocol_scale(tmp_path, capsys, lr_hw, hr_hw, eval_type):
    cfg = paired_config(tmp_path, lr_hw, hr_hw, eval_type)
    err = one_line_error(lambda: test_cli.main(['--config', str(cfg), '--model', 'bicubic', '--quiet']), capsys)
    assert 'a.png' in err and ('is not HR' in err or 'no downscaled copy' in err), err


@pytest.mark.parametrize('lr_hw, hr_hw', [((12, 10), (24, 20)), ((12, 11), (25, 21)), ((12, 10), (25, 21))])
def test_paired_sizes_of_matlab_and_pil_rounding_are_accepted(tmp_path, lr_hw, hr_hw):
    """floor(H / s) (benchmark packs, PIL) and ceil(H / s) (MATLAB on the whole HR) LR sizes."""
    cfg = paired_config(tmp_path, lr_hw, hr_hw)
    row, = test_cli.main(['--config', str(cfg), '--model', 'bicubic', '--quiet'])['images']
    assert row['hr_size'] == [24, 20] and row['lr_size'] == [12, 10] and row['psnr'] < 40


def test_a_test_scale_too_close_to_1_is_refused(eval_setup, capsys):
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', 'bicubic',
                                                '--quiet', '--scale', '1.0001']), capsys)
    assert 'nothing to super-resolve' in err


# ---------------------------------------------------------------- one rule per image mode (round 3)

def png16(path: Path, a: np.ndarray) -> Path:
    """A 16-bit-per-channel PNG of uint16 a (H, W, C): C = 2 grey + alpha, 3 RGB, 4 RGBA; rows
    Paeth-filtered, so the decoder's unfiltering is exercised."""
    h, w, c = a.shape
    ctype = {2: 4, 3: 2, 4: 6}[c]
    raw = a.astype('>u2').view(np.uint8).reshape(h, w * c * 2).astype(np.int32)
    bpp = c * 2
    rows = []
    for y in range(h):
        cur, prev = raw[y], raw[y - 1] if y else np.zeros_like(raw[0])
        left = np.concatenate([np.zeros(bpp, np.int32), cur[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), prev[:-bpp]])
        p = left + prev - upleft
        pa, pb, pc = abs(p - left), abs(p - prev), abs(p - upleft)
        pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, upleft))
        rows.append(b'\x04' + ((cur - pred) % 256).astype(np.uint8).tobytes())
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, ctype, 0, 0, 0))
                     + png_chunk(b'IDAT', zlib.compress(b''.join(rows))) + png_chunk(b'IEND', b''))
    return path


def tiff16(path: Path, a: np.ndarray, compress: bool) -> Path:
    """A 16-bit RGB TIFF (uncompressed, or deflate-compressed through libtiff) of uint16 a (H, W, 3)."""
    h, w, spp = a.shape
    data = a.astype('<u2').tobytes()
    data = zlib.compress(data) if compress else data
    bps_off = 8 + len(data)
    entries = [(256, 4, 1, w), (257, 4, 1, h), (258, 3, spp, bps_off), (259, 3, 1, 8 if compress else 1),
               (262, 3, 1, 2), (273, 4, 1, 8), (277, 3, 1, spp), (278, 4, 1, h), (279, 4, 1, len(data))]
    bps = struct.pack('<' + 'H' * spp, *[16] * spp)
    ifd = struct.pack('<H', len(entries))
    for tag, typ, count, value in entries:
        v = struct.pack('<HH', value, 0) if typ == 3 and count == 1 else struct.pack('<I', value)
        ifd += struct.pack('<HHI', tag, typ, count) + v
    path.write_bytes(b'II*\x00' + struct.pack('<I', bps_off + len(bps)) + data + bps + ifd + struct.pack('<I', 0))
    return path


def read_both(path: Path) -> np.ndarray:
    """What demo.py and a dataset read from path (asserted equal): uint8 (H, W, 3)."""
    demo_rgb = read_image(path).rgb
    ds = datasets.make({'name': 'image-folder', 'args': {'root_path': str(path.parent)}})
    got = (ds[[Path(p).name for p in ds.store.paths].index(path.name)] * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(got, demo_rgb)
    return demo_rgb


def test_16_bit_colour_is_read_whole_as_16_bit_grey_is(tmp_path):
    """Before: 16-bit RGB kept only the high byte (v >> 8) while 16-bit grey was v / 257 rounded."""
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (9, 7, 4)).astype(np.uint16)
    want = np.round(a / 257).astype(np.uint8)
    folder = tmp_path / 'imgs'
    folder.mkdir()
    assert np.array_equal(read_both(png16(folder / 'rgb.png', a[..., :3])), want[..., :3])
    rgba = read_image(png16(folder / 'rgba.png', a))
    assert np.array_equal(rgba.rgb, want[..., :3]) and np.array_equal(rgba.alpha, want[..., 3])
    la = read_image(png16(folder / 'la.png', a[..., :2]))
    assert la.gray and np.array_equal(la.rgb[..., 0], want[..., 0]) and np.array_equal(la.alpha, want[..., 1])
    for compress in (False, True):
        assert np.array_equal(read_both(tiff16(folder / f'rgb{compress:d}.tif', a[..., :3], compress)), want[..., :3])
    Image.fromarray(a[..., 0]).save(folder / 'gray.png')
    assert np.array_equal(read_both(folder / 'gray.png')[..., 0], want[..., 0])


def test_float_and_32_bit_images_are_read_by_their_range(tmp_path):
    """Before: a float TIFF in [0, 1] and an int32 TIFF of 8-bit values came out black."""
    rng = np.random.default_rng(1)
    u8 = rng.integers(0, 256, (9, 7)).astype(np.uint8)
    folder = tmp_path / 'imgs'
    folder.mkdir()
    cases = {'unit.tif': (u8 / 255).astype(np.float32), 'f255.tif': u8.astype(np.float32),
             'i8.tif': u8.astype(np.int32), 'i16.tif': u8.astype(np.int32) * 257}
    for name, arr in cases.items():
        Image.fromarray(arr).save(folder / name)
        assert np.array_equal(read_both(folder / name)[..., 0], u8), name
    from utils.images import split_channels
    assert np.array_equal(split_channels(Image.fromarray(u8.astype(np.int32))).rgb[..., 0], u8)  # a PIL 'I' image
    for name, arr, expect in (('neg.tif', np.full((3, 3), -1, np.float32), 'negative values'),
                              ('big.tif', np.full((3, 3), 300, np.float32), 'values up to 300'),
                              ('nan.tif', np.full((3, 3), np.nan, np.float32), 'NaN'),
                              ('i32.tif', np.full((3, 3), 70000, np.int32), 'beyond 16 bits')):
        Image.fromarray(arr).save(tmp_path / name)
        with pytest.raises(UserError, match=expect) as e:
            read_image(tmp_path / name)
        assert name in str(e.value)
@pytest.mark.parametrize('image, expect', [
    (np.full((6, 5, 3), 200.0), 'outside \\[0, 1\\]'),
    (np.full((6, 5), -0.5, np.float32), 'outside \\[0, 1\\]'),
    (np.full((6, 5, 3), np.nan), 'NaN or inf'),
    (np.full((6, 5, 3), 7, np.int64), 'unsupported pixel type int64'),
    (np.full((6, 5, 3), 7, np.int16), 'unsupported pixel type int16'),
    ('in.png', 'expected an image'),
    (np.zeros((6, 5, 2)), 'expected shape'),
])
def test_the_library_refuses_pixels_it_would_clip(tiny_ckpt, image, expect):
    from inference.upscale import Upscaler
    up = Upscaler.load(tiny_ckpt, 'cpu')
    with pytest.raises(UserError, match=expect):
        up(image, scale=2)


def test_the_library_reads_uint16_bool_and_half_tensors_by_the_rules(tiny_ckpt):
    import torch
    from inference.upscale import as_loaded
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, (6, 5, 3)).astype(np.uint8)
    assert np.array_equal(as_loaded((u8.astype(np.uint16) * 257)).rgb, u8)
    assert np.array_equal(as_loaded(np.eye(4, dtype=bool)).rgb[..., 0], np.eye(4, dtype=np.uint8) * 255)
    t = torch.from_numpy(u8).permute(2, 0, 1).to(torch.bfloat16) / 255
    assert np.abs(as_loaded(t).rgb.astype(int) - u8).max() <= 1


# ---------------------------------------------------------------- the library validates its options (round 3)

@pytest.mark.parametrize('options, expect', [
    ({'bsize': -1}, 'Upscaler: bsize: expected an integer >= 1'),
    ({'bsize': 0}, 'Upscaler: bsize: expected an integer >= 1'),
    ({'bsize': 2.5}, 'Upscaler: bsize: expected an integer'),
    ({'bsize': True}, 'Upscaler: bsize: expected an integer'),
    ({'bsize': 10 ** 12}, 'Upscaler: bsize: expected an integer <='),
    ({'tile': 1}, 'Upscaler: tile: expected 0 .* at least 9 pixels'),
    ({'tile': -5}, 'Upscaler: tile: expected an integer >= 0'),
    ({'window': 8}, 'has no attention window'),
    ({'window': 10 ** 8}, 'an integer from 1 to 256'),
    ({'precision': 'fp8'}, 'precision must be one of'),
    ({'progress': 'no'}, 'Upscaler: progress: expected true or false'),
])
def test_upscaler_options_are_validated(tiny_ckpt, options, expect):
    from inference.upscale import Upscaler
    with pytest.raises(UserError, match=expect):
        Upscaler.load(tiny_ckpt, 'cpu', **options)
    up = Upscaler.load(tiny_ckpt, 'cpu')
    for key, value in options.items():
        setattr(up, key, value)  # changed after construction: checked by the next render
    with pytest.raises(UserError, match=expect):
        up(np.zeros((6, 5, 3), np.uint8), scale=2)


@pytest.mark.parametrize('kwargs, expect', [
    ({'scale': 'x2'}, "scale: expected a number, got 'x2'"),
    ({'scale': np.array([2.0, 3.0])}, 'scale: expected a number'),
    ({'scale': float('nan')}, 'scale: expected a finite number'),
    ({'scale': -2}, 'scale: expected a number > 0'),
    ({'scale': 1e300}, 'stores at most'),
    ({'scale': (2, 3, 4)}, 'expected a number or two'),
    ({'resolution': (float('nan'), 5)}, r'resolution\[0\]: expected an integer'),
    ({'resolution': (10 ** 6, 10 ** 6)}, 'over the 500-megapixel limit'),
    ({'resolution': (0, 5)}, r'resolution\[0\]: expected an integer >= 1'),
    ({'resolution': 12}, 'resolution: expected \\(H, W\\)'),
])
def test_upscale_arguments_are_validated(tiny_ckpt, kwargs, expect):
    import torch
    from inference.upscale import Upscaler
    up = Upscaler.load(tiny_ckpt, 'cpu')
    with pytest.raises(UserError, match=expect):
        up(np.zeros((6, 5, 3), np.uint8), **kwargs)
    if isinstance(kwargs.get('scale'), str):
        with pytest.raises(UserError, match='scale: expected a number'):
            up(np.zeros((6, 5, 3), np.uint8), scale=torch.tensor(2.0))


def test_paths_and_option_names_of_the_library_are_checked(tiny_ckpt, tmp_path):
    """Before: TypeErrors (a path that is None or a number, an unknown option, protect not a mapping)."""
    from inference.upscale import Upscaler
    up = Upscaler.load(tiny_ckpt, 'cpu')
    src = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(src)
    for call, expect in (
            (lambda: up.upscale_file(None, tmp_path / 'o.png', scale=2), 'upscale_file: src: expected a file path'),
            (lambda: up.upscale_file(src, 123, scale=2), 'upscale_file: dst: expected a file path'),
            (lambda: up.upscale_file(src, tmp_path / 'o.png', scale=2, protect=5), 'protect: expected a mapping'),
            (lambda: Upscaler.load(5), 'Upscaler.load: checkpoint: expected a file path'),
            (lambda: Upscaler.load(tiny_ckpt, 'cpu', bsise=5), "unknown option 'bsise'; expected one of precision")):
        with pytest.raises(UserError, match=expect):
            call()
    assert not (tmp_path / 'o.png').exists()


def test_upscale_takes_numpy_scalars_and_names_device_in_its_messages(tiny_ckpt, monkeypatch):
    import torch
    from inference.upscale import Upscaler
    up = Upscaler.load(tiny_ckpt, torch.device('cpu'))
    img = np.zeros((6, 5, 3), np.uint8)
    assert up(img, scale=np.float32(2)).shape == up(img, scale=np.int64(2)).shape == (12, 10, 3)
    assert up(img, resolution=(np.int64(7), 9)).shape == (7, 9, 3)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    for device in ('cuda', 'cuda:0', '0'):
        with pytest.raises(UserError, match=r"^device .* asks for CUDA, .* \(use device='cpu'\)$"):
            Upscaler.load(tiny_ckpt, device)


# ---------------------------------------------------------------- windows and tiles are bounded (round 3)

@pytest.mark.parametrize('flags, expect', [
    (['--window', '200'], 'has no attention window'),
    (['--window', '100000000'], 'an integer from 1 to 256'),
    (['--tile', '1'], 'tile: expected 0 (never tile) or at least'),
    (['--tile', '-1'], '--tile must be 0 (never tile) or a size in pixels, got -1'),  # was taken as 0
    (['--bsize', '100000000000'], '--bsize must be from 1 to 16777216'),
])
def test_window_and_tile_are_bounded(tmp_path, tiny_ckpt, capsys, flags, expect):
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((64, 96, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--model', str(tiny_ckpt), '--scale', '2',
                                            '--output', str(tmp_path / 'o.png'), *flags]), capsys)
    assert expect in err and not (tmp_path / 'o.png').exists()


def test_the_window_padded_input_counts_against_the_budget(tmp_path, tiny_ckpt):
    from inference.upscale import Upscaler
    up = Upscaler.load(tiny_ckpt, 'cpu')
    up.model.encoder.window_size = 64  # as a window encoder has: 6x5 pads to 64x64
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    with pytest.raises(UserError, match='padded to the window 64 is 64x64 pixels, over the 0.001-megapixel budget'):
        up.upscale_file(inp, tmp_path / 'o.png', scale=2, max_input_megapixels=0.001)
    assert up.upscale_file(inp, tmp_path / 'o.png', scale=2, max_input_megapixels=0.01)[0] == (12, 10)


# ---------------------------------------------------------------- careless inputs (round 3)

def test_demo_skips_hidden_files_of_a_folder_as_datasets_do(tmp_path, tiny_ckpt):
    (tmp_path / 'photos').mkdir()
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'photos' / 'a.png')
    (tmp_path / 'photos' / '._a.png').write_bytes(b'\x00\x05\x16\x07 macOS resource fork')
    (tmp_path / 'photos' / '.hidden.png').write_bytes(b'junk')
    outs = demo.main(['--input', str(tmp_path / 'photos'), '--model', str(tiny_ckpt), '--scale', '2',
                      '--output', str(tmp_path / 'out') + '/'])
    assert [p.name for p in outs] == ['a_x2.png']


def test_a_corrupt_exif_block_reads_without_a_warning(tmp_path):
    import warnings
    path = tmp_path / 'bad_exif.jpg'
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(
        path, 'JPEG', exif=b'Exif\x00\x00II*\x00\x08\x00\x00\x00\x09\x00\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00')
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter('always')
        img = read_image(path)
        images.image_size(path)
    assert img.rgb.shape == (4, 4, 3) and seen == []


def png_with_chunk_after_pixels(path: Path, a: np.ndarray, kind: bytes, data: bytes) -> Path:
    """An 8-bit RGB PNG of `a` with the chunk (kind, data) between its pixels and IEND."""
    h, w = a.shape[:2]
    rows = b''.join(b'\0' + a[y].tobytes() for y in range(h))
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                     + png_chunk(b'IDAT', zlib.compress(rows)) + png_chunk(kind, data) + png_chunk(b'IEND', b''))
    return path


@pytest.mark.parametrize('kind, data', [
    (b'eXIf', None),  # EXIF after the pixels
    (b'iTXt', b'XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>'),
])
def test_image_size_reads_an_orientation_that_follows_the_pixels(tmp_path, kind, data):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: read as (W, H)
    a = np.random.default_rng(0).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    path = png_with_chunk_after_pixels(tmp_path / 'late.png', a, kind, data or exif.tobytes())
    assert images.image_size(path) == read_image(path).rgb.shape[:2] == (9, 5)


def test_image_size_reads_headers_only_and_finds_a_png_cut_short(tmp_path):
    """Before: PIL's PNG getexif() decoded every image, so the dry run decoded the whole dataset
    (0.18 s per DIV2K image); pixels that do not decode do not stop a size read, a cut file does."""
    a = np.random.default_rng(0).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / 'a.png')
    png = (tmp_path / 'a.png').read_bytes()
    start = png.index(b'IDAT') + 4
    (tmp_path / 'garbled.png').write_bytes(png[:start + 20] + b'\xff' * 200 + png[start + 220:])
    assert images.image_size(tmp_path / 'garbled.png') == (40, 30)
    with pytest.raises(UserError, match='cannot decode the image'):
        read_image(tmp_path / 'garbled.png')
    (tmp_path / 'cut.png').write_bytes(png[:len(png) // 2])
    with pytest.raises(UserError, match=r"cut.png \(image file is truncated: its 'IDAT' chunk of \d+ bytes"):
        images.image_size(tmp_path / 'cut.png')
    (tmp_path / 'no_end.png').write_bytes(png[:-12])
    with pytest.raises(UserError, match='ends before its IEND chunk'):
        images.image_size(tmp_path / 'no_end.png')
