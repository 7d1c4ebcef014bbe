"""Window-padded evaluation and rendering (inference/window.py), checked against the LTE authors'
rule written out independently here: pad by concatenating the flipped input, query the padded
grid make_coord((s (h + ph), s (w + pw))) with cell 2 / that size, crop the top-left H x W."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import models
from inference.evaluate import predict
from inference.norm import DataNorm
from inference.render import batched_predict, render
from inference.window import cell_clip, mirror_pad, model_window, resolve_window, window_frame, window_pad
from script_loader import load_script
from tiny import rcan_spec, swinir_spec, tiny_checkpoint
from utils.coords import make_cell, make_coord, to_pixel_samples
from utils.errors import UserError

HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))
SWIN_LIIF = {'name': 'liif', 'args': {'encoder_spec': swinir_spec(),
                                      'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}
SWIN_LTE = {'name': 'lte', 'args': {'encoder_spec': swinir_spec(), 'hidden_dim': 8,
                                    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}
SWIN_METASR = {'name': 'metasr', 'args': {'encoder_spec': swinir_spec()}}
RCAN_LIIF = {'name': 'liif', 'args': {'encoder_spec': rcan_spec(),
                                      'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}


def authors_padded_prediction(model, inp, scale: int, window: int) -> torch.Tensor:
    """The LTE authors' evaluation, written out: inp (1, 3, h, w) normalised -> (1, 3, s h, s w)."""
    h, w = inp.shape[-2:]
    ph, pw = (h // window + 1) * window - h, (w // window + 1) * window - w
    x = torch.cat([inp, torch.flip(inp, [2])], 2)[:, :, :h + ph, :]
    x = torch.cat([x, torch.flip(x, [3])], 3)[:, :, :, :w + pw]
    coord = make_coord((scale * (h + ph), scale * (w + pw))).unsqueeze(0)
    cell = torch.ones_like(coord)
    cell[:, :, 0] *= 2 / x.shape[-2] / scale
    cell[:, :, 1] *= 2 / x.shape[-1] / scale
    pred = batched_predict(model, x, coord, cell, 997)
    pred = pred.view(1, scale * (h + ph), scale * (w + pw), 3).permute(0, 3, 1, 2)
    return pred[..., :scale * h, :scale * w]


def test_pad_rule_and_mirror():
    assert [window_pad(n, 8) for n in (7, 8, 9, 16, 1)] == [1, 8, 7, 8, 7]
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(1, 2, 5, 3)
    ref = torch.cat([x, x.flip(2)], 2)[:, :, :8]
    ref = torch.cat([ref, ref.flip(3)], 3)[:, :, :, :5]
    assert torch.equal(mirror_pad(x, 3, 2), ref)
    long = mirror_pad(x, 12, 0)  # beyond one mirrored copy: image, flip, image, ...
    assert long.shape[-2] == 17 and torch.equal(long[:, :, 10:15], x)
    assert mirror_pad(x, 0, 0) is x
    assert window_frame((6, 7), None) == ((0, 0), (1.0, 1.0))
    assert window_frame((6, 7), 4) == ((2, 1), (6 / 8, 7 / 8))


def test_window_options():
    enc_model = models.make(SWIN_LIIF)
    assert model_window(enc_model) == 4 and resolve_window('auto', enc_model) == 4
    assert resolve_window('off', enc_model) is None and resolve_window('8', enc_model) == 8
    assert resolve_window('auto', models.make({'name': 'liif', 'args': {'encoder_spec': {
        'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 4, 'no_upsampling': True}}}})) is None
    for bad in ('-1', 'x', '2.5'):
        with pytest.raises(UserError, match='--window expects'):
            resolve_window(bad, enc_model)
    assert cell_clip(6, 4) == 1.5 and cell_clip(3, 4) == 1.0 and cell_clip(30, None) == 1.0


@pytest.mark.parametrize('spec', [SWIN_LIIF, SWIN_LTE], ids=['swinir-liif', 'swinir-lte'])
@torch.no_grad()
def test_evaluation_and_render_follow_the_authors_rule(spec):
    """Sides 6 x 7 are not multiples of the window 4; x3. Evaluation's prediction equals the
    authors' padded render to float rounding; demo's render equals it in 8 bits."""
    torch.manual_seed(0)
    model = models.make(spec).eval()
    img = torch.rand(1, 3, 6, 7)
    ref = authors_padded_prediction(model, HALF.inp(img), 3, 4)  # (1, 3, 18, 21)
    hr = torch.rand(3, 18, 21)
    coord, gt = to_pixel_samples(hr)
    batch = {'inp': img, 'coord': coord[None], 'cell': make_cell((18, 21), coord)[None], 'gt': gt[None]}
    pred, _ = predict(model, batch, HALF, (18, 21), 50, torch.device('cpu'), 'fp32', window=4)
    assert torch.allclose(pred, HALF.pred_to_rgb(ref.permute(0, 2, 3, 1)).permute(0, 3, 1, 2), atol=1e-5, rtol=0)
    unpadded, _ = predict(model, batch, HALF, (18, 21), 50, torch.device('cpu'), 'fp32', window=None)
    assert (unpadded - pred).abs().max() > 1e-3  # the padding matters on these sides
    out = render(model, img, (18, 21), HALF, bsize=40, band_rows=5, window=4)
    want = HALF.pred_to_uint8(ref[0].permute(1, 2, 0))
    assert np.abs(out.astype(int) - want.astype(int)).max() <= 1


@torch.no_grad()
def test_cell_clip_gives_the_cell_of_scale_max():
    """With cell_scale_max 2 at x3, the decoder sees cell * 1.5 (LTE's option); below it, nothing."""
    seen = []

    class Spy(torch.nn.Module):
        def gen_feat(self, inp):
            pass

        def query_rgb(self, coord, cell):
            seen.append(cell.clone())
            return coord.new_zeros(*coord.shape[:2], 3)

    hr = torch.rand(3, 12, 9)
    coord, gt = to_pixel_samples(hr)
    cell = make_cell((12, 9), coord)[None]
    batch = {'inp': torch.rand(1, 3, 4, 3), 'coord': coord[None], 'cell': cell, 'gt': gt[None]}
    predict(Spy(), batch, HALF, (12, 9), None, torch.device('cpu'), 'fp32', cell_scale_max=2)
    predict(Spy(), batch, HALF, (12, 9), None, torch.device('cpu'), 'fp32', cell_scale_max=4)
    assert torch.allclose(seen[0], cell * 1.5) and torch.equal(seen[1], cell)


def _tiny_set(root, scale: int = 3):
    """root/benchmark/W/{HR, LR_bicubic/X3}: two images whose LR sides are not window multiples."""
    rng = np.random.default_rng(0)
    for name, (h, w) in (('a', (6, 7)), ('b', (9, 6))):
        lr = (rng.random((h, w, 3)) * 255).astype(np.uint8)
        hr = np.asarray(Image.fromarray(lr).resize((w * scale, h * scale), Image.BICUBIC))
        for sub, img in (('HR', hr), (f'LR_bicubic/X{scale}', lr)):
            (root / 'benchmark/W' / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / 'benchmark/W' / sub / (f'{name}x{scale}.png' if 'LR' in sub else f'{name}.png'))


@pytest.mark.parametrize('spec', [SWIN_LIIF, SWIN_LTE, SWIN_METASR], ids=['swinir-liif', 'swinir-lte', 'swinir-metasr'])
def test_test_py_pads_swinir_models_by_default(spec, tmp_path):
    _tiny_set(tmp_path / 'data')
    tiny_checkpoint(tmp_path / 'm.pth', spec)
    cfg = {'test_dataset': {'dataset': {'name': 'paired-image-folders', 'args': {
        'root_path_1': './load/benchmark/W/LR_bicubic/X3', 'root_path_2': './load/benchmark/W/HR'}},
        'wrapper': {'name': 'sr-implicit-paired', 'args': {}}, 'batch_size': 1},
        'eval_type': 'benchmark-3', 'eval_bsize': 100,
        'data_norm': {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}}
    (tmp_path / 't.yaml').write_text(yaml.safe_dump(cfg))
    cli = load_script('test.py', 'liif_test_window')
    runs = {}
    for window in ('auto', 'off'):
        out = tmp_path / f'{window}.json'
        cli.main(['--config', str(tmp_path / 't.yaml'), '--model', str(tmp_path / 'm.pth'), '--data-root',
                  str(tmp_path / 'data'), '--window', window, '--out', str(out), '--quiet'])
        runs[window] = json.loads(out.read_text())
    assert runs['auto']['window'] == 4 and runs['off']['window'] is None
    assert runs['auto']['mean']['psnr'] != runs['off']['mean']['psnr']
    cfg['cell_scale_max'] = 0
    (tmp_path / 'bad.yaml').write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match='cell_scale_max: expected a number > 0, got 0'):
        cli.main(['--config', str(tmp_path / 'bad.yaml'), '--model', str(tmp_path / 'm.pth'),
                  '--data-root', str(tmp_path / 'data'), '--quiet'])


@pytest.mark.parametrize('spec', [SWIN_LTE, SWIN_METASR, RCAN_LIIF], ids=['swinir-lte', 'swinir-metasr', 'rcan-liif'])
def test_demo_renders_the_new_families_on_a_non_multiple_input(spec, tmp_path):
    tiny_checkpoint(tmp_path / 'm.pth', spec)
    Image.fromarray((np.random.default_rng(1).random((6, 7, 3)) * 255).astype(np.uint8)).save(tmp_path / 'in.png')
    demo = load_script('demo.py', 'liif_demo_window')
    (out,) = demo.main(['--input', str(tmp_path / 'in.png'), '--scale', '2.5', '--model', str(tmp_path / 'm.pth'),
                        '--output', str(tmp_path / 'out.png'), '--gpu', 'cpu'])
    assert Image.open(out).size == (18, 15)  # round(7 * 2.5) = 18 (half up), 6 * 2.5 = 15
