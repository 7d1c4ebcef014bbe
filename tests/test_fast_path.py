"""The fast decoder path (models/fast_query.py) computes the plain path's function: forward and
gradients, every LIIF variant, Meta-SR and A-LIIF, non-square grids, non-integer scales, borders."""
import itertools
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from inference.norm import DataNorm
from inference.render import render
from models import fast_query, make
from models.fast_query import fast_path, nearest_index, project_feat, use_fast
from models.fused import relu_
from utils.coords import make_cell, make_coord, sample_nearest, unfold3x3
from inference.render import batched_predict
from release_keys import as_queries, release_vectors
from tiny import aliif_spec, edsr_spec, liif_spec, lmf_spec, metasr_spec, mlp_spec, swinir_spec

HALF = DataNorm((0.5,), (0.5,), (0.5,), (0.5,))

VECTORS = Path(__file__).parent / 'data' / 'vectors'
TOL = 1e-5


def liif(feat_unfold=True, local_ensemble=True, cell_decode=True, hidden_list=(24, 24)):
    """A tiny LIIF (6 features) with the paper's decoder shape, seeded."""
    torch.manual_seed(0)
    return make(liif_spec(n_feats=6, hidden=hidden_list, feat_unfold=feat_unfold, local_ensemble=local_ensemble,
                          cell_decode=cell_decode))


def build(name: str):
    torch.manual_seed(0)
    if name == 'metasr':
        return make(metasr_spec(n_feats=6))
    if name == 'lte':
        return make({'name': 'lte', 'args': {'encoder_spec': edsr_spec(6), 'imnet_spec': mlp_spec((24, 24)),
                                             'hidden_dim': 16}})
    if name.startswith('lm'):  # LMF: with mod_input (the release configs) and without ('-raw')
        family, raw = name.split('-')[0], name.endswith('-raw')
        extra = {'mod_input': False} if raw else {}
        if family == 'lmliif' and raw:
            extra['feat_unfold'] = False
        return make(lmf_spec(family, n_feats=6, hidden_dim=8, hidden_depth=3, hyper=(24,), **extra))
    if name == 'swinir-lte':  # a window encoder: the latent grid is larger than the input
        return make({'name': 'lte', 'args': {'encoder_spec': swinir_spec(drop_path_rate=0.0),
                                             'imnet_spec': mlp_spec((24,)), 'hidden_dim': 8}})
    return make(aliif_spec(n_feats=6, basis_num=4, basis_hidden=(8, 8), expansion=(16,)))


def queries(b=2, h=5, w=7, out=(13, 18)):
    """Input (B, 3, 5, 7), and queries: a 13x18 output grid (scales 2.6 and 2.57), its four
    corner pixels at the very border (+-1), random points, and the latent cells' exact edges."""
    g = torch.Generator().manual_seed(1)
    inp = torch.randn(b, 3, h, w, generator=g)
    grid = make_coord(out)  # (Q0, 2)
    border = torch.tensor([[-1., -1.], [-1., 1.], [1., -1.], [1., 1.], [1 - 1e-7, -1 + 1e-7]])
    edges = torch.stack(torch.meshgrid(-1 + 2 * torch.arange(h + 1) / h,
                                       -1 + 2 * torch.arange(w + 1) / w, indexing='ij'), -1).view(-1, 2)
    rand = torch.rand(40, 2, generator=g) * 2 - 1
    coord = torch.cat([grid, border, edges, rand]).unsqueeze(0).expand(b, -1, -1).contiguous()
    cell = make_cell(out, coord)
    cell[1] *= 1.7  # a different (non-integer) scale for the second image
    return inp, coord, cell


def forward_and_grads(model, fast: bool):
    """(output, {name: grad} for every parameter and the input) of the fast or plain path."""
    inp, coord, cell = queries()
    inp = inp.requires_grad_()
    model.zero_grad()
    model.gen_feat(inp)
    out = model.query_rgb(coord, cell, fast=fast)
    (out * torch.linspace(0.5, 1, out.numel()).view_as(out)).mean().backward()
    # (EDSR's mean-shift layers are kept for checkpoints but unused: no gradient on either path.)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    grads['<inp>'] = inp.grad.clone()
    return out.detach(), grads


def assert_paths_match(model):
    """Outputs within 1e-5; each gradient within 1e-5 of its largest entry (a gradient sums
    thousands of per-query terms, which the two paths add in different orders)."""
    out_f, grads_f = forward_and_grads(model, True)
    out_p, grads_p = forward_and_grads(model, False)
    assert out_f.dtype == out_p.dtype == torch.float32
    assert (out_f - out_p).abs().max().item() <= TOL
    assert grads_f.keys() == grads_p.keys()
    for name in grads_p:
        err = (grads_f[name] - grads_p[name]).abs().max().item()
        assert err <= TOL * grads_p[name].abs().max().item(), (name, err)
    with torch.no_grad():  # inference takes other kernels (fused linear + ReLU, 32-bit gathers)
        inp, coord, cell = queries()
        model.gen_feat(inp)
        assert (model.query_rgb(coord, cell, fast=True) - out_p).abs().max().item() <= TOL
    assert len(grads_p) > 1 and all(g.abs().sum() > 0 for g in grads_p.values())


@pytest.mark.parametrize('feat_unfold,local_ensemble,cell_decode', list(itertools.product([True, False], repeat=3)))
def test_liif_fast_equals_plain(feat_unfold, local_ensemble, cell_decode):
    assert_paths_match(liif(feat_unfold, local_ensemble, cell_decode))


@pytest.mark.parametrize('hidden_list', [[], [24]])
def test_liif_shallow_decoders(hidden_list):
    assert_paths_match(liif(hidden_list=hidden_list))


@pytest.mark.parametrize('name', ['metasr', 'a-liif', 'lte', 'swinir-lte', 'lmliif', 'lmliif-raw', 'lmlte',
                                  'lmlte-raw'])
def test_other_models_fast_equals_plain(name):
    assert_paths_match(build(name))


@pytest.mark.parametrize('path', [p.name for p in release_vectors()])
def test_vectors_through_default_path(path):
    """The released-format vectors hold through the default (fast) path."""
    vec = torch.load(VECTORS / path, weights_only=True)
    if vec['coord'] is None:
        pytest.skip('an encoder with its upsampling tail: no queries')
    model = make(vec['checkpoint']['model'], load_sd=True).eval()  # SwinIR's stochastic depth is off in eval
    assert use_fast()
    coord, cell, expected = as_queries(vec)
    with torch.no_grad():
        out = model(vec['inp'], coord, cell)
    assert (out - expected).abs().max().item() <= TOL


def test_default_is_fast_and_switch_selects_plain():
    model = liif()
    inp, coord, cell = queries()
    with torch.no_grad():
        model.gen_feat(inp)
        fast, plain = model.query_rgb_fast(coord, cell), model.query_rgb_plain(coord, cell)
        assert torch.equal(model.query_rgb(coord, cell), fast)
        with fast_path(False):
            assert torch.equal(model.query_rgb(coord, cell), plain)
            assert torch.equal(model.query_rgb(coord, cell, fast=True), fast)
        assert torch.equal(model.query_rgb(coord, cell), fast)
    assert not torch.equal(fast, plain)  # (so the checks above tell the paths apart)


def test_project_feat_is_unfold_then_linear():
    """The 3x3 convolution reads the unfolded channels in the unfolding order c*9 + 3*dy + dx (docs/design.md §2.1)."""
    torch.manual_seed(0)
    feat, weight, bias = torch.randn(2, 4, 5, 6), torch.randn(7, 36), torch.randn(7)
    expected = torch.einsum('bkhw,ok->bohw', unfold3x3(feat), weight) + bias.view(1, 7, 1, 1)
    assert torch.allclose(project_feat(feat, weight, True, bias), expected, atol=1e-5)
    weight1 = torch.randn(7, 4)
    assert torch.allclose(project_feat(feat, weight1, False), torch.einsum('bchw,oc->bohw', feat, weight1), atol=1e-5)


def test_nearest_index_is_the_sampled_cell():
    torch.manual_seed(0)
    grid = torch.randn(2, 3, 5, 7)
    coord = (torch.rand(2, 300, 2) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6)
    index = nearest_index(coord, (5, 7))  # (B, N)
    rows = grid.flatten(2).transpose(1, 2)  # (B, h*w, 3)
    assert torch.equal(torch.gather(rows, 1, index.unsqueeze(-1).expand(-1, -1, 3)), sample_nearest(grid, coord))


def test_nearest_index_is_exact_beyond_float32_integers():
    """A latent grid of more than 2^24 cells (an input over ~4096^2): the flat index of the cells
    near its end is not representable in float32, yet the index must name the sampled cell."""
    h, w = 4100, 4100  # 16,810,000 cells > 2^24 = 16,777,216
    row, col = torch.tensor([4099, 4099, 4098, 17]), torch.tensor([4099, 4098, 4097, 4099])
    coord = torch.stack([(2 * row + 1) / h - 1, (2 * col + 1) / w - 1], -1).unsqueeze(0)  # centres
    assert torch.equal(nearest_index(coord, (h, w))[0], row * w + col)


def test_chunked_render_reuses_projection_until_weights_change():
    """Rendering chunk by chunk (the projection cached) equals one call; an in-place weight update
    (an optimizer step) is seen by the next query; the cache is not in the state dict."""
    model = liif().eval()
    keys = set(model.state_dict())
    inp, coord, cell = queries()
    with torch.no_grad():
        whole = model(inp, coord, cell)
        assert torch.allclose(batched_predict(model, inp, coord, cell, bsize=17), whole, atol=1e-6)
        model.imnet.layers[0].weight.mul_(1.5)
        expected = model.query_rgb_plain(coord, cell)
        assert (model.query_rgb(coord, cell) - expected).abs().max().item() <= TOL
    assert set(model.state_dict()) == keys


@pytest.mark.parametrize('name', ['liif', 'metasr', 'a-liif', 'lte', 'lmliif', 'lmlte'])
def test_bf16_autocast_output_is_float32_and_close(name):
    model = (liif() if name == 'liif' else build(name)).eval()
    inp, coord, cell = queries()
    with torch.no_grad():
        ref = model(inp, coord, cell)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(inp, coord, cell)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 0.05 * max(1.0, ref.abs().max().item())


def test_bf16_relu_as_int16_is_relu():
    x = torch.tensor([-3.0, -1e-40, -0.0, 0.0, 1e-40, 2.5, float('inf'), -float('inf')]).bfloat16()
    x = torch.cat([x, torch.randn(1000).bfloat16()])
    with torch.no_grad():
        out = relu_(x.clone())
    assert torch.equal(out, torch.relu(x)) and out.dtype == torch.bfloat16


@pytest.mark.parametrize('name', ['liif', 'a-liif', 'metasr', 'lte', 'lmliif', 'lmlte'])
@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('where', ['input', 'hidden weight', 'coord'])
def test_nan_reaches_the_output_as_in_the_plain_path(name, precision, where):
    """Inference fuses ReLU into ops that turn NaN into 0 (oneDNN's linear+ReLU, the int16
    clamp): a NaN in the input, the weights or the queries must still come out as NaN, exactly
    where the plain path puts it, not as a plausible colour."""
    model = (liif() if name == 'liif' else build(name)).eval()
    inp, coord, cell = queries()
    if where == 'input':
        inp[0, :, 2, 3] = float('nan')
    elif where == 'coord':
        coord = coord.clone()
        coord[1, 5] = float('nan')
    else:
        with torch.no_grad():
            hidden = [m for m in model.imnet.modules() if isinstance(m, torch.nn.Linear)][1]
            hidden.weight[0, 0] = float('nan')
    outs = []
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
        for fast in (True, False):
            model.gen_feat(inp)
            outs.append(model.query_rgb(coord, cell, fast=fast))
    fast_out, plain_out = outs
    assert plain_out.isnan().any()
    assert torch.equal(fast_out.isnan(), plain_out.isnan())


def test_metasr_default_path_is_fast_only_without_gradients():
    model = build('metasr')
    inp, coord, cell = queries()
    model.gen_feat(inp)
    with torch.no_grad():
        fast, plain = model.query_rgb_fast(coord, cell), model.query_rgb_plain(coord, cell)
        assert torch.equal(model.query_rgb(coord, cell), fast)
    assert torch.equal(model.query_rgb(coord, cell).detach(), plain)
    assert torch.equal(model.query_rgb(coord, cell, fast=True).detach(), fast)
    assert not torch.equal(fast, plain)


class _Layout(torch.nn.Module):
    """Wraps an encoder and hands back its output in a chosen memory format."""

    def __init__(self, encoder, channels_last: bool):
        super().__init__()
        self.inner, self.channels_last, self.out_dim = encoder, channels_last, encoder.out_dim

    def forward(self, x):
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return self.inner(x).contiguous(memory_format=fmt)


@pytest.mark.parametrize('precision', ['fp32', 'bf16'])
@pytest.mark.parametrize('channels_last', [False, True], ids=['channels-first', 'channels-last'])
def test_render_gathers_from_a_row_major_table(precision, channels_last, monkeypatch):
    """Whatever memory format the encoder returns, the table demo.py's rendering gathers from is
    row-major (contiguous), so gather_rows takes its row copy (the 32-bit-word one in bf16), not a
    strided F.embedding; and the result is the same either way."""
    seen = []
    real = fast_query.gather_rows

    def spy(table, index):
        seen.append((table.is_contiguous(), table.dtype))
        return real(table, index)
    monkeypatch.setattr(fast_query, 'gather_rows', spy)
    torch.manual_seed(0)
    model = make(liif_spec(n_feats=6, hidden=(16, 16))).eval()
    img = torch.rand(1, 3, 7, 9)
    want = render(model, img, (20, 25), HALF, bsize=100, precision=precision)
    model.encoder = _Layout(model.encoder, channels_last)
    got = render(model, img, (20, 25), HALF, bsize=100, precision=precision)
    assert seen and all(contiguous for contiguous, _ in seen)
    assert {dtype for _, dtype in seen} == {torch.bfloat16 if precision == 'bf16' else torch.float32}
    assert (got.astype(int) - want.astype(int)).max() <= 1
