"""Regions (inference/region.py): any block of the output at any scale equals that crop of demo.py's
full render, for every family and input mode; the input is encoded once; mistakes are one line."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

import demo
from inference.region import MAX_SIDE, BicubicRegions, ModelRegions, Region, check_region, region_output_size
from inference.render import Cancelled, region_coord
from inference.upscale import BUNDLED_MODEL, Upscaler
from tiny import aliif_spec, edsr_spec, liif_spec, lmf_spec, metasr_spec, mlp_spec, swinir_spec, tiny_checkpoint
from utils.coords import coord_block, make_coord
from utils.errors import UserError
from utils.images import read_image, split_channels

LTE = {'name': 'lte', 'args': {'encoder_spec': edsr_spec(8), 'imnet_spec': mlp_spec((16,)), 'hidden_dim': 16}}
SPECS = {
    'liif': liif_spec(hidden=(16,)),
    'lte': LTE,
    'metasr': metasr_spec(),
    'a-liif': aliif_spec(),
    'swinir-liif': {'name': 'liif', 'args': {'encoder_spec': {**swinir_spec(), 'args': {**swinir_spec()['args'], 'no_upsampling': True}},
                                             'imnet_spec': mlp_spec((16,))}},
    'lmliif': lmf_spec('lmliif'),
    'lmlte': lmf_spec('lmlte'),
}


def photo(h: int, w: int, mode: str = 'RGB') -> Image.Image:
    """A real photo (scikit-image's coffee) shrunk to h x w, in `mode`."""
    return Image.fromarray(skdata.coffee()).resize((w, h), Image.BICUBIC).convert(mode)


def demo_render(tmp_path: Path, ckpt: Path, inp: Path, scale: float, *extra: str) -> np.ndarray:
    """demo.py's full render of inp at scale, as an int array (H, W[, C])."""
    out = tmp_path / f'demo_x{scale:g}.png'
    demo.main(['--input', str(inp), '--model', str(ckpt), '--scale', str(scale), '--output', str(out), *extra])
    return np.asarray(Image.open(out)).astype(int)


def regions_of(out_hw) -> list[Region]:
    """Regions touching each border and the corners, thin strips along two borders, an inside one,
    and the whole output when it is small."""
    h, w = out_hw
    regions = [Region(0, 0, min(h, 9), min(w, 11)), Region(h - 7, w - 5, 7, 5), Region(0, w - 3, h, 3),
               Region(h - 1, 0, 1, w), Region(h // 3, w // 4, max(1, h // 3), max(1, w // 2))]
    return regions + ([Region(0, 0, h, w)] if h * w <= 20000 else [])


def assert_regions_match(source, full: np.ndarray, scale: float, tolerance: int = 1) -> None:
    """Every region of regions_of equals the same crop of `full` within `tolerance` levels."""
    assert full.shape[:2] == region_output_size(source.in_hw, scale)
    for r in regions_of(full.shape[:2]):
        got = np.asarray(source.render(scale, r)).astype(int)
        want = full[r.top:r.top + r.height, r.left:r.left + r.width]
        assert got.shape == want.shape, (r, got.shape, want.shape)
        assert np.abs(got - want).max() <= tolerance, (scale, r, np.abs(got - want).max())


def test_coord_block_is_the_block_of_the_full_grid_bit_for_bit():
    full = make_coord((37, 23), ranges=((-1, 0.4), (-1, 1)), flatten=False)
    for (top, left, h, w) in [(0, 0, 37, 23), (5, 3, 9, 11), (36, 22, 1, 1), (0, 10, 37, 2)]:
        block = coord_block((37, 23), (top, left), (h, w), ranges=((-1, 0.4), (-1, 1)), flatten=False)
        assert torch.equal(block, full[top:top + h, left:left + w])
    assert torch.equal(region_coord((37, 23), 5, 3, 9, 11, frame=(0.7, 1.0)),
                       make_coord((37, 23), ranges=((-1, -1 + 2 * 0.7), (-1, 1)), flatten=False)[5:14, 3:14].reshape(-1, 2))


@pytest.mark.parametrize('family', ['liif', 'lte'])
@pytest.mark.parametrize('scale', [2.5, 7, 30])
def test_regions_equal_the_crop_of_demo_random_weights(tmp_path, family, scale):
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS[family])
    inp = tmp_path / 'in.png'
    photo(6, 9).save(inp)
    full = demo_render(tmp_path, ckpt, inp, scale)
    assert_regions_match(ModelRegions(Upscaler.load(ckpt, 'cpu'), read_image(inp)), full, scale)


@pytest.fixture(scope='module')
def bundled() -> Upscaler:
    """The bundled model, loaded once for this file."""
    return Upscaler.load(BUNDLED_MODEL, 'cpu')


def test_regions_equal_the_crop_of_demo_bundled_model(tmp_path, bundled):
    """demo.py renders a file with Upscaler.upscale_file: the same call here, on the loaded model."""
    inp = tmp_path / 'in.png'
    photo(5, 7).save(inp)
    source = ModelRegions(bundled, read_image(inp))
    for scale in (2.5, 7, 30):
        out = tmp_path / f'x{scale}.png'
        bundled.upscale_file(inp, out, scale)
        assert_regions_match(source, np.asarray(Image.open(out)).astype(int), scale)


@pytest.mark.parametrize('family', ['metasr', 'a-liif', 'swinir-liif'])
def test_regions_of_other_families_and_window_padding(tmp_path, family):
    """Meta-SR (no ensemble: a nearest pick that must not move), A-LIIF, and SwinIR, whose input is
    mirror-padded to its window as demo.py pads it."""
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS[family])
    inp = tmp_path / 'in.png'
    photo(10, 7).save(inp)
    for scale in (3, 4.6):
        full = demo_render(tmp_path, ckpt, inp, scale)
        assert_regions_match(ModelRegions(Upscaler.load(ckpt, 'cpu'), read_image(inp)), full, scale)


@pytest.mark.parametrize('family', ['lmliif', 'lmlte'])
def test_regions_of_lmf_with_its_cell_clip(tmp_path, family):
    """LM-LIIF and LM-LTE on their exact path (independent queries), below and beyond the x4 at
    which they clip the cell as demo.py does."""
    ckpt = tmp_path / 'model.pth'
    model = tiny_checkpoint(ckpt, SPECS[family])
    assert model.cell_scale_max == 4
    inp = tmp_path / 'in.png'
    photo(7, 6).save(inp)
    for scale in (3, 12):
        full = demo_render(tmp_path, ckpt, inp, scale)
        assert_regions_match(ModelRegions(Upscaler.load(ckpt, 'cpu'), read_image(inp)), full, scale)


def test_regions_of_a_tiled_encoding(tmp_path):
    """An input larger than the tile is encoded in tiles, as demo.py --tile does."""
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, liif_spec(hidden=(16,), n_resblocks=2))
    inp = tmp_path / 'in.png'
    photo(31, 37).save(inp)
    full = demo_render(tmp_path, ckpt, inp, 3.5, '--tile', '16')  # at least the receptive field (13)
    up = Upscaler.load(ckpt, 'cpu', tile=16)
    assert up.tile_for((31, 37)) == 16
    assert_regions_match(ModelRegions(up, read_image(inp)), full, 3.5)


@pytest.mark.parametrize('mode', ['L', 'RGBA', 'LA'])
def test_regions_keep_the_input_mode_and_alpha(tmp_path, mode):
    """Grayscale stays grayscale and alpha is upscaled bicubically, as demo.py writes them."""
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    img = photo(8, 11, mode)
    if 'A' in mode:
        alpha = np.linspace(0, 255, 8 * 11).reshape(8, 11).astype(np.uint8)
        img.putalpha(Image.fromarray(alpha))
    inp = tmp_path / 'in.png'
    img.save(inp)
    full = demo_render(tmp_path, ckpt, inp, 5)
    source = ModelRegions(Upscaler.load(ckpt, 'cpu'), read_image(inp))
    assert source.render(5, Region(0, 0, 4, 4)).mode == mode
    assert_regions_match(source, full, 5)


@pytest.mark.parametrize('scale', [0.5, 2.5, 7, 30])
def test_bicubic_regions_are_crops_of_pils_full_resize(scale):
    """Equal to PIL's full resize bit for bit from x1 up (below, PIL may pick the other pass order)."""
    img = photo(13, 17)
    out_hw = region_output_size((13, 17), scale)
    full = np.asarray(img.resize(out_hw[::-1], Image.BICUBIC)).astype(int)
    source = BicubicRegions(read_image_from(img))
    whole = np.asarray(source.render(scale, Region(0, 0, *out_hw))).astype(int)
    assert np.array_equal(whole, full) if scale >= 1 else np.abs(whole - full).max() <= 16
    for r in regions_of(out_hw):
        got = np.asarray(source.render(scale, r)).astype(int)
        assert np.array_equal(got, whole[r.top:r.top + r.height, r.left:r.left + r.width])


def read_image_from(img: Image.Image):
    """A PIL image as the LoadedImage read_image gives for its file."""
    return split_channels(img)


def test_the_input_is_encoded_once(tmp_path):
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    up = Upscaler.load(ckpt, 'cpu')
    calls = []
    up.model.encoder.register_forward_hook(lambda *a: calls.append(1))
    source = ModelRegions(up, read_image_from(photo(6, 8)))
    source.encode()
    for scale, r in [(2, Region(0, 0, 5, 5)), (13.7, Region(40, 50, 20, 30)), (30, Region(100, 0, 3, 240))]:
        source.render(scale, r)
    assert len(calls) == 1
    up(np.zeros((4, 4, 3), np.uint8), scale=2)  # the model encodes another image...
    assert len(calls) == 2
    a = np.asarray(source.render(2, Region(0, 0, 5, 5)))  # ...so the region encodes its own again
    assert len(calls) == 3
    assert np.array_equal(a, np.asarray(ModelRegions(up, read_image_from(photo(6, 8))).render(2, Region(0, 0, 5, 5))))


def test_bf16_regions_are_close_to_fp32(bundled):
    source = ModelRegions(bundled, read_image_from(photo(10, 14)))
    r = Region(10, 20, 30, 40)
    a = np.asarray(source.render(12, r)).astype(int)
    b = np.asarray(source.render(12, r, precision='bf16')).astype(int)
    assert np.abs(a - b).mean() < 2 and np.array_equal(a, np.asarray(source.render(12, r)).astype(int))


def test_a_render_stops_when_cancelled(tmp_path):
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    source = ModelRegions(Upscaler.load(ckpt, 'cpu', bsize=100), read_image_from(photo(6, 8)))
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 3
    with pytest.raises(Cancelled):
        source.render(10, Region(0, 0, 40, 60), cancelled=cancelled)
    assert len(asked) == 4  # stopped at the fourth of 24 chunks


def test_nonfinite_predictions_are_refused(tmp_path):
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    up = Upscaler.load(ckpt, 'cpu')
    with torch.no_grad():
        up.model.imnet.layers[-1].bias.fill_(float('nan'))
    with pytest.raises(UserError, match=r'NaN or inf for 20 of 20 pixels'):
        ModelRegions(up, read_image_from(photo(6, 8))).render(2, Region(0, 0, 4, 5))


@pytest.mark.parametrize('region, message', [
    (Region(-1, 0, 2, 2), 'outside the 20x30 output'),
    (Region(19, 0, 2, 2), 'outside the 20x30 output'),
    (Region(0, 29, 1, 2), 'outside the 20x30 output'),
    (Region(0, 0, 0, 5), 'at least 1x1'),
    (Region(0, 0, 2.0, 5), 'must be integers'),
    (Region(0, True, 2, 5), 'must be integers'),
    (Region(0, 0, 20, 30), 'over the budget of 500 per request'),
])
def test_bad_regions_are_one_line(region, message):
    with pytest.raises(UserError, match=message) as e:
        check_region(region, (20, 30), max_pixels=500)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('scale', [float('nan'), float('inf'), 0, -2, True, '2', None])
def test_bad_scales_are_one_line(scale):
    with pytest.raises(UserError, match='scale must be a positive finite number'):
        region_output_size((10, 10), scale)


def test_scales_past_the_side_budget_are_refused():
    assert region_output_size((10, 10), MAX_SIDE / 10) == (MAX_SIDE, MAX_SIDE)
    with pytest.raises(UserError, match='at most 1,048,576 pixels a side'):
        region_output_size((10, 10), MAX_SIDE / 10 + 1)
    with pytest.raises(UserError, match='fp16 needs a CUDA device'):
        BicubicRegions(read_image_from(photo(4, 4))).render(2, Region(0, 0, 1, 1), precision='fp16')


def test_models_whose_queries_are_coupled_are_refused_in_one_line(tmp_path):
    """A model that renders the whole grid at once (LMF's CMSR) or couples the queries of a call
    (SRNO, HIIF: Galerkin attention) cannot give regions equal to its full render."""
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    image = read_image_from(photo(6, 8))
    up = Upscaler.load(ckpt, 'cpu')
    up.model.whole_grid_queries = True
    with pytest.raises(UserError, match=r'^lmf: this model renders the whole output grid in one call \(CMSR\)'):
        ModelRegions(up, image, 'lmf')
    up = Upscaler.load(ckpt, 'cpu')
    up.model.query_context = lambda chunks: None
    with pytest.raises(UserError, match='couples the queries of a call') as e:
        ModelRegions(up, image, 'srno')
    assert '\n' not in str(e.value)


def test_a_declared_cell_clip_is_applied_as_render_applies_it(tmp_path):
    """A model declaring cell_scale_max (LMF: 4) sees, beyond that scale, the cell of that scale."""
    ckpt = tmp_path / 'model.pth'
    tiny_checkpoint(ckpt, SPECS['liif'])
    up = Upscaler.load(ckpt, 'cpu')
    cells = []
    query = up.model.query_rgb
    up.model.query_rgb = lambda coord, cell: cells.append(cell) or query(coord, cell)
    source = ModelRegions(up, read_image_from(photo(6, 8)))
    source.render(12, Region(0, 0, 3, 3))
    up.model.cell_scale_max = 4
    source.render(12, Region(0, 0, 3, 3))
    source.render(3, Region(0, 0, 3, 3))
    assert torch.allclose(cells[0][0, 0], torch.tensor([2 / 72, 2 / 96]))
    assert torch.allclose(cells[1][0, 0], torch.tensor([2 / 72 * 3, 2 / 96 * 3]))  # the cell of x4
    assert torch.allclose(cells[2][0, 0], torch.tensor([2 / 18, 2 / 24]))          # below x4: unchanged
