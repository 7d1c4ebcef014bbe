"""Evaluating and rendering models whose queries attend to each other (SRNO, HIIF; inference/groups.py,
docs/design.md §5.1): the authors' row-block prediction and the whole image, through
batched_predict, render, predict (with a window), test.py, demo.py and the library; the
bounded-memory whole image equals a one-call render; the options are checked."""
import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

import datasets
import models
from inference.evaluate import predict
from inference.groups import check_attention_rows, group_note, parse_attention_rows, query_group
from inference.norm import DataNorm
from inference.render import attention_bands, batched_predict, encode, render
from inference.upscale import Upscaler
from inference.window import padded_grid
from release_keys import DATA
from script_loader import load_script
from tiny import hiif_spec, srno_spec, swinir_spec, tiny_checkpoint, tiny_liif
from utils.coords import make_cell, make_coord
from utils.errors import UserError

IDENTITY = DataNorm()
# Predictions p become p * 0.25 + 0.5: the vectors' outputs (|p| < 1.4) stay inside [0, 1] unclamped.
WIDE = DataNorm(gt_sub=(0.5,), gt_div=(0.25,))
HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))


def vector(name: str) -> tuple[dict, torch.nn.Module]:
    v = torch.load(DATA / 'vectors' / f'{name}-seed0.pth', weights_only=True)
    return v, models.make(v['checkpoint']['model'], load_sd=True).eval()


def grid(v: dict) -> tuple[torch.Tensor, torch.Tensor]:
    coord = v['coord_grid'].reshape(1, -1, 2)  # (1, 945, 2)
    return coord, v['cell'].unsqueeze(1).expand(1, coord.shape[1], 2)


def flat(img: torch.Tensor) -> torch.Tensor:
    """(1, 3, H, W) -> (1, H*W, 3)."""
    return img.flatten(2).transpose(1, 2)


def authors_blocks(model, inp, out_hw, rows=None, cell_hw=None) -> torch.Tensor:
    """The authors' prediction written out: make_coord of the whole grid, cell 2 / size, one call per
    block of `rows` rows (None: one call) -> (1, H*W, 3)."""
    coord = make_coord(out_hw).unsqueeze(0)
    cell = make_cell(cell_hw or out_hw, coord)
    n = (rows or out_hw[0]) * out_hw[1]
    with torch.no_grad():
        model.gen_feat(inp)
        return torch.cat([model.query_rgb(coord[:, i:i + n], cell[:, i:i + n]) for i in range(0, coord.shape[1], n)], 1)


@pytest.mark.parametrize('name', ['srno', 'hiif'])
def test_batched_predict_groups(name):
    v, model = vector(name)
    coord, cell = grid(v)
    whole = batched_predict(model, v['inp'], coord, cell, 400)  # 3 chunks through the context
    assert (whole - flat(v['expected_grid'])).abs().max() <= 1e-5
    blocks = batched_predict(model, v['inp'], coord, cell, 200, group=10 * 35)  # 2 chunks per block
    assert (blocks - flat(v['expected_grid_batched'])).abs().max() <= 1e-5
    # A group that fits in one chunk is one call: the same floats as the call itself.
    assert torch.equal(batched_predict(model, v['inp'], coord, cell, 350, group=350),
                       authors_blocks(model, v['inp'], (27, 35), rows=10))


@pytest.mark.parametrize('name', ['srno', 'hiif'])
@pytest.mark.parametrize('rows', [None, 10])
def test_render_reproduces_the_authors_prediction(name, rows):
    v, model = vector(name)
    expected = v['expected_grid'] if rows is None else v['expected_grid_batched']
    encode(model, v['inp'])
    bands = list(attention_bands(model, (27, 35), (27, 35), 100, rows))  # chunks of 2 rows
    assert [b[:2] for b in bands][:2] == [(0, 2), (2, 4)] and bands[-1][1] == 27
    pred = torch.cat([b[2] for b in bands]).view(1, -1, 3)
    assert (pred - flat(expected)).abs().max() <= 1e-5
    out = render(model, v['inp'], (27, 35), WIDE, bsize=100, attention_rows=rows)
    want = WIDE.pred_to_uint8(flat(expected)[0]).reshape(27, 35, 3)
    assert np.abs(out.astype(int) - want).max() <= 1 and (out != want).mean() < 0.01


def test_bounded_memory_whole_image_equals_one_call():
    """A tiny SRNO: chunks of 500 queries (8 rows) vs one call over all 4,599."""
    torch.manual_seed(0)
    model = models.make(srno_spec()).eval()
    img = torch.rand(1, 3, 21, 25)
    one_call = authors_blocks(model, HALF.inp(img), (73, 63))
    out = render(model, img, (73, 63), HALF, bsize=500)
    want = HALF.pred_to_uint8(one_call[0]).reshape(73, 63, 3)
    assert np.abs(out.astype(int) - want).max() <= 1 and (out != want).mean() < 0.002
    encode(model, HALF.inp(img))
    pred = torch.cat([p for _, _, p in attention_bands(model, (73, 63), (73, 63), 500, None)]).view(1, -1, 3)
    assert (pred - one_call).abs().max() <= 1e-5


def test_attention_bands_without_a_device_run_in_bf16():
    """device None means the CPU (where the queries are made), in every precision: bf16 bands equal
    those with the CPU named."""
    torch.manual_seed(0)
    model = models.make(srno_spec()).eval()
    encode(model, HALF.inp(torch.rand(1, 3, 9, 11)))
    named = [p for _, _, p in attention_bands(model, (20, 23), (20, 23), 100, None, 'bf16', torch.device('cpu'))]
    unnamed = [p for _, _, p in attention_bands(model, (20, 23), (20, 23), 100, None, 'bf16')]
    assert len(named) == len(unnamed) > 1 and all(torch.equal(a, b) for a, b in zip(named, unnamed))


def test_padded_grid():
    assert padded_grid((22, 28), (11, 14), None) == ((22, 28), (1.0, 1.0))
    assert padded_grid((22, 28), (11, 14), 4) == ((24, 32), (1.0, 1.0))  # the authors' s (h + pad)
    (gh, gw), (fh, fw) = padded_grid((28, 35), (11, 14), 4)  # x2.5: the output's spacing continued
    assert (gh, gw) == (30, 40) and fh == pytest.approx(30 * 11 / (28 * 12)) and fw == 1.0


@pytest.mark.parametrize('rows', [None, 10])
def test_window_queries_the_authors_padded_grid(rows):
    """SwinIR-HIIF at x2 with window 4: the HIIF authors pad the input, query the padded grid in row
    blocks (the padded rows and columns take part in the attention) and crop; predict() and
    render() give that."""
    v, model = vector('swinir-hiif')
    inp = v['inp']  # (1, 3, 11, 14): pads 1 and 2 -> (12, 16); grid (24, 32)
    x = torch.cat([inp, inp.flip(2)], 2)[:, :, :12]
    x = torch.cat([x, x.flip(3)], 3)[:, :, :, :16]
    want = authors_blocks(model, x, (24, 32), rows).view(1, 24, 32, 3)[:, :22, :28]  # (1, 22, 28, 3)
    coord = make_coord((22, 28)).unsqueeze(0)
    batch = {'inp': inp, 'coord': coord, 'cell': make_cell((22, 28), coord), 'gt': torch.zeros(1, 22 * 28, 3)}
    pred, _ = predict(model, batch, WIDE, (22, 28), 100, torch.device('cpu'), 'fp32', window=4, attention_rows=rows)
    assert (pred - WIDE.pred_to_rgb(want).permute(0, 3, 1, 2)).abs().max() <= 1e-5 / 4
    out = render(model, inp, (22, 28), WIDE, bsize=100, window=4, attention_rows=rows)
    ref = WIDE.pred_to_uint8(want[0])
    assert np.abs(out.astype(int) - ref).max() <= 1 and (out != ref).mean() < 0.01
    # Without the padded rows and columns in the attention, the result is another one.
    unpadded = authors_blocks(model, x, (22, 28), rows, cell_hw=(24, 32)).view(1, 22, 28, 3)
    assert (unpadded - want).abs().max() > 1e-3


def test_models_with_independent_queries_ignore_the_grouping():
    model = tiny_liif()
    coord = make_coord((9, 7)).unsqueeze(0)
    cell = make_cell((9, 7), coord)
    inp = torch.rand(1, 3, 4, 3)
    assert torch.equal(batched_predict(model, inp, coord, cell, 10, group=14), batched_predict(model, inp, coord, cell, 10))
    assert group_note(model, 3) and group_note(model, None) is None
    assert group_note(models.make(hiif_spec()), 3) is None


def test_query_group_one_chunk_is_one_call():
    torch.manual_seed(0)
    model = models.make(hiif_spec()).eval()
    coord = torch.rand(1, 50, 2) * 2 - 1
    cell = torch.full_like(coord, 0.1)
    with torch.no_grad():
        model.gen_feat(torch.rand(1, 3, 5, 6))
        assert torch.equal(query_group(model, coord, cell, 50), model.query_rgb(coord, cell))
        assert (query_group(model, coord, cell, 7) - model.query_rgb(coord, cell)).abs().max() <= 1e-5


def test_attention_rows_values_are_checked():
    assert parse_attention_rows('whole') is None and parse_attention_rows(None) is None
    assert parse_attention_rows(' 12 ') == 12
    for bad in ('0', '-3', 'ten', '1.5'):
        with pytest.raises(UserError, match="--attention-rows expects 'whole' or a positive"):
            parse_attention_rows(bad)
    assert check_attention_rows(None) is None and check_attention_rows(4) == 4
    for bad in (0, True, 2.0, '4'):
        with pytest.raises(UserError, match='attention_rows must be a positive'):
            check_attention_rows(bad)
    with pytest.raises(UserError, match='attention_rows'):
        Upscaler(tiny_liif(), HALF, torch.device('cpu'), attention_rows=0)


@pytest.fixture(scope='module')
def hr_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('hr')
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (21, 18, 3), dtype=np.uint8)).save(root / f'{i}.png')
    return root


def test_test_py_row_blocks_and_whole_image(hr_folder, tmp_path):
    """test.py's per-image PSNR == the authors' prediction written out (one call per block of
    rows, or per image) scored by scikit-image; the config's attention_rows, overridden by the flag."""
    cli = load_script('test.py', 'test_cli_attention')
    torch.manual_seed(3)
    ckpt = tmp_path / 'hiif.pth'
    model = tiny_checkpoint(ckpt, hiif_spec(), epoch=1)
    wrapper = {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 3}}
    config = tmp_path / 'test.yaml'
    config.write_text(yaml.safe_dump({
        'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(hr_folder)}},
                         'wrapper': wrapper, 'batch_size': 1},
        'eval_bsize': 40, 'attention_rows': 4, 'data_norm': HALF.to_config()}))
    data = datasets.make(wrapper, args={'dataset': datasets.make({'name': 'image-folder', 'args': {'root_path': str(hr_folder)}})})
    for flag, rows in ((), 4), (('--attention-rows', 'whole'), None), (('--attention-rows', '7'), 7):
        out = tmp_path / 'res.json'
        cli.main(['--config', str(config), '--model', str(ckpt), '--gpu', 'cpu', '--quiet', '--out', str(out), *flag])
        res = json.loads(out.read_text())
        assert res['attention_rows'] == rows
        for i, row in enumerate(res['images']):
            item = data[i]
            hw = tuple(row['hr_size'])
            pred = authors_blocks(model, HALF.inp(item['inp'][None]), hw, rows)
            p = HALF.pred_to_rgb(pred[0]).view(*hw, 3).double().numpy()
            g = item['gt'].view(*hw, 3).double().numpy()
            assert row['psnr'] == pytest.approx(peak_signal_noise_ratio(g, p, data_range=1), abs=1e-4)


def test_demo_renders_row_blocks(tmp_path):
    demo = load_script('demo.py', 'demo_attention')
    torch.manual_seed(4)
    ckpt = tmp_path / 'srno.pth'
    model = tiny_checkpoint(ckpt, srno_spec(), data_norm=HALF.to_config())
    arr = (np.random.default_rng(1).random((9, 11, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / 'in.png')
    inp = HALF.inp(torch.from_numpy(arr).permute(2, 0, 1).float().div(255)[None])
    for rows in (4, None):
        out = tmp_path / f'out-{rows}.png'
        demo.main(['--input', str(tmp_path / 'in.png'), '--scale', '3', '--model', str(ckpt), '--output', str(out),
                   '--bsize', '70', '--gpu', 'cpu', '--attention-rows', str(rows or 'whole')])
        want = HALF.pred_to_uint8(authors_blocks(model, inp, (27, 33), rows)[0]).reshape(27, 33, 3)
        got = np.asarray(Image.open(out))
        assert np.abs(got.astype(int) - want).max() <= 1 and (got != want).mean() < 0.01
    with pytest.raises(UserError, match='--attention-rows'):
        demo.main(['--input', str(tmp_path / 'in.png'), '--scale', '2', '--attention-rows', '0'])


def test_library_upscaler_takes_attention_rows(tmp_path):
    torch.manual_seed(5)
    ckpt = tmp_path / 'hiif.pth'
    model = tiny_checkpoint(ckpt, hiif_spec(encoder=swinir_spec()), data_norm=HALF.to_config())
    arr = (np.random.default_rng(2).random((6, 7, 3)) * 255).astype(np.uint8)
    up = Upscaler.load(ckpt, 'cpu', attention_rows=5, bsize=64)
    got = up(arr, scale=2)
    x = HALF.inp(torch.from_numpy(arr).permute(2, 0, 1).float().div(255)[None])
    x = torch.cat([x, x.flip(2)], 2)[:, :, :8]  # window 4: pads 2 and 1
    x = torch.cat([x, x.flip(3)], 3)[:, :, :, :8]
    want = authors_blocks(model, x, (16, 16), 5).view(16, 16, 3)[:12, :14]
    want = HALF.pred_to_uint8(want)
    assert np.abs(got.astype(int) - want).max() <= 1 and (got != want).mean() < 0.02
