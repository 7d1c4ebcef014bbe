"""LMF (docs/design.md §2.6, §2.7): the authors' vectors (every output they store: exact, training
branch, chunked, CMSR at x6 and x8 with its levels), the release's state dicts, the render MLP's
definition, and CMSR's rules (tables, levels, calibration, batches, grids it was not built for)."""
import math

import pytest
import torch

import models
from inference.render import batched_predict
from models.cmsr import CMSR, candidate_means, check_tables, mean_abs_shift, new_table, update_table
from release_keys import DATA, assert_matches_release
from tiny import lmf_spec
from utils.coords import make_cell, make_coord, resampled_centres
from utils.errors import UserError

TOL = 1e-5
CMSR_VECTORS = ['lm-liif-cmsr-x6', 'lm-liif-cmsr-x8', 'lm-lte-cmsr-x6', 'lm-lte-cmsr-x8']


def vector(name: str) -> dict:
    return torch.load(DATA / 'vectors' / f'{name}-seed0.pth', weights_only=True)


def build(spec: dict, **args) -> torch.nn.Module:
    return models.make(spec, args=args or None, load_sd=True).eval()


@pytest.mark.parametrize('name', ['lm-liif', 'lm-lte'])
def test_training_branch_and_chunked_queries_reproduced(name):
    """expected_train (the release's training branch) and expected_bsize (queries in chunks of
    100); `expected` itself is checked with the other release-format vectors (test_vectors.py)."""
    v = vector(name)
    model = build(v['checkpoint']['model'])
    with torch.no_grad():
        chunked = batched_predict(model, v['inp'], v['coord'], v['cell'], v['bsize'])
        model.train()
        train = model(v['inp'], v['coord'], v['cell'])
    assert (chunked - v['expected_bsize']).abs().max().item() <= TOL
    assert (train - v['expected_train']).abs().max().item() <= TOL


@pytest.mark.parametrize('name', CMSR_VECTORS)
@pytest.mark.parametrize('fast', [True, False], ids=['fast', 'plain'])
def test_cmsr_vectors_exact_output(name, fast):
    """Without CMSR, the (clipped-cell) full grid renders as the authors' exact path."""
    v = vector(name)
    model = build(v['checkpoint']['model'])
    with torch.no_grad():
        model.gen_feat(v['inp'])
        out = model.query_rgb(v['coord'], v['cell'], fast=fast)
    assert (out - v['expected_exact']).abs().max().item() <= TOL


@pytest.mark.parametrize('name', CMSR_VECTORS)
def test_cmsr_vectors_reproduced(name):
    """With the vector's tables: its CMSR output, through cmsr_spec (as the release sets it) and
    through set_cmsr (as test.py and demo.py do); CMSR really approximates (differs from exact)."""
    v = vector(name)
    assert torch.allclose(v['cell'], make_cell(v['out_grid_hw'], v['coord']) * v['cell_clip'])
    with torch.no_grad():
        out = build(v['checkpoint']['model'], cmsr_spec=v['cmsr_spec'])(v['inp'], v['coord'], v['cell'])
        model = build(v['checkpoint']['model'])
        model.set_cmsr(v['cmsr_spec']['s2m_tables'])
        assert model.whole_grid_queries
        again = model(v['inp'], v['coord'], v['cell'])
    assert (out - v['expected']).abs().max().item() <= TOL
    assert torch.equal(out, again)
    assert (v['expected'] - v['expected_exact']).abs().max().item() > 0.1


@pytest.mark.parametrize('name', CMSR_VECTORS)
def test_cmsr_measure_levels_and_margin(name):
    """The complexity measure of every latent cell: as many cells per level as the authors count
    (cmsr_levels), and no cell closer to a threshold than the vector's margin."""
    v = vector(name)
    model = build(v['checkpoint']['model'], cmsr_spec=v['cmsr_spec'])
    with torch.no_grad():
        model.gen_feat(v['inp'])
        _, mm, _ = model.fast_table(v['cell'])
    mm = mm.flatten()
    scales, thresholds = model.cmsr.levels(math.sqrt(v['coord'].shape[1] / mm.numel()))
    counts = {}
    for i, s in enumerate(scales):
        lo, hi = thresholds[i], thresholds[i + 1]
        counts[s] = int(((mm >= lo) & (mm <= hi)).sum()) if 0 < i < len(scales) - 1 else \
            int((mm <= hi).sum() if i == 0 else (mm >= lo).sum())
    assert counts == {float(k): n for k, n in v['cmsr_levels'].items()}
    inner = torch.tensor(thresholds[1:-1])
    margin = (mm.unsqueeze(1) - inner).abs().min().item()
    assert abs(margin - v['cmsr_margin']) < 1e-6


EDSR_B = {'name': 'edsr-baseline', 'args': {'no_upsampling': True}}
RDN = {'name': 'rdn', 'args': {'no_upsampling': True}}


def paper_spec(name: str, encoder: dict) -> dict:
    """The LMF release's train-lmf configs (out_dims as written there; the model derives them)."""
    depth, width = (6, 208) if name == 'lmliif' else (8, 288)
    args = {'encoder_spec': encoder,
            'imnet_spec': {'name': 'lmmlp', 'args': {'out_dim': 3, 'hidden_dim': 16, 'hidden_depth': depth,
                                                     'mod_scale': True, 'mod_shift': True}},
            'hypernet_spec': {'name': 'mlp', 'args': {'out_dim': width, 'hidden_list': [width]}},
            'local_ensemble': True, 'cell_decode': True, 'mod_input': True}
    args.update({'feat_unfold': True} if name == 'lmliif' else {'hidden_dim': 128})
    return {'name': name, 'args': args}


PAPER = {'edsr-baseline-lm-liif': paper_spec('lmliif', EDSR_B), 'rdn-lm-liif': paper_spec('lmliif', RDN),
         'edsr-baseline-lm-lte': paper_spec('lmlte', EDSR_B), 'rdn-lm-lte': paper_spec('lmlte', RDN)}


@pytest.mark.parametrize('section', sorted(PAPER))
def test_state_dict_matches_release(section):
    """Keys in order, shapes, and the header's counts of the authors' paper-size models."""
    assert_matches_release(models.make(PAPER[section]).state_dict(), 'state-dict-keys-lmf-mmagic.txt', section)


def test_render_mlp_modulates_before_the_relu():
    """lmmlp's definition written out by hand: relu(W x + b) scaled by 1 + scale and shifted,
    before the ReLU; scales first, then shifts, in the modulation vector; the fast form agrees."""
    torch.manual_seed(0)
    mlp = models.make({'name': 'lmmlp', 'args': {'in_dim': 3, 'out_dim': 2, 'hidden_dim': 4, 'hidden_depth': 2}})
    x, mod = torch.randn(5, 3), torch.randn(5, 16)
    h = x
    for l, layer in enumerate((mlp.layers[0], mlp.layers[2])):
        h = torch.relu(layer(h) * (1 + mod[:, 4 * l:4 * l + 4]) + mod[:, 8 + 4 * l:8 + 4 * l + 4])
    expected = mlp.layers[4](h)
    assert torch.allclose(mlp(x, mod), expected, atol=1e-6)
    with torch.no_grad():
        lin, rows = x @ mlp.first_layer()[0].t(), torch.arange(5)
        assert torch.allclose(mlp.from_linear(lin, mlp.table_columns(mod), rows), expected, atol=1e-6)
        bias = torch.randn(5, 4)  # a per-row bias of the first layer folded in instead of its own
        shifted = mlp.from_linear(lin + bias - mlp.first_layer()[1], mlp.table_columns(mod), rows)
        assert torch.allclose(mlp.from_linear(lin, mlp.table_columns(mod, bias), rows), shifted, atol=1e-5)
        perm = torch.tensor([3, 0, 4, 1, 2])  # rows gathered by index
        assert torch.allclose(mlp.from_linear(lin[perm], mlp.table_columns(mod), perm), expected[perm], atol=1e-6)
    shift_only = models.make({'name': 'lmmlp', 'args': {'in_dim': 3, 'out_dim': 2, 'hidden_dim': 4,
                                                        'hidden_depth': 2, 'mod_scale': False}})
    assert shift_only.mod_dim == 8
    scale, shift = shift_only.split_mod(mod[:, :8])
    assert scale is None and torch.equal(shift.flatten(1), mod[:, :8])


def test_lmmlp_refuses_the_conv_variant():
    with pytest.raises(ValueError, match='use_conv'):
        models.make({'name': 'lmmlp', 'args': {'in_dim': 3, 'out_dim': 3, 'hidden_dim': 4, 'hidden_depth': 1,
                                               'use_conv': True}})


def test_latent_mlp_reads_one_cell_per_image():
    """Modulations depend on the image's cell, which the latent MLP takes from the first query:
    a chunk of queries with that cell renders as in the whole call (chunks cannot change it)."""
    torch.manual_seed(0)
    model = models.make(lmf_spec('lmliif')).eval()
    inp = torch.randn(2, 3, 5, 6)
    coord = make_coord((12, 15)).unsqueeze(0).expand(2, -1, -1)
    cell = make_cell((12, 15), coord)
    with torch.no_grad():
        whole = model(inp, coord, cell)
        parts = batched_predict(model, inp, coord, cell, 7)
        other = model(inp, coord, cell * 2)
    assert (whole - parts).abs().max().item() <= 1e-6
    assert (whole - other).abs().max().item() > 1e-3


def test_resampled_centres_are_centres_inside_and_clamped_at_the_border():
    hw, size = (5, 7), (15, 21)
    grid = resampled_centres(hw, size).view(*size, 2)
    centres = make_coord(size, flatten=False)
    assert torch.allclose(grid[1:-1, 1:-1], centres[1:-1, 1:-1], atol=1e-6)
    last = make_coord(hw, flatten=False)
    assert torch.allclose(grid[0, :, 0], last[0, 0, 0].expand(21), atol=1e-7)  # clamped to the first centre row
    assert torch.allclose(grid[-1, :, 0], last[-1, 0, 0].expand(21), atol=1e-7)


def test_cmsr_levels_follow_the_tables():
    cmsr = CMSR(check_tables({6: {1: 0.3, 2: 0.4, 4: 0.5}, 8: {1: 0.3, 2: 0.4, 4: 0.5, 6: 1}}))
    assert cmsr.levels(6.0) == ([1.0, 2.0, 4.0, 6.0], [0.0, 0.3, 0.4, 0.5, 1.0])  # the target appended
    assert cmsr.levels(5.0) == ([1.0, 2.0, 4.0, 5.0], [0.0, 0.3, 0.4, 0.5, 1.0])  # first table >= 5: the 6 one
    assert cmsr.levels(8.08) == ([1.0, 2.0, 4.0, 6.0], [0.0, 0.3, 0.4, 0.5, 1.0])  # past every table: the last
    assert cmsr.levels(1.5) == ([1.0, 1.5], [0.0, 0.3, 1.0])


@pytest.mark.parametrize('tables,match', [
    ([1, 2], 'mapping'), ({}, 'mapping'), ({6: {}}, 'non-empty'), ({6: {1: -0.1}}, 'threshold'),
    ({6: {0: 0.1}}, 'decode scale'), ({float('nan'): {1: 0.1}}, 'target scale'), ({6: {1: 'x'}}, 'threshold'),
    ({6: {1: True}}, 'threshold')])
def test_cmsr_tables_refused_with_one_line(tables, match):
    with pytest.raises(UserError, match=match):
        check_tables(tables, 'tables.yaml')


def cmsr_model(name='lmliif'):
    torch.manual_seed(0)
    model = models.make(lmf_spec(name, n_feats=6)).eval()
    model.set_cmsr({6: {1: 0.3, 2: 0.45, 4: 0.6}})
    return model


def test_cmsr_only_beyond_the_training_scales():
    """At x4 (Q = 16 h w) CMSR is off: the exact render; beyond, an approximation."""
    model, inp = cmsr_model(), torch.randn(1, 3, 5, 6)
    for scale, same in ((4, True), (6, False)):
        coord = make_coord((5 * scale, 6 * scale)).unsqueeze(0)
        cell = make_cell((5 * scale, 6 * scale), coord)
        with torch.no_grad():
            model.gen_feat(inp)
            exact = model.query_rgb_fast(coord, cell)
            out = model.query_rgb(coord, cell)
        assert torch.equal(out, exact) == same


@pytest.mark.parametrize('name', ['lmliif', 'lmlte'])
def test_cmsr_batch_is_image_by_image(name):
    """A batch renders as its images one by one (the release masks the flattened batch)."""
    model = cmsr_model(name)
    inp = torch.randn(2, 3, 5, 6)
    coord = make_coord((30, 36)).unsqueeze(0).expand(2, -1, -1)
    cell = make_cell((30, 36), coord) * 1.5
    with torch.no_grad():
        both = model(inp, coord, cell)
        one = torch.cat([model(inp[i:i + 1], coord[:1], cell[:1]) for i in range(2)])
    assert torch.allclose(both, one, atol=1e-6)


def test_cmsr_on_other_points_samples_the_last_level():
    """Queries that are not the level grid (a subset, here its transpose order) get the last
    level sampled bilinearly at their coordinates, not the grid's values in grid order."""
    model, inp = cmsr_model(), torch.randn(1, 3, 5, 6)
    grid = make_coord((30, 36)).unsqueeze(0)
    cell = make_cell((30, 36), grid)
    moved = grid.view(1, 30, 36, 2).flip(1).reshape(1, -1, 2)  # the same points, rows reversed
    with torch.no_grad():
        a = model(inp, grid, cell).view(30, 36, 3)
        b = model(inp, moved, cell).view(30, 36, 3).flip(0)
    inner = (slice(1, -1), slice(1, -1))  # the release clamps the border rows of its level grid
    assert torch.allclose(a[inner], b[inner], atol=1e-5)


def test_calibration_step():
    """update_table on made-up renders (errors against the exact render at five points of
    measure 0, 0.01, 0.02, 0.03, 0.5): each decode scale accepts candidates up to its first
    failure, skips candidates with no point and those a smaller scale took; the remaining top
    candidate goes to the target; a later image can only lower thresholds, clipping coarser ones."""
    mm, exact = torch.tensor([0.0, 0.01, 0.02, 0.03, 0.5]), torch.zeros(5, 3)
    errors = {1: [0, 0.001, 0.2, 0.2, 0.2], 1.5: [0, 0, 0, 0.2, 0.2], 2: [0, 0, 0, 0, 0.2], 3: [0, 0, 0, 0, 0]}

    def level(errs):
        return lambda s: torch.tensor(errs[s]).unsqueeze(1).expand(5, 3)
    table = update_table(new_table(4), 4.0, exact, mm, level(errors), 1e-5, candidate_means(1))
    assert table == {1: 0.01, 1.5: 0.02, 2: 0.03, 3: 0.5, 4: 1.0}
    later = {1: [0.2] * 5, 1.5: [0, 0, 0, 0.2, 0.2], 2: [0.2] * 5, 3: [0.2] * 5}
    table = update_table({1: 0.5, 1.5: 0.6, 2: 0.7, 3: 0.8, 4: 1.0}, 4.0, exact, mm, level(later), 1e-5,
                         candidate_means(1))
    assert table == {1: 0.02, 1.5: 0.02, 2: 0.7, 3: 0.8, 4: 1.0}


def test_mean_abs_shift_reads_the_second_half():
    mod = torch.tensor([[1.0, -2.0, 3.0, -5.0]])
    assert mean_abs_shift(mod).item() == 4.0
