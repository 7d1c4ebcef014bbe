"""demo.py: output sizes and names, every input mode, output formats, and every bad input; the
library API and the side-by-side figure script built on the same rendering."""
import math
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import demo
import inference.upscale as upscale_module
import models
from inference.upscale import BUNDLED_MODEL as BUNDLED
from inference.options import output_size
from inference.upscale import Upscaler, upscale
from script_loader import load_script
from tiny import edsr_spec, liif_spec, tiny_checkpoint
from utils import files as file_io
from utils import images as image_io
from utils.checkpoints import save_checkpoint
from utils.errors import UserError, run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def ckpt(tmp_path_factory) -> Path:
    """A tiny random LIIF checkpoint in the released format."""
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    tiny_checkpoint(path, liif_spec(hidden=(16,)))
    return path


def rgb_array(h: int = 7, w: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def run(argv) -> Path:
    """main(argv) as the command line runs it, for one input; returns the output path."""
    (out,) = demo.main([str(a) for a in argv])
    return out


def fails(argv, capsys) -> str:
    """Run argv through run_cli; assert exit status 2 and one line on stderr; return it."""
    capsys.readouterr()  # earlier runs' progress bars (shown when a band takes over a second)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: demo.main([str(a) for a in argv]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


# ---------------------------------------------------------------- sizes and names

def test_output_size_rounds_half_up_and_keeps_one_pixel():
    assert output_size((7, 9), scale=(2.5, 2.5)) == (18, 23)
    assert output_size((7, 9), scale=(0.5, 0.5)) == (4, 5)
    assert output_size((7, 9), scale=(3.7, 3.7)) == (26, 33)
    assert output_size((7, 9), scale=(0.01, 0.01)) == (1, 1)
    assert output_size((256, 256), scale=(30, 30)) == (7680, 7680)
    assert output_size((7, 9), resolution=(20, 11)) == (20, 11)


def test_parse_scale_and_resolution():
    assert demo.parse_scale('30') == (30.0, 30.0)
    assert demo.parse_scale('2, 3.5') == (2.0, 3.5)
    assert demo.parse_resolution('1080,1920') == demo.parse_resolution('1080x1920') == (1080, 1920)
    assert demo.parse_resolution('1080X1920') == (1080, 1920)


@pytest.mark.parametrize('flags, hw, name', [
    (['--scale', '2.5'], (18, 23), 'lr_x2.5.png'),
    (['--scale', '2,3'], (14, 27), 'lr_x2x3.png'),
    (['--scale', '0.5'], (4, 5), 'lr_x0.5.png'),
    (['--resolution', '20,11'], (20, 11), 'lr_20x11.png'),
])
def test_output_sizes_and_default_names(tmp_path, ckpt, flags, hw, name):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    out = run(['--input', inp, '--model', ckpt, *flags])
    assert out == tmp_path / name
    with Image.open(out) as img:
        assert (img.height, img.width) == hw and img.mode == 'RGB'


def test_default_name_keeps_a_writable_extension_else_png(tmp_path):
    assert demo.default_output(tmp_path / 'a.JPG', (3, 3), None).name == 'a_x3.jpg'
    assert demo.default_output(tmp_path / 'a.gif', (3, 3), None).name == 'a_x3.png'


# ---------------------------------------------------------------- input modes

def render_file(tmp_path, ckpt, img: Image.Image, name: str, scale='2', out='out.png', **kw) -> Image.Image:
    inp = save(img, tmp_path / name, **kw)
    path = run(['--input', inp, '--model', ckpt, '--scale', scale, '--output', tmp_path / out])
    out_img = Image.open(path)
    out_img.load()
    return out_img


def test_rgb(tmp_path, ckpt):
    out = render_file(tmp_path, ckpt, Image.fromarray(rgb_array()), 'a.png')
    assert out.mode == 'RGB' and out.size == (18, 14)


def test_grayscale_is_rendered_through_rgb_and_saved_as_l(tmp_path, ckpt):
    gray = rgb_array()[:, :, 0]
    out = render_file(tmp_path, ckpt, Image.fromarray(gray, 'L'), 'g.png')
    assert out.mode == 'L' and out.size == (18, 14)
    as_rgb = render_file(tmp_path, ckpt, Image.fromarray(np.repeat(gray[:, :, None], 3, 2)),
                         'g3.png', out='o3.png')
    assert np.array_equal(np.asarray(out), np.asarray(as_rgb.convert('L')))


def test_16_bit_grayscale_is_scaled_to_8_bits(tmp_path, ckpt):
    gray16 = np.random.default_rng(1).integers(0, 65536, (7, 9), dtype=np.uint16)
    img16 = Image.fromarray(gray16)
    assert img16.mode == 'I;16'
    out = render_file(tmp_path, ckpt, img16, 'g16.png')
    assert out.mode == 'L' and out.size == (18, 14)
    gray8 = np.round(gray16 / 257).astype(np.uint8)
    ref = render_file(tmp_path, ckpt, Image.fromarray(gray8, 'L'), 'g8.png', out='o8.png')
    assert np.array_equal(np.asarray(out), np.asarray(ref))


@pytest.mark.parametrize('mode', ['RGBA', 'LA'])
def test_alpha_is_upscaled_bicubically_and_reattached(tmp_path, ckpt, mode):
    rgb = rgb_array()
    alpha = np.random.default_rng(2).integers(0, 256, (7, 9), dtype=np.uint8)
    img = Image.fromarray(rgb).convert(mode[0] if mode == 'LA' else 'RGB')
    img.putalpha(Image.fromarray(alpha, 'L'))
    out = render_file(tmp_path, ckpt, img, 'a.png', scale='3')
    assert out.mode == mode and out.size == (27, 21)
    want = Image.fromarray(alpha, 'L').resize((27, 21), Image.BICUBIC)
    assert np.array_equal(np.asarray(out.getchannel('A')), np.asarray(want))


def test_palette_without_and_with_transparency(tmp_path, ckpt):
    pal = Image.fromarray(rgb_array()).quantize(16)
    assert pal.mode == 'P'
    assert render_file(tmp_path, ckpt, pal, 'p.png').mode == 'RGB'
    out = render_file(tmp_path, ckpt, pal, 'pt.png', out='pt_out.png', transparency=0)
    assert out.mode == 'RGBA' and out.size == (18, 14)
    alpha = np.asarray(out.getchannel('A'))
    assert alpha.min() < 255 and alpha.max() == 255


def test_exif_orientation_is_honoured(tmp_path, ckpt):
    rgb = rgb_array()  # stored 7 rows x 9 cols
    exif = Image.Exif()
    exif[0x0112] = 6  # displayed rotated 90 degrees clockwise: 9 rows x 7 cols
    out = render_file(tmp_path, ckpt, Image.fromarray(rgb), 'r.png', exif=exif)
    assert out.size == (14, 18)  # (W, H) of the upright image, times 2
    upright = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=-1)))
    ref = render_file(tmp_path, ckpt, upright, 'u.png', out='u_out.png')
    assert np.array_equal(np.asarray(out), np.asarray(ref))


@pytest.mark.parametrize('ext, fmt', [('.jpg', 'JPEG'), ('.webp', 'WEBP'), ('.tif', 'TIFF'), ('.bmp', 'BMP')])
def test_output_format_follows_the_extension(tmp_path, ckpt, ext, fmt):
    out = render_file(tmp_path, ckpt, Image.fromarray(rgb_array()), 'a.png', out='o' + ext)
    assert out.format == fmt and out.size == (18, 14)


def test_jpeg_output_drops_alpha_with_a_note(tmp_path, ckpt, capsys):
    img = Image.fromarray(rgb_array()).convert('RGBA')
    out = render_file(tmp_path, ckpt, img, 'a.png', out='o.jpg')
    assert out.format == 'JPEG' and out.mode == 'RGB'
    assert 'transparency dropped' in capsys.readouterr().err


# ---------------------------------------------------------------- bad input

def corrupt_png(path: Path) -> Path:
    buf = path.with_suffix('.full.png')
    Image.fromarray(rgb_array(40, 40)).save(buf)
    data = buf.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def zero_width_png(path: Path) -> Path:
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))
    ihdr = struct.pack('>IIBBBBB', 0, 5, 8, 2, 0, 0, 0)  # width 0, height 5, 8-bit RGB
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', zlib.compress(b''))
                     + chunk(b'IEND', b''))
    return path


def assert_nothing_written(folder: Path, before: set) -> None:
    assert set(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize('case, expect', [
    ('missing', 'input not found'),
    ('corrupt', 'cannot decode'),
    ('text', 'not an image'),
    ('zero', 'not an image'),
])
def test_bad_input_files(tmp_path, ckpt, capsys, case, expect):
    inp = tmp_path / 'in.png'
    if case == 'corrupt':
        corrupt_png(inp)
    elif case == 'text':
        inp.write_text('hello, not a picture\n')
    elif case == 'zero':
        zero_width_png(inp)
    before = set(p.name for p in tmp_path.iterdir())
    err = fails(['--input', inp, '--model', ckpt, '--scale', '2', '--output', tmp_path / 'o.png'], capsys)
    assert expect in err
    assert_nothing_written(tmp_path, before)


def test_empty_image_is_refused():
    from utils.images import split_channels
    with pytest.raises(UserError, match='empty'):
        split_channels(Image.new('RGB', (0, 4)))


@pytest.mark.parametrize('flags, expect', [
    (['--scale', '0'], 'positive'),
    (['--scale', '-2'], 'positive'),
    (['--scale', 'abc'], 'numbers'),
    (['--scale', 'nan'], 'positive finite'),
    (['--scale', 'inf'], 'positive finite'),
    (['--scale', '1,2,3'], '1 or 2'),
    (['--resolution', '0,5'], 'positive'),
    (['--resolution', '5'], "2 numbers separated by 'x' or ','"),
    (['--resolution', 'a,b'], 'numbers'),
    (['--resolution', '2.5,3'], 'numbers'),
    ([], 'required'),
    (['--scale', '2', '--resolution', '4,4'], 'not allowed'),
    (['--scale', '10000'], 'megapixel limit'),
    (['--scale', '2', '--bsize', '0'], '--bsize'),
    (['--scale', '2', '--precision', 'fp16', '--gpu', 'cpu'], 'fp16 needs a CUDA'),
    (['--scale', '2', '--precision', 'fp8'], 'invalid choice'),
])
def test_bad_flags(tmp_path, ckpt, capsys, flags, expect):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    before = set(p.name for p in tmp_path.iterdir())
    err = fails(['--input', inp, '--model', ckpt, '--output', tmp_path / 'o.png', *flags], capsys)
    assert expect in err
    assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize('output, expect', [
    ('missing_dir/o.png', 'folder does not exist'),
    ('lr.png/o.png', 'folder does not exist'),  # a file where a folder should be
    ('o.xyz', "unknown image extension '.xyz'"),
    ('o', 'no file extension'),
    ('lr.png', 'is the input itself'),
])
def test_bad_output_paths(tmp_path, ckpt, capsys, output, expect):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    (tmp_path / 'sub').mkdir()
    before = set(p.name for p in tmp_path.iterdir())
    stamp = inp.stat().st_mtime_ns
    err = fails(['--input', inp, '--model', ckpt, '--scale', '2', '--output', tmp_path / output], capsys)
    assert expect in err
    assert_nothing_written(tmp_path, before)
    assert inp.stat().st_mtime_ns == stamp


def test_an_existing_folder_as_output_receives_the_derived_name(tmp_path, ckpt):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    (tmp_path / 'sub').mkdir()
    assert run(['--input', inp, '--model', ckpt, '--scale', '2', '--output', tmp_path / 'sub']) == tmp_path / 'sub/lr_x2.png'


def test_bad_checkpoints(tmp_path, capsys):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    tiny_checkpoint(tmp_path / 'enc.pth', edsr_spec(n_feats=4))
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint')
    before = set(p.name for p in tmp_path.iterdir())
    for ckpt, expect in [('enc.pth', 'not an implicit image function'), ('junk.pth', 'junk.pth'),
                         ('none.pth', 'checkpoint not found')]:
        err = fails(['--input', inp, '--model', tmp_path / ckpt, '--scale', '2'], capsys)
        assert expect in err
    assert_nothing_written(tmp_path, before)


def test_missing_default_model_says_to_pass_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(upscale_module, 'BUNDLED_MODEL', tmp_path / 'pretrained' / 'none.pth')
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    assert '--model' in fails(['--input', inp, '--scale', '2'], capsys)


def test_failed_write_leaves_the_previous_output_untouched(tmp_path, ckpt, capsys, monkeypatch):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    out = tmp_path / 'o.png'
    out.write_bytes(b'previous')

    def broken_fsync(fd):  # called after PIL wrote the image into the temporary file
        raise OSError('disk full')
    monkeypatch.setattr(file_io.os, "fsync", broken_fsync)
    before = set(p.name for p in tmp_path.iterdir())
    assert 'disk full' in fails(['--input', inp, '--model', ckpt, '--scale', '2', '--output', out, '--overwrite'], capsys)
    assert out.read_bytes() == b'previous'
    assert_nothing_written(tmp_path, before)


@pytest.mark.parametrize('args, expect', [
    (['--input', 'no/such.png', '--scale', '2'], 'input not found'),
    (['--input', 'demo.py', '--scale', '2', '--output', 'x.png'], 'not an image'),
])
def test_command_line_errors_have_no_traceback(tmp_path, ckpt, args, expect):
    proc = subprocess.run([sys.executable, str(REPO / 'demo.py'), '--model', str(ckpt), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith('error: ') and expect in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and 'Traceback' not in proc.stderr
    assert not (REPO / 'x.png').exists()


def test_command_line_success(tmp_path, ckpt):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    proc = subprocess.run([sys.executable, str(REPO / 'demo.py'), '--input', str(inp), '--model',
                           str(ckpt), '--scale', '3.7'], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert 'lr_x3.7.png' in proc.stdout
    with Image.open(tmp_path / 'lr_x3.7.png') as img:
        assert img.size == (33, 26)


def test_tiled_encoding_gives_the_same_image(tmp_path, ckpt):
    inp = save(Image.fromarray(rgb_array(23, 30)), tmp_path / 'lr.png')
    whole = run(['--input', inp, '--model', ckpt, '--scale', '1.5', '--tile', '0', '--output', tmp_path / 'a.png'])
    tiled = run(['--input', inp, '--model', ckpt, '--scale', '1.5', '--tile', '9', '--output', tmp_path / 'b.png'])
    a, b = (np.asarray(Image.open(p)).astype(int) for p in (whole, tiled))
    assert a.shape == (35, 45, 3)
    assert np.abs(a - b).max() <= 1 and (a == b).mean() > 0.99


# ---------------------------------------------------------------- many inputs, quality, library


def test_many_inputs_folders_and_globs_into_an_output_folder(tmp_path, ckpt, capsys):
    (tmp_path / 'photos').mkdir()
    for i in range(3):
        save(Image.fromarray(rgb_array(seed=i)), tmp_path / 'photos' / f'p{i}.png')
    save(Image.fromarray(rgb_array(5, 6)), tmp_path / 'one.jpg', quality=95)
    (tmp_path / 'scans').mkdir()
    save(Image.fromarray(rgb_array(4, 4)), tmp_path / 'scans' / 's.bmp')
    outs = demo.main(['--input', str(tmp_path / 'photos'), str(tmp_path / 'one.jpg'), str(tmp_path / 'scans' / '*.bmp'),
                      '--scale', '2', '--model', str(ckpt), '--output', str(tmp_path / 'out')])
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == sorted(p.name for p in outs) == [
        'one_x2.jpg', 'p0_x2.png', 'p1_x2.png', 'p2_x2.png', 's_x2.bmp']
    assert Image.open(tmp_path / 'out' / 'one_x2.jpg').size == (12, 10)
    # One bad file among good ones: the others are written, then one line names how many failed.
    (tmp_path / 'photos' / 'p1.png').write_bytes(b'not a png')
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: demo.main([str(a) for a in ['--input', tmp_path / 'photos', '--scale', '2', '--model', ckpt,
                                                    '--output', tmp_path / 'out2']]))
    errors = [line.split('\r')[-1] for line in capsys.readouterr().err.splitlines() if 'error: ' in line]
    assert e.value.code == 2 and errors == [
        f"error: cannot read input {tmp_path / 'photos/p1.png'}: not an image PIL can read (or an empty/corrupt one)",
        'error: 1 of 3 inputs failed (each named above); the others were written']
    assert sorted(p.name for p in (tmp_path / 'out2').iterdir()) == ['p0_x2.png', 'p2_x2.png']
    assert fails(['--input', tmp_path / 'nothing-*.png', '--scale', '2', '--model', ckpt], capsys) == \
        f"error: input pattern {str(tmp_path / 'nothing-*.png')!r} matches no file"


def test_quality_of_lossy_outputs(tmp_path, ckpt, capsys):
    inp = save(Image.fromarray(rgb_array(32, 32)), tmp_path / 'in.png')
    sizes = {}
    for q in (10, 95):
        out = run(['--input', inp, '--model', ckpt, '--scale', '4', '--quality', q, '--output', tmp_path / f'q{q}.jpg'])
        sizes[q] = out.stat().st_size
    assert sizes[10] < sizes[95]
    capsys.readouterr()  # the renders' progress (shown when one takes over a second)
    assert fails(['--input', inp, '--model', ckpt, '--scale', '2', '--quality', '0'], capsys) == \
        'error: --quality must be from 1 to 100, got 0'


def test_library_upscales_arrays_pil_images_and_files(tmp_path, ckpt):
    """The one-call API renders what demo.py renders, from an array, a PIL image or a file."""
    img = rgb_array(6, 5)
    up = Upscaler.load(ckpt, 'cpu')
    out = up(img, scale=3)
    assert out.dtype == np.uint8 and out.shape == (18, 15, 3)
    assert np.array_equal(up(img.astype(np.float32) / 255, scale=3), out)
    pil = up(Image.fromarray(img), resolution=(10, 7))
    assert isinstance(pil, Image.Image) and pil.size == (7, 10)
    inp = save(Image.fromarray(img), tmp_path / 'in.png')
    assert np.array_equal(np.asarray(Image.open(run(['--input', inp, '--model', ckpt, '--scale', '3']))), out)
    assert np.array_equal(upscale(img, 3, checkpoint=ckpt, device='cpu'), out)
    gray = up(img[:, :, 0], scale=2)
    assert gray.shape == (12, 10)
    with pytest.raises(UserError, match='exactly one of scale and resolution'):
        up(img)
    with pytest.raises(UserError, match='the image array: expected shape'):
        up(np.zeros((4, 4, 2), np.uint8), scale=2)


def test_readme_library_example_runs():
    """The README's library example, run as written (from the repository root)."""
    readme = (REPO / 'README.md').read_text()
    start = readme.index('**As a library**')
    code = readme[readme.index('```python\n', start) + len('```python\n'):readme.index('```\n', readme.index('```python\n', start))]
    scope: dict = {}
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        exec(compile(code, 'README.md', 'exec'), scope)
    finally:
        os.chdir(cwd)
    assert scope['lr'].shape == (64, 96, 3)
    assert scope['x4'].shape == (256, 384, 3) and scope['x4'].dtype == np.uint8
    assert scope['wide'].size == (300, 100) and scope['x2'].shape == (128, 192, 3)


def test_compare_crop_figure(tmp_path):
    """scripts/compare_crop.py: three captioned panels of the crop; the PSNRs are the crops' own."""
    compare = load_script('scripts/compare_crop.py', 'compare_crop')
    hr = skdata.astronaut()[100:196, 180:276]  # (96, 96, 3)
    save(Image.fromarray(hr), tmp_path / 'hr.png')
    psnrs = compare.main(['--model', str(BUNDLED), '--hr', str(tmp_path / 'hr.png'), '--scale', '4',
                          '--crop', '10,20,30,40', '--zoom', '2', '--out', str(tmp_path / 'fig.png'), '--gpu', 'cpu'])
    fig = Image.open(tmp_path / 'fig.png')
    assert fig.size == (3 * 80 + 2 * compare.GAP, 60 + compare.CAPTION)
    assert list(psnrs) == ['bicubic', 'edsr-baseline-liif-sample']
    psnrs['model'] = psnrs['edsr-baseline-liif-sample']
    lr = Image.fromarray(hr).resize((24, 24), Image.BICUBIC)
    bicubic = np.asarray(lr.resize((96, 96), Image.BICUBIC))[10:40, 20:60]
    assert psnrs['bicubic'] == pytest.approx(compare.crop_psnr(bicubic, hr[10:40, 20:60]))
    assert math.isfinite(psnrs['model']) and psnrs['model'] > 20
    # The ground-truth panel is the crop itself, enlarged 2x.
    assert np.array_equal(np.asarray(fig)[:60:2, 2 * (80 + compare.GAP):2 * (80 + compare.GAP) + 80:2], hr[10:40, 20:60])
    # Several models: one panel each, in order, named; the same model twice gives the same PSNR.
    several = compare.main(['--model', f'A={BUNDLED}', '--model', f'B={BUNDLED}', '--hr', str(tmp_path / 'hr.png'),
                            '--scale', '4', '--crop', '10,20,30,40', '--out', str(tmp_path / 'fig4.png'), '--gpu', 'cpu'])
    assert list(several) == ['bicubic', 'A', 'B'] and several['A'] == several['B'] == psnrs['model']
    assert Image.open(tmp_path / 'fig4.png').width == 4 * 120 + 3 * compare.GAP
    with pytest.raises(UserError, match='names must differ'):
        compare.main(['--model', str(BUNDLED), '--model', str(BUNDLED), '--hr', str(tmp_path / 'hr.png'), '--scale',
                      '4', '--crop', '10,20,30,40', '--out', str(tmp_path / 'f3.png'), '--gpu', 'cpu'])
    with pytest.raises(UserError, match='reaches beyond the 96x96'):
        compare.main(['--hr', str(tmp_path / 'hr.png'), '--scale', '4', '--crop', '90,0,10,10', '--out',
                      str(tmp_path / 'f2.png'), '--gpu', 'cpu'])


def test_png_compression_level(tmp_path, ckpt, capsys):
    inp = save(Image.fromarray(rgb_array(32, 32)), tmp_path / 'in.png')
    sizes = {lvl: run(['--input', inp, '--model', ckpt, '--scale', '4', '--png-compression', lvl,
                       '--output', tmp_path / f'l{lvl}.png']).stat().st_size for lvl in (0, 9)}
    assert sizes[0] > sizes[9]
    assert np.array_equal(np.asarray(Image.open(tmp_path / 'l0.png')), np.asarray(Image.open(tmp_path / 'l9.png')))
    assert fails(['--input', inp, '--model', ckpt, '--scale', '2', '--png-compression', '10'], capsys) == \
        'error: --png-compression must be from 0 to 9, got 10'


def test_demo_starts_without_importing_torchvision():
    """torchvision takes about a second to import; only building a SwinIR (its DropPath) needs it."""
    code = 'import sys, demo; print("torchvision" in sys.modules)'
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.stdout.strip() == 'False', proc.stderr
