"""SRNO and HIIF (docs/design.md §2.5): every output their vectors store (the points, the whole grid in
one call, the authors' row-block prediction), the attention context (chunks == one call), the
released state dicts, and the small pure functions their outputs hang on."""
import pytest
import torch

import models
from models.galerkin import merge_heads, split_heads
from models.hiif import hierarchical_bits, local_position
from models.srno import HeadLayerNorm
from release_keys import DATA, header_counts, reference_keys
from tiny import edsr_spec

VECTORS = ['srno', 'hiif', 'swinir-hiif']
KEYS = 'state-dict-keys-srno-hiif.txt'


def load_vector(name: str) -> tuple[dict, torch.nn.Module]:
    v = torch.load(DATA / 'vectors' / f'{name}-seed0.pth', weights_only=True)
    return v, models.make(v['checkpoint']['model'], load_sd=True).eval()


def grid_queries(v: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The vector's whole target grid as (1, H*W, 2) queries, row-major, and its cell per query."""
    coord = v['coord_grid'].reshape(1, -1, 2)
    return coord, v['cell'].unsqueeze(1).expand(1, coord.shape[1], 2)


def as_image(pred: torch.Tensor, hw) -> torch.Tensor:
    """(1, H*W, 3) -> (1, 3, H, W), the authors' output layout."""
    return pred.transpose(1, 2).reshape(1, 3, *hw)


@pytest.mark.parametrize('name', VECTORS)
def test_whole_grid_in_one_call(name):
    v, model = load_vector(name)
    coord, cell = grid_queries(v)
    with torch.no_grad():
        out = as_image(model(v['inp'], coord, cell), v['out_grid_hw'])
    assert (out - v['expected_grid']).abs().max().item() <= 1e-5


@pytest.mark.parametrize('name', VECTORS)
def test_row_blocks_are_the_authors_batched_prediction(name):
    """eval_bsize rows per call: the attention of each block spans only its rows."""
    v, model = load_vector(name)
    coord, cell = grid_queries(v)
    n = v['eval_bsize'] * v['out_grid_hw'][1]
    with torch.no_grad():
        model.gen_feat(v['inp'])
        out = torch.cat([model.query_rgb(coord[:, i:i + n], cell[:, i:i + n]) for i in range(0, coord.shape[1], n)], 1)
    out = as_image(out, v['out_grid_hw'])
    assert (out - v['expected_grid_batched']).abs().max().item() <= 1e-5
    assert (v['expected_grid_batched'] - v['expected_grid']).abs().max().item() > 1e-3  # the blocks matter


@pytest.mark.parametrize('name', VECTORS)
@pytest.mark.parametrize('chunk', [100, 944])
def test_context_over_chunks_equals_one_call(name, chunk):
    """The attention sums accumulated over chunks, then each chunk queried with them, give the
    whole grid's one-call output (the bounded-memory whole image)."""
    v, model = load_vector(name)
    coord, cell = grid_queries(v)
    spans = [(i, i + chunk) for i in range(0, coord.shape[1], chunk)]
    with torch.no_grad():
        model.gen_feat(v['inp'])
        context = model.query_context(lambda: ((coord[:, a:b], cell[:, a:b]) for a, b in spans))
        out = torch.cat([model.query_rgb(coord[:, a:b], cell[:, a:b], context=context) for a, b in spans], 1)
    assert (as_image(out, v['out_grid_hw']) - v['expected_grid']).abs().max().item() <= 1e-5


def test_a_query_depends_on_the_others_of_its_call():
    v, model = load_vector('srno')
    coord, cell = grid_queries(v)
    with torch.no_grad():
        alone = model(v['inp'], coord[:, :10], cell[:, :10])
        with_all = model(v['inp'], coord, cell)[:, :10]
    assert (alone - with_all).abs().max() > 1e-4


def test_batch_elements_attend_separately():
    v, model = load_vector('hiif')
    coord, cell = grid_queries(v)
    inp2 = torch.cat([v['inp'], v['inp'].flip(-1)])
    with torch.no_grad():
        both = model(inp2, coord.expand(2, -1, -1), cell.expand(2, -1, -1))
        first = model(v['inp'], coord, cell)
    assert (both[:1] - first).abs().max() <= 1e-5


PAPER_SPECS = {
    f'{enc}-{fam}': {'name': name, 'args': {'encoder_spec': {'name': enc, 'args': {'no_upsampling': True}}}}
    for enc in ('edsr-baseline', 'rdn') for fam, name in (('srno', 'sronet'), ('hiif', 'hiif'))
}
PAPER_SPECS['swinir-hiif'] = {'name': 'hiif', 'args': {'encoder_spec': {'name': 'swinir', 'args': {'no_upsampling': True}}}}


@pytest.mark.parametrize('section', sorted(PAPER_SPECS))
def test_state_dict_matches_release(section):
    expected = reference_keys(KEYS)[section]
    sd = models.make(PAPER_SPECS[section]).state_dict()
    assert list(sd) == list(expected)
    assert {k: tuple(t.shape) for k, t in sd.items()} == expected
    assert (len(sd), sum(t.numel() for t in sd.values())) == header_counts(KEYS, section)


def test_srno_needs_a_64_channel_encoder():
    with pytest.raises(ValueError, match='64'):
        models.make({'name': 'sronet', 'args': {'encoder_spec': edsr_spec(n_feats=16)}})
    with pytest.raises(ValueError, match='heads'):
        models.make({'name': 'sronet', 'args': {'encoder_spec': edsr_spec(n_feats=64), 'width': 30, 'blocks': 4}})
    with pytest.raises(ValueError, match='heads'):
        models.make({'name': 'hiif', 'args': {'encoder_spec': edsr_spec(), 'hidden_dim': 30, 'blocks': 4}})


def test_heads_own_interleaved_channels():
    """Head h's q, k, v are channels [3c h, 3c h + c), [3c h + c, 3c h + 2c), [3c h + 2c, 3c (h+1))."""
    qkv = torch.arange(2 * 24, dtype=torch.float32).view(1, 2, 24)  # (B, Q, 3C), C = 8, 2 heads of 4
    q, k, v = split_heads(qkv, 2)
    assert q[0, 1, 0].tolist() == [12, 13, 14, 15]
    assert k[0, 0, 1].tolist() == [28, 29, 30, 31]
    assert v[0, 1, 1].tolist() == [44, 45, 46, 47]
    assert merge_heads(q)[0, 0].tolist() == [0, 1, 2, 3, 12, 13, 14, 15]


def test_srno_layer_norm_is_unbiased_std_plus_eps():
    norm = HeadLayerNorm(2, 4)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1).expand(2, 1, 4))
        norm.bias.fill_(0.5)
    t = torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64).view(1, 1, 1, 4).expand(1, 2, 1, 4)
    mean, std = 3.75, torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=torch.float64).std().item()  # divides by n - 1
    expected = (torch.tensor([1.0, 2.0, 4.0, 8.0]) - mean) / (std + 1e-5)
    out = norm(t.float())
    assert torch.allclose(out[0, 0, 0], expected + 0.5, atol=1e-6)
    assert torch.allclose(out[0, 1, 0], 2 * expected + 0.5, atol=1e-6)


def test_hierarchical_bits_are_binary_digits():
    local = torch.tensor([[[0.0, 0.5], [0.75, 0.3125], [0.99, 1.0]]])  # 0.3125 = 0.0101b
    assert hierarchical_bits(local, 0).tolist() == [[[0, 1], [1, 0], [1, 0]]]
    assert hierarchical_bits(local, 1).tolist() == [[[0, 0], [1, 1], [1, 0]]]
    assert hierarchical_bits(local, 3).tolist() == [[[0, 0], [0, 1], [1, 0]]]
    # The 1e-9 is below float32's resolution at 0.5 and 1 (a dyadic value keeps its digit, 1.0 reads
    # as 2^(n+1), all digits 0); it only pulls tiny values to 0.
    assert hierarchical_bits(torch.tensor([1e-10, 0.5 - 6e-8]), 0).tolist() == [0, 0]


def test_local_position_reflects_non_positive_offsets():
    rel = torch.tensor([[[0.25, -0.125], [0.0, 0.5]]])
    out = local_position(rel, (4, 8))  # r = (1/4, 1/8)
    assert out.tolist() == [[[0.25, 0.25], [0.25, 0.5]]]


def test_hiif_bits_use_make_coord_centres():
    """The vectors' 27x35 grid over 14 latent columns puts queries within an ulp of a bit
    boundary: computing centres as -1 + (2i + 1) / n instead of make_coord's float32 sum flips
    them. Pinned by the vectors above; here, that the boundary cases exist at all."""
    v, model = load_vector('hiif')
    coord, _ = grid_queries(v)
    with torch.no_grad():
        model.gen_feat(v['inp'])
        from models.galerkin import corner_features
        rels, _ = corner_features(model.feat, coord, (11 / 2, 14 / 2))
        local = local_position(rels[0], (11, 14))
    assert ((local - 0.5).abs() < 1.1e-6).sum() > 100
