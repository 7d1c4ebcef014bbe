"""LMF through the entry points: test.py, demo.py and the library render what the model itself
computes, with the cell clip LMF declares (its authors' x4) and, with --cmsr, CMSR on the whole
grid; CMSR table files are checked, and refused for models without CMSR."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import demo
import models
from inference.evaluate import predict
from inference.norm import DataNorm
from inference.groups import couples_queries, whole_grid
from inference.render import render, resolve_cell_scale_max
from inference.upscale import Upscaler
from script_loader import load_script
from tiny import lmf_spec, liif_spec, tiny_checkpoint
from utils.coords import make_cell, make_coord
from utils.errors import UserError, run_cli

cli = load_script('test.py', 'lmf_test_cli')
HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))
TABLES = {6: {1: 0.3, 2: 0.45, 4: 0.6}, 8: {1: 0.3, 2: 0.45, 4: 0.6, 6: 1}}


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A tiny LM-LIIF checkpoint, a table file, an LR image and a HR folder with a test config."""
    root = tmp_path_factory.mktemp('lmf')
    torch.manual_seed(0)
    model = tiny_checkpoint(root / 'lm.pth', lmf_spec('lmliif', n_feats=6))
    (root / 'tables.yaml').write_text(yaml.safe_dump(TABLES))
    rng = np.random.default_rng(0)
    lr = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(lr).save(root / 'lr.png')
    (root / 'hr').mkdir()
    Image.fromarray(rng.integers(0, 256, (48, 60, 3), dtype=np.uint8)).save(root / 'hr' / 'a.png')
    cfg = {'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(root / 'hr')}},
                            'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 6}},
                            'batch_size': 1},
           'eval_type': 'rgb-6', 'eval_bsize': 100, 'data_norm': {'inp': {'sub': [0.5], 'div': [0.5]},
                                                                   'gt': {'sub': [0.5], 'div': [0.5]}}}
    (root / 'test.yaml').write_text(yaml.safe_dump(cfg))
    return root, model, lr


def direct(model, lr: np.ndarray, out_hw, clip: float) -> np.ndarray:
    """The model's own output on the whole make_coord grid with the clipped cell, as uint8."""
    x = torch.from_numpy(lr).permute(2, 0, 1).float().div(255).unsqueeze(0)
    coord = make_coord(out_hw).unsqueeze(0)
    with torch.no_grad():
        pred = model(HALF.inp(x), coord, make_cell(out_hw, coord) * clip)
    return HALF.pred_to_uint8(pred[0]).reshape(*out_hw, 3)


@pytest.mark.parametrize('cmsr', [False, True])
def test_render_is_the_models_output_with_its_cell_clip(files, cmsr):
    """Banded, chunked rendering equals one call on the whole grid with the cell of x4 (LMF's clip);
    with CMSR (whose levels span the grid) the model is given the grid whole, attention rows or not."""
    root, model, lr = files
    model.set_cmsr(TABLES if cmsr else None)
    assert whole_grid(model) == cmsr and couples_queries(model) == cmsr and resolve_cell_scale_max(model) == 4
    out_hw = (42, 54)  # x6
    x = torch.from_numpy(lr).permute(2, 0, 1).float().div(255).unsqueeze(0)
    want = direct(model, lr, out_hw, clip=1.5)
    for rows in (None, 4):
        got = render(model, x, out_hw, HALF, bsize=97, band_rows=5, attention_rows=rows)
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    model.set_cmsr(None)
    if cmsr:  # CMSR really is in play
        assert np.abs(got.astype(int) - direct(model, lr, out_hw, clip=1.5).astype(int)).max() > 2


def test_a_configured_clip_wins_over_the_models():
    model = models.make(lmf_spec('lmliif', n_feats=6)).eval()
    assert resolve_cell_scale_max(model, 6.0) == 6.0 and resolve_cell_scale_max(model) == 4
    assert resolve_cell_scale_max(models.make(liif_spec())) is None
    torch.manual_seed(0)
    batch = {'inp': torch.rand(1, 3, 5, 6), 'coord': make_coord((40, 48)).unsqueeze(0),
             'gt': torch.rand(1, 40 * 48, 3)}
    batch['cell'] = make_cell((40, 48), batch['coord'])
    preds = [predict(model, batch, HALF, (40, 48), None, torch.device('cpu'), 'fp32', cell_scale_max=c)[0]
             for c in (None, 4.0, 8.0)]
    assert torch.equal(preds[0], preds[1]) and not torch.equal(preds[0], preds[2])


def test_demo_and_library_render_with_cmsr(files, tmp_path):
    root, model, lr = files
    out = demo.main(['--input', str(root / 'lr.png'), '--scale', '6', '--model', str(root / 'lm.pth'),
                     '--cmsr', str(root / 'tables.yaml'), '--output', str(tmp_path / 'o.png')])[0]
    model.set_cmsr(TABLES)
    want = direct(model, lr, (42, 54), clip=1.5)
    model.set_cmsr(None)
    assert np.abs(np.asarray(Image.open(out)).astype(int) - want.astype(int)).max() <= 1
    for cmsr in (str(root / 'tables.yaml'), root / 'tables.yaml', TABLES):
        up = Upscaler.load(root / 'lm.pth', 'cpu', cmsr=cmsr)
        assert np.abs(up(lr, scale=6).astype(int) - want.astype(int)).max() <= 1
    with pytest.raises(UserError, match='expected a table file'):
        Upscaler.load(root / 'lm.pth', 'cpu', cmsr=6)


def test_test_py_with_cmsr_records_it(files, tmp_path):
    root, _, _ = files
    res = []
    for extra in ([], ['--cmsr', str(root / 'tables.yaml')]):
        out = tmp_path / f'r{len(res)}.json'
        cli.main(['--config', str(root / 'test.yaml'), '--model', str(root / 'lm.pth'), '--out', str(out),
                  '--gpu', 'cpu', '--quiet', *extra])
        res.append(json.loads(out.read_text()))
    assert res[0]['cell_scale_max'] == res[1]['cell_scale_max'] == 4
    assert res[0]['cmsr'] is None and res[1]['cmsr'] == str(root / 'tables.yaml')
    assert res[0]['mean']['psnr'] != res[1]['mean']['psnr']


@pytest.mark.parametrize('case', ['liif', 'missing', 'bad', 'bicubic', 'out'])
def test_cmsr_mistakes_are_one_line(files, tmp_path, capsys, case):
    root, _, _ = files
    tables = root / 'tables.yaml'
    model = root / 'lm.pth'
    if case == 'liif':
        model = tmp_path / 'liif.pth'
        tiny_checkpoint(model, liif_spec())
    elif case == 'missing':
        tables = tmp_path / 'nope.yaml'
    elif case == 'bad':
        tables = tmp_path / 'bad.yaml'
        tables.write_text('6: {1: -0.5}\n')
    if case in ('bicubic', 'out'):
        args = ['--config', str(root / 'test.yaml'), '--model', 'bicubic' if case == 'bicubic' else str(model),
                '--cmsr', str(tables), '--gpu', 'cpu', '--quiet'] + (['--out', str(tables)] if case == 'out' else [])
        main = cli.main
    else:
        args = ['--input', str(root / 'lr.png'), '--scale', '6', '--model', str(model), '--cmsr', str(tables),
                '--output', str(tmp_path / 'o.png')]
        main = demo.main
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(args))
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    assert {'liif': 'LMF models', 'missing': 'not found', 'bad': 'threshold', 'bicubic': 'bicubic',
            'out': 'cmsr tables itself'}[case] in err
    assert not (tmp_path / 'o.png').exists()
    if case == 'liif':
        with pytest.raises(UserError, match='LMF models'):
            Upscaler.load(model, 'cpu', cmsr=str(tables))
