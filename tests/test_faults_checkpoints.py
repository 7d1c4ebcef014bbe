"""Hostile checkpoints: flipped bits, truncated copies, NaN/inf weights, plain encoders, NaN
renders (tests/faults.py)."""
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import demo
from inference.upscale import Upscaler
import models
from faults import NORM, TINY_LIIF, one_line_error, test_cli
from inference.norm import DataNorm
from inference.render import render
from utils.checkpoints import load_checkpoint, save_checkpoint
from utils.errors import UserError


# ---------------------------------------------------------------- hostile checkpoints

def flip_bit_in_weights(src: Path, dst: Path) -> None:
    """Copy src to dst with one bit flipped in the first tensor's data (an exponent bit of its
    first float: the weight becomes huge or tiny, and torch.load alone does not notice)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if '/data/' in i.filename and not i.filename.endswith('.pkl'))
    n, m = struct.unpack('<HH', data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + n + m + 3] ^= 0x40
    dst.write_bytes(bytes(data))


def test_a_flipped_bit_is_refused_naming_the_file(eval_setup, tmp_path, capsys):
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
    model = models.make(TINY_LIIF).eval()
    real_query = model.query_rgb
    model.query_rgb = lambda coord, cell: real_query(coord, cell) * float('nan')
    with pytest.raises(UserError, match=r'NaN or inf for 20 of 20 pixels'):
        render(model, torch.rand(1, 3, 2, 5), (4, 5), DataNorm.from_config(NORM))
    ckpt = tmp_path / 'tiny.pth'
    save_checkpoint({'model': {**TINY_LIIF, 'sd': models.make(TINY_LIIF).state_dict()}}, ckpt)
    real_load = Upscaler.load

    def poisoned(*args, **kwargs):
        up = real_load(*args, **kwargs)
        q = up.model.query_rgb
        up.model.query_rgb = lambda coord, cell: q(coord, cell) * float('nan')
        return up
    monkeypatch.setattr(Upscaler, 'load', poisoned)
    inp = tmp_path / 'in.png'
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '2', '--model', str(ckpt),
                                            '--output', str(tmp_path / 'out.png')]), capsys)
    assert 'not written' in err and not (tmp_path / 'out.png').exists()


# ---------------------------------------------------------------- overflow inside the decoder (round 3)

DEEP_LIIF = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16, 16, 16, 16]}}}}


def overflowing_checkpoint(path: Path) -> Path:
    """Finite weights whose second and third hidden layers overflow float32: the fast path's fused
    ReLUs used to turn the resulting NaN into 0, so every pixel got the last layer's bias (grey)."""
    torch.manual_seed(0)
    model = models.make(DEEP_LIIF)
    with torch.no_grad():
        model.imnet.layers[2].weight.mul_(1e36)
        model.imnet.layers[4].weight.mul_(1e10)
    save_checkpoint({'model': {**DEEP_LIIF, 'sd': model.state_dict()}, 'data_norm': NORM}, path)
    return path


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
def test_predictions_that_overflow_are_refused_on_the_fast_path(eval_setup, tmp_path, capsys, precision):
    ckpt = overflowing_checkpoint(tmp_path / 'overflow.pth')
    err = one_line_error(lambda: test_cli.main(['--config', str(eval_setup['config']), '--model', str(ckpt),
                                                '--quiet', '--precision', precision]), capsys)
    assert 'predicted NaN or inf' in err and '0.png' in err, err
    inp = tmp_path / 'in.png'
    Image.fromarray(np.full((6, 5, 3), 100, np.uint8)).save(inp)
    err = one_line_error(lambda: demo.main(['--input', str(inp), '--scale', '2', '--model', str(ckpt),
                                            '--output', str(tmp_path / 'out.png'), '--precision', precision]), capsys)
    assert 'predicted NaN or inf' in err and not (tmp_path / 'out.png').exists()
    up = Upscaler.load(ckpt, 'cpu', precision=precision)
    with pytest.raises(UserError, match='predicted NaN or inf'):
        up(np.full((6, 5, 3), 100, np.uint8), scale=2)


def test_the_fused_kernels_still_run_for_a_sound_model():
    """The overflow bound is far from the limit for the bundled model on a real photo: the fast
    path keeps its fused kernels (no silent fallback to the slower plain layers)."""
    from models.loading import load_model
    from models.mlp import MLP
    from inference.upscale import BUNDLED_MODEL
    model = load_model(BUNDLED_MODEL)
    calls = []
    real = MLP.overflow_free
    MLP.overflow_free = lambda self, pre: calls.append(real(self, pre)) or calls[-1]
    try:
        img = np.array(Image.open(Path(__file__).resolve().parents[1] / 'examples' / 'coffee_lr.png').convert('RGB'))
        crop = torch.from_numpy(img[16:40, 30:54]).permute(2, 0, 1)[None].float() / 255  # (1, 3, 24, 24)
        render(model, crop, (48, 48), DataNorm.from_config(NORM))
    finally:
        MLP.overflow_free = real
    assert calls and all(calls)


# ---------------------------------------------------------------- bounded memory before loading (round 3)

def test_a_zip_bomb_checkpoint_is_refused_from_its_directory(tmp_path, tiny_ckpt, monkeypatch):
    import zipfile
    bomb = tmp_path / 'bomb.pth'
    with zipfile.ZipFile(tiny_ckpt) as src, zipfile.ZipFile(bomb, 'w', zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
        prefix = src.infolist()[0].filename.split('/')[0]
        with dst.open(f'{prefix}/data/999', 'w') as f:  # 256 MB of zeros, deflated to a few hundred KB
            for _ in range(256):
                f.write(bytes(1 << 20))
    assert bomb.stat().st_size < 2 << 20
    monkeypatch.setattr(torch, 'load', lambda *a, **k: pytest.fail('loaded before the check'))
    with pytest.raises(UserError, match='refused as a zip bomb'):
        load_checkpoint(bomb)


@pytest.mark.parametrize('hidden, expect', [([20000, 20000], 'more than the'), ([1500, 1500], 'lacks parameters')])
def test_args_implying_a_larger_model_are_refused_before_allocating(tmp_path, monkeypatch, hidden, expect):
    import torch.nn as nn
    from models.loading import build_model
    spec = {'name': 'liif', 'args': {**TINY_LIIF['args'], 'imnet_spec': {'name': 'mlp', 'args': {
        'out_dim': 3, 'hidden_list': hidden}}}}
    ckpt = {'model': {**spec, 'sd': models.make(TINY_LIIF).state_dict()}}
    big = []
    real = nn.Module.register_parameter

    def watch(self, name, param):
        if param is not None and param.device.type != 'meta' and param.numel() > 10 ** 6:
            big.append(name)
        return real(self, name, param)
    monkeypatch.setattr(nn.Module, 'register_parameter', watch)
    with pytest.raises(UserError, match=expect):
        build_model(ckpt, 'hostile.pth')
    assert big == []
