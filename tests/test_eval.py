"""test.py end to end on a small benchmark-style folder built in tmp_path from real photos."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import models
from datasets.resize import imresize_matlab_uint8
from datasets import spec_inputs
from inference.eval_config import rewrite_data_root
from inference.evaluate import as_images, image_shape
from inference.metrics import parse_eval_type, psnr
from training import trainer
from training.config import check_train_config
from utils.checkpoints import save_checkpoint
from utils.config import load_yaml
from utils.coords import make_cell, make_coord, to_pixel_samples
from utils.errors import UserError
from script_loader import load_script
from tiny import liif_spec, save_release, tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]
cli = load_script('test.py', 'liif_test_cli')

NORM = {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}


def _photos() -> dict:
    """Two real photos as uint8 (H, W, 3), one non-square so a transposed reshape shows."""
    astronaut = skdata.astronaut()[40:168, 180:308]  # (128, 128, 3)
    camera = np.repeat(skdata.camera()[100:228, 200:304, None], 3, axis=2)  # (128, 104, 3)
    return {'astronaut': np.ascontiguousarray(astronaut), 'camera': np.ascontiguousarray(camera)}


def test_as_images_rebuilds_whole_images_and_flattens_samples():
    img = torch.rand(2, 3, 12, 9)
    q = torch.stack([to_pixel_samples(im)[1] for im in img])  # (2, 108, 3)
    cell = make_cell((12, 9), torch.zeros(2, 108, 2))
    hw = image_shape(cell, 108, parse_eval_type('div2k-3'))
    assert hw == (12, 9) and torch.equal(as_images(q, hw), img)
    assert image_shape(cell[:, :100], 100, parse_eval_type(None)) is None
    flat = as_images(q, None)
    assert flat.shape == (2, 3, 1, 108)
    assert torch.allclose(psnr(flat, flat + 0.1), torch.full((2,), 20.0, dtype=torch.float64))
    with pytest.raises(UserError, match='remove sample_q'):
        image_shape(cell[:, :100], 100, parse_eval_type('div2k-3'))
    with pytest.raises(UserError, match='remove sample_q'):
        image_shape(cell[:, :100], 100, parse_eval_type(None), whole=True)


@pytest.fixture(scope='module')
def bench(tmp_path_factory) -> Path:
    """<root>/benchmark/Tiny/{HR, LR_bicubic/X2, LR_bicubic/X4}, the EDSR pack's layout."""
    root = tmp_path_factory.mktemp('data')
    set_root = root / 'benchmark' / 'Tiny'
    for name, hr in _photos().items():
        (set_root / 'HR').mkdir(parents=True, exist_ok=True)
        Image.fromarray(hr).save(set_root / 'HR' / f'{name}.png')
        for s in (2, 4):
            (set_root / 'LR_bicubic' / f'X{s}').mkdir(parents=True, exist_ok=True)
            Image.fromarray(imresize_matlab_uint8(hr, scale=1 / s)).save(
                set_root / 'LR_bicubic' / f'X{s}' / f'{name}x{s}.png')
    return root


def _config(tmp_path: Path, s: int, eval_type='benchmark', eval_bsize=1000, set_name='Tiny',
            name=None) -> str:
    cfg = {'test_dataset': {'dataset': {'name': 'paired-image-folders', 'args': {
        'root_path_1': f'./load/benchmark/{set_name}/LR_bicubic/X{s}',
        'root_path_2': f'./load/benchmark/{set_name}/HR'}},
        'wrapper': {'name': 'sr-implicit-paired', 'args': {}}, 'batch_size': 1},
        'eval_bsize': eval_bsize, 'data_norm': NORM}
    if eval_type:
        cfg['eval_type'] = f'{eval_type}-{s}' if '-' not in eval_type else eval_type
    path = tmp_path / (name or f'test-{s}.yaml')
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _identity_nearest(path: Path) -> None:
    """A LIIF without decoder over an identity encoder: it renders nearest-neighbour upsampling."""
    spec = liif_spec(n_feats=3, hidden=None)
    model = models.make(spec)
    sd = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    sd['encoder.head.0.weight'][:, :, 1, 1] = torch.eye(3)
    for k in ('encoder.sub_mean', 'encoder.add_mean'):  # unused in forward, kept as released
        sd[f'{k}.weight'] = model.state_dict()[f'{k}.weight']
        sd[f'{k}.bias'] = model.state_dict()[f'{k}.bias']
    save_release(path, spec, sd)


def _run(argv, tmp_path: Path) -> dict:
    out = tmp_path / 'res.json'
    cli.main([*argv, '--out', str(out), '--gpu', 'cpu', '--quiet'])
    return json.loads(out.read_text())


def _y(img: np.ndarray) -> np.ndarray:
    return 16 + (65.738 * img[..., 0] + 129.057 * img[..., 1] + 25.064 * img[..., 2]) / 256


def test_nearest_model_pins_layout_and_normalisation(bench, tmp_path):
    """HR = nearest x2 of LR, plus a known error: test.py's PSNR must be exactly the hand value."""
    root = tmp_path / 'd'
    lr = (np.random.default_rng(0).random((20, 28, 3)) * 255).round().astype(np.uint8)
    hr = lr.repeat(2, axis=0).repeat(2, axis=1)  # (40, 56, 3): what nearest x2 renders
    hr[10:14, 20:30, 1] += 10  # 40 pixels of the green channel off by 10 / 255 ...
    hr[:2, :, :] = 0  # ... and the border, which rgb-2 crops away
    for sub, img in (('HR', hr), ('LR_bicubic/X2', lr)):
        (root / 'benchmark/N' / sub).mkdir(parents=True)
    Image.fromarray(hr).save(root / 'benchmark/N/HR/a.png')
    Image.fromarray(lr).save(root / 'benchmark/N/LR_bicubic/X2/ax2.png')
    _identity_nearest(tmp_path / 'nearest.pth')
    cfg = _config(tmp_path, 2, eval_type='rgb', eval_bsize=333, set_name='N')
    res = _run(['--config', cfg, '--model', str(tmp_path / 'nearest.pth'), '--data-root', str(root)], tmp_path)
    mse = 40 * (10 / 255) ** 2 / (3 * 36 * 52)
    assert res['images'][0]['psnr'] == pytest.approx(-10 * math.log10(mse), abs=1e-4)
    assert res['images'][0]['hr_size'] == [40, 56] and res['images'][0]['lr_size'] == [20, 28]


@pytest.mark.parametrize('eval_type', ['benchmark', None])
def test_tiny_liif_matches_an_independent_render(bench, tmp_path, eval_type):
    """Per-image PSNR/SSIM of test.py (chunked queries) == one unchunked forward scored by skimage."""
    torch.manual_seed(1)
    model = tiny_checkpoint(tmp_path / 'tiny.pth', liif_spec(), epoch=1)
    res = _run(['--config', _config(tmp_path, 4, eval_type, eval_bsize=777),
                '--model', str(tmp_path / 'tiny.pth'), '--data-root', str(bench)], tmp_path)
    photos = _photos()
    assert [Path(r['name'].split(' / ')[1]).stem for r in res['images']] == sorted(photos)
    for row in res['images']:
        hr = photos[Path(row['name'].split(' / ')[1]).stem].astype(np.float64)
        lr = np.asarray(Image.open(row['name'].split(' / ')[0]), dtype=np.float32) / 255
        inp = (torch.from_numpy(lr).permute(2, 0, 1)[None] - 0.5) / 0.5  # (1, 3, h, w)
        h, w = hr.shape[:2]
        coord = make_coord((h, w))[None]
        with torch.no_grad():
            pred = model(inp, coord, make_cell((h, w), coord))  # (1, H*W, 3)
        pred = (pred[0] * 0.5 + 0.5).clamp(0, 1).view(h, w, 3).double().numpy() * 255
        crop = 4 if eval_type else 0
        p, g = (_y(pred), _y(hr)) if eval_type == 'benchmark' else (pred, hr)
        if crop:
            p, g = p[crop:-crop, crop:-crop], g[crop:-crop, crop:-crop]
        kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
        want_ssim = (structural_similarity(g, p, **kw) if p.ndim == 2 else
                     np.mean([structural_similarity(g[..., c], p[..., c], **kw) for c in range(3)]))
        assert row['psnr'] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=255), abs=1e-4)
        assert row['ssim'] == pytest.approx(want_ssim, abs=1e-4)


def test_bicubic_on_real_photos_and_json(bench, tmp_path, capsys):
    res = {}
    for s in (2, 4):
        out = tmp_path / f'bicubic-{s}.json'
        cli.main(['--config', _config(tmp_path, s), '--model', 'bicubic', '--data-root', str(bench),
                  '--out', str(out), '--quiet'])
        lines = capsys.readouterr().out.strip().splitlines()
        res[s] = json.loads(out.read_text())
        assert lines[-1] == f"result: {res[s]['mean']['psnr']:.4f}"
        assert lines[-2] == f"ssim: {res[s]['mean']['ssim']:.4f}"
    assert res[2]['mean']['psnr'] > res[4]['mean']['psnr'] + 3
    assert res[2]['mean']['ssim'] > res[4]['mean']['ssim'] + 0.05
    r = res[2]
    assert (r['model'], r['eval_type'], r['scale'], r['border'], r['luminance']) == ('bicubic', 'benchmark-2', 2, 2, True)
    assert r['num_images'] == 2 and len(r['images']) == 2
    assert r['mean']['psnr'] == pytest.approx(np.mean([i['psnr'] for i in r['images']]))
    assert r['mean']['ssim'] == pytest.approx(np.mean([i['ssim'] for i in r['images']]))
    assert r['dataset']['dataset']['args']['root_path_2'] == str(bench / 'benchmark/Tiny/HR')
    # The baseline is PIL's bicubic on the 8-bit LR, scored on Y with a border of 2.
    first = r['images'][0]
    lr = Image.open(first['name'].split(' / ')[0])
    hr = np.asarray(Image.open(first['name'].split(' / ')[1]), dtype=np.float64)
    up = np.asarray(lr.resize((hr.shape[1], hr.shape[0]), Image.Resampling.BICUBIC), dtype=np.float64)
    want = peak_signal_noise_ratio(_y(hr)[2:-2, 2:-2], _y(up)[2:-2, 2:-2], data_range=255)
    assert first['psnr'] == pytest.approx(want, abs=1e-4)
    assert 25 < first['psnr'] < 45


def test_rewrite_data_root():
    spec = {'dataset': {'args': {'root_path_1': './load/benchmark/Set5/LR', 'root_path_2': 'load/x',
                                 'split_file': '/abs/load/s.json', 'first_k': 3}}}
    got = rewrite_data_root(spec, 'load/sample')
    assert got['dataset']['args'] == {'root_path_1': 'load/sample/benchmark/Set5/LR',
                                      'root_path_2': 'load/sample/x', 'split_file': '/abs/load/s.json',
                                      'first_k': 3}
    assert rewrite_data_root(spec, None) == spec
    assert spec['dataset']['args']['root_path_2'] == 'load/x'  # the input is not mutated
    assert sorted(spec_inputs(got).values()) == ['/abs/load/s.json', 'load/sample/benchmark/Set5/LR', 'load/sample/x']
    got['dataset']['args']['cache'] = 'bin'
    assert {'load/sample/_bin_x', 'load/sample/benchmark/Set5/_bin_LR'} < set(spec_inputs(got).values())
    assert len(spec_inputs(got, caches=False)) == 3


def _cli(*argv, env=None):
    return subprocess.run([sys.executable, str(ROOT / 'test.py'), *argv], cwd=ROOT,
                          capture_output=True, text=True, env=env)


def test_missing_dataset_and_bad_eval_type_are_one_line_errors(bench, tmp_path, capsys):
    cfg = _config(tmp_path, 2, set_name='Nowhere')
    r = _cli('--config', cfg, '--model', 'bicubic', '--data-root', str(bench))
    assert r.returncode == 2 and r.stdout == ''
    assert r.stderr.strip().splitlines() == [
        f"error: dataset folder not found: {bench / 'benchmark/Nowhere/LR_bicubic/X2'} "
        f"(config {cfg}, data root {bench}); get it with `bash scripts/download_data.sh benchmark` (it writes to "
        f"load/), check it with `python -m datasets.layout {bench / 'benchmark'} benchmark`"]
    bad = _config(tmp_path, 2, eval_type='benchmark-two', name='bad.yaml')
    with pytest.raises(SystemExit) as e:
        cli.run_cli(lambda: cli.main(['--config', bad, '--model', 'bicubic', '--data-root', str(bench)]))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: eval_type must be') and "'benchmark-two'" in err[0]


def test_sampled_wrapper_is_refused(bench, tmp_path):
    cfg = yaml.safe_load(Path(_config(tmp_path, 2)).read_text())
    cfg['test_dataset']['wrapper']['args'] = {'sample_q': 100}
    path = tmp_path / 'sampled.yaml'
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(cli.UserError, match='sample_q'):
        cli.main(['--config', str(path), '--model', 'bicubic', '--data-root', str(bench), '--quiet'])


def test_training_validation_reports_what_test_py_reports(bench, tmp_path):
    """One evaluation: a run validated on the Tiny set (whole images, benchmark-2, chunked queries)
    logs the PSNR that test.py then reports for its epoch-last checkpoint on the same data."""
    test_config = yaml.safe_load(Path(_config(tmp_path, 2)).read_text())
    val = rewrite_data_root(test_config['test_dataset'], str(bench))
    raw = load_yaml(ROOT / 'configs/train-sample/train_tiny-liif.yaml')
    raw['train_dataset']['dataset'] = {'name': 'image-folder', 'args': {'root_path': str(bench / 'benchmark/Tiny/HR')}}
    raw.update(val_dataset=val, eval_type='benchmark-2', eval_bsize=1000, data_norm=NORM, epoch_max=1,
               epoch_val=1, num_workers=0)
    hist = trainer.train(check_train_config(raw, 'tiny'), tmp_path / 'run')
    res = _run(['--config', _config(tmp_path, 2), '--model', str(tmp_path / 'run/epoch-last.pth'),
                '--data-root', str(bench)], tmp_path)
    assert res['num_images'] == 2
    assert hist['val_psnr'][0] == pytest.approx(res['mean']['psnr'], abs=1e-9)


def test_test_py_uses_the_models_own_normalisation(bench, tmp_path, capsys):
    """A model trained without normalisation (its checkpoint says sub 0, div 1), evaluated with a
    test config that asks for 0.5 / 0.5: test.py uses the model's own and says so in one line."""
    tiny_checkpoint(tmp_path / 'm.pth', liif_spec(), epoch=1)
    ckpt = torch.load(tmp_path / 'm.pth', weights_only=True)
    ckpt['data_norm'] = {'inp': {'sub': [0.0], 'div': [1.0]}, 'gt': {'sub': [0.0], 'div': [1.0]}}
    save_checkpoint(ckpt, tmp_path / 'identity.pth')
    plain = yaml.safe_load(Path(_config(tmp_path, 2)).read_text())
    plain['data_norm'] = ckpt['data_norm']
    (tmp_path / 'plain.yaml').write_text(yaml.safe_dump(plain))
    capsys.readouterr()
    asked = _run(['--config', _config(tmp_path, 2), '--model', str(tmp_path / 'identity.pth'),
                  '--data-root', str(bench)], tmp_path)
    err = capsys.readouterr().err
    assert err.count('note: ') == 1 and "using the model's own, inp sub [0] div [1]" in err
    matching = _run(['--config', str(tmp_path / 'plain.yaml'), '--model', str(tmp_path / 'identity.pth'),
                     '--data-root', str(bench)], tmp_path)
    assert 'note: ' not in capsys.readouterr().err
    assert asked['mean']['psnr'] == matching['mean']['psnr']


def test_scale_option_evaluates_the_hr_images_at_any_scale(bench, tmp_path):
    """--scale 2.5 on a x2 config: LR made from HR on the fly (PIL bicubic), protocol benchmark-2.5
    (border ceil(2.5) = 3); the bicubic baseline there equals scoring PIL's resizes by hand."""
    res = _run(['--config', _config(tmp_path, 2), '--model', 'bicubic', '--data-root', str(bench), '--scale', '2.5'],
               tmp_path)
    assert res['eval_type'] == 'benchmark-2.5' and res['border'] == 3 and res['scale'] == 2.5
    assert res['dataset']['wrapper'] == {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2.5, 'resize': 'pil'}}
    for row in res['images']:
        name = row['name'].rsplit('/', 1)[-1]
        hr = np.asarray(Image.open(bench / 'benchmark/Tiny/HR' / name))
        h, w = (math.floor(n / 2.5 + 1e-9) for n in hr.shape[:2])
        hr = hr[:round(h * 2.5), :round(w * 2.5)]
        lr = Image.fromarray(hr).resize((w, h), Image.BICUBIC)
        sr = np.asarray(lr.resize((hr.shape[1], hr.shape[0]), Image.BICUBIC))
        diff = (sr.astype(np.float64) - hr) / 255 @ np.array([65.738, 129.057, 25.064]) / 256
        want = -10 * math.log10((diff[3:-3, 3:-3] ** 2).mean())
        assert row['psnr'] == pytest.approx(want, abs=1e-6)
    with pytest.raises(UserError, match='--scale must be a number > 1'):
        _run(['--config', _config(tmp_path, 2), '--model', 'bicubic', '--data-root', str(bench), '--scale', '1'], tmp_path)


def test_save_images_writes_each_prediction_once(bench, tmp_path):
    tiny_checkpoint(tmp_path / 'm.pth', liif_spec(), epoch=1)
    argv = ['--config', _config(tmp_path, 4), '--model', str(tmp_path / 'm.pth'), '--data-root', str(bench)]
    res = _run([*argv, '--save-images', str(tmp_path / 'sr')], tmp_path)
    saved = sorted(p.name for p in (tmp_path / 'sr').iterdir())
    assert saved == ['astronaut.png', 'camera.png']
    for row in res['images']:
        name = row['name'].rsplit('/', 1)[-1]
        sr = np.asarray(Image.open(tmp_path / 'sr' / name)).astype(np.float64)
        hr = np.asarray(Image.open(bench / 'benchmark/Tiny/HR' / name)).astype(np.float64)
        assert sr.shape == hr.shape
        diff = (sr - hr) / 255 @ np.array([65.738, 129.057, 25.064]) / 256
        # The saved 8-bit image scores what test.py reported, up to the 8-bit rounding.
        assert -10 * math.log10((diff[4:-4, 4:-4] ** 2).mean()) == pytest.approx(row['psnr'], abs=0.05)
    before = {p.name: p.read_bytes() for p in (tmp_path / 'sr').iterdir()}
    with pytest.raises(UserError, match='exists and is not an empty folder'):
        _run([*argv, '--save-images', str(tmp_path / 'sr')], tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / 'sr').iterdir()} == before
    with pytest.raises(UserError, match='is the data folder .* itself'):
        _run([*argv, '--save-images', str(bench / 'benchmark/Tiny/HR')], tmp_path)
