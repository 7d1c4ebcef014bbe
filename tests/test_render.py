"""The rendering engine: band-by-band == one-shot, tiled == untiled, receptive radii, uint8 output."""
import numpy as np
import pytest
import torch
import torch.nn as nn

import models
from utils.coords import make_cell, make_coord
from inference.norm import DataNorm
from inference.render import band_coord, band_spans, batched_predict, default_band_rows, encode, query_bands, render
from inference.tiling import encode_tiled, receptive_radius, tile_spans
from tiny import edsr_spec, metasr_spec, tiny_liif


HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))  # the shipped configs' normalisation


def test_band_coord_is_a_slice_of_the_full_grid():
    """Bit for bit: a render in bands queries exactly the points of a render in one shot."""
    full = make_coord((13, 7))  # (91, 2)
    for r0, r1 in [(0, 4), (4, 9), (12, 13)]:
        assert torch.equal(band_coord((13, 7), r0, r1), full[r0 * 7:r1 * 7])  # the same floats


def test_band_spans_cover_every_row_once():
    assert band_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert band_spans(3, 5) == [(0, 3)]
    assert default_band_rows((7680, 7680)) == (1 << 20) // 7680
    assert default_band_rows((5, 3)) == 5  # never more rows than the image has


@pytest.mark.parametrize('out_hw', [(23, 17), (5, 40)])
def test_bands_equal_one_shot(out_hw):
    model = tiny_liif(n_resblocks=2)
    inp = torch.rand(1, 3, 6, 9) * 2 - 1
    coord = make_coord(out_hw).unsqueeze(0)  # (1, H*W, 2)
    one_shot = batched_predict(model, inp, coord, make_cell(out_hw, coord), 10 ** 6)
    one_shot = one_shot.view(*out_hw, 3)
    encode(model, inp)
    bands = list(query_bands(model, out_hw, bsize=7, band_rows=4))
    assert [(r0, r1) for r0, r1, _ in bands] == band_spans(out_hw[0], 4)
    banded = torch.cat([pred for _, _, pred in bands], dim=0)
    assert banded.shape == (*out_hw, 3)
    assert torch.allclose(banded, one_shot, atol=1e-6, rtol=0)


def test_render_uint8_does_not_depend_on_band_or_chunk_size():
    model = tiny_liif(n_resblocks=2)
    img = torch.rand(1, 3, 5, 7)
    a = render(model, img, (31, 18), HALF, bsize=1000, band_rows=31)
    b = render(model, img, (31, 18), HALF, bsize=13, band_rows=3)
    assert a.dtype == np.uint8 and a.shape == (31, 18, 3)
    # Identical up to a float-rounding flip of a value sitting exactly on a .5 boundary.
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (a == b).mean() > 0.999


def test_render_writes_into_a_given_buffer():
    model = tiny_liif(n_resblocks=2)
    img = torch.rand(1, 3, 4, 4)
    out = np.zeros((9, 6, 3), np.uint8)
    assert render(model, img, (9, 6), HALF, out=out) is out
    with pytest.raises(ValueError):
        render(model, img, (9, 6), HALF, out=np.zeros((9, 6, 3), np.float32))


def test_pred_to_uint8_denormalises_clamps_and_rounds():
    pred = torch.tensor([[-1.0, 0.0, 1.0], [-3.0, 2.0, 0.002], [0.5, 0.5, 0.5]])
    out = HALF.pred_to_uint8(pred)
    assert out.dtype == np.uint8
    # 0.002 -> 0.501 -> 127.755 -> 128; 0.5 -> 0.75 -> 191.25 -> 191
    assert out.tolist() == [[0, 128, 255], [0, 255, 128], [191, 191, 191]]
    per_channel = DataNorm(gt_sub=(0.0, 0.5, 1.0), gt_div=(1.0, 1.0, 1.0)).pred_to_uint8(torch.zeros(1, 3))
    assert per_channel.tolist() == [[0, 128, 255]]


def test_receptive_radius_counts_convs():
    assert receptive_radius(models.make({'name': 'edsr-baseline', 'args': {'no_upsampling': True}})) == 34
    assert receptive_radius(tiny_liif(n_resblocks=2).encoder) == 6
    rdn = models.make({'name': 'rdn', 'args': {'G0': 4, 'RDNconfig': 'B', 'no_upsampling': True}})
    assert receptive_radius(rdn) == 2 + 16 * 8 + 1
    dilated = nn.Sequential(nn.Conv2d(3, 4, 5, padding=4, dilation=2), nn.ReLU())
    assert receptive_radius(dilated) == 4
    fixed = nn.Conv2d(3, 3, 3, padding=1)
    fixed.receptive_radius = 9
    assert receptive_radius(fixed) == 9


@pytest.mark.parametrize('layer', [nn.AdaptiveAvgPool2d(1), nn.Conv2d(3, 3, 3, stride=2, padding=1),
                                   nn.Conv2d(3, 3, 3, padding=0)])
def test_receptive_radius_refuses_what_it_cannot_bound(layer):
    with pytest.raises(ValueError, match='cannot tile'):
        receptive_radius(nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), layer))


def test_receptive_radius_is_the_true_reach():
    """A change of one input pixel moves features exactly up to `radius` pixels away."""
    encoder = tiny_liif(n_resblocks=2).encoder  # radius 6
    torch.manual_seed(1)
    x = torch.rand(1, 3, 31, 31)
    y = x.clone()
    y[0, :, 15, 15] += 1
    with torch.no_grad():
        diff = (encoder(x) - encoder(y)).abs().amax(dim=(0, 1))  # (31, 31)
    rows = diff.amax(dim=1)
    assert (rows[15 - 6:15 + 7] > 0).all()
    assert rows[:15 - 6].max() == 0 and rows[15 + 7:].max() == 0


def test_tile_spans():
    assert tile_spans(10, 4, 2) == [(0, 4, 0, 6), (4, 8, 2, 10), (8, 10, 6, 10)]


@pytest.mark.parametrize('tile', [5, 8, 13])
def test_tiled_latent_grid_equals_untiled(tile):
    encoder = tiny_liif(n_resblocks=2).encoder
    inp = torch.rand(1, 3, 27, 34) * 2 - 1
    with torch.no_grad():
        whole = encoder(inp)
    calls = []
    tiled = encode_tiled(encoder, inp, tile, progress=lambda: calls.append(1))
    assert len(calls) == -(-27 // tile) * -(-34 // tile)
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=0)


def test_tiled_with_an_upsampling_encoder():
    encoder = models.make(edsr_spec(n_feats=4, scale=2)).eval()
    inp = torch.rand(1, 3, 14, 11)
    with torch.no_grad():
        whole = encoder(inp)  # (1, 3, 28, 22)
    assert torch.allclose(encode_tiled(encoder, inp, 4), whole, atol=1e-5, rtol=0)


def test_too_small_a_radius_breaks_equality():
    """The oracle can fail: tiles overlapping less than the receptive radius differ."""
    encoder = tiny_liif(n_resblocks=2).encoder
    inp = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        whole = encoder(inp)
    assert not torch.allclose(encode_tiled(encoder, inp, 6, radius=3), whole, atol=1e-5)


@pytest.mark.parametrize('fast', [True, False])
def test_tiled_render_equals_untiled(fast):
    fast_path = pytest.importorskip('models.fast_query').fast_path
    model = tiny_liif(n_resblocks=2)
    encoder = model.encoder
    inp = torch.rand(1, 3, 19, 23) * 2 - 1
    out_hw = (41, 50)
    with fast_path(fast):
        whole_feat = encode(model, inp).clone()
        whole = torch.cat([p for _, _, p in query_bands(model, out_hw, 500)])
        tiled_feat = encode(model, inp, tile=7).clone()
        tiled = torch.cat([p for _, _, p in query_bands(model, out_hw, 500)])
    assert torch.allclose(tiled_feat, whole_feat, atol=1e-5, rtol=0)
    assert torch.allclose(tiled, whole, atol=1e-5, rtol=0)
    assert model.encoder is encoder  # the stand-in used for the stitched grid is gone


def test_render_metasr_and_no_ensemble_models():
    img = torch.rand(1, 3, 6, 5)
    inp = HALF.inp(img)
    for model in (models.make(metasr_spec(n_feats=4)).eval(),
                  tiny_liif(n_resblocks=2, local_ensemble=False, feat_unfold=False)):
        out_hw = (13, 11)
        coord = make_coord(out_hw).unsqueeze(0)
        ref = batched_predict(model, inp, coord, make_cell(out_hw, coord), 10 ** 6)
        ref = HALF.pred_to_uint8(ref[0].view(*out_hw, 3))
        got = render(model, img, out_hw, HALF, bsize=10, band_rows=2, tile=4)
        assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_bf16_render_is_close_to_fp32():
    model = tiny_liif(n_resblocks=2)
    img = torch.rand(1, 3, 6, 6)
    a = render(model, img, (12, 12), HALF).astype(int)
    b = render(model, img, (12, 12), HALF, precision='bf16').astype(int)
    assert np.abs(a - b).max() <= 8
