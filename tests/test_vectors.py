"""The project's models reproduce the paper authors' code (docs/design.md §7) and load its checkpoints."""
import pytest
import torch

import models
from release_keys import all_vectors, as_queries, header_counts, reference_keys, release_vectors

VECTORS = release_vectors()


def test_all_vector_files_present():
    names = {p.name for p in all_vectors()}
    assert names == {'liif-seed0.pth', 'liif-no-ensemble-seed0.pth', 'liif-no-unfold-seed0.pth',
                     'liif-no-cell-seed0.pth', 'metasr-seed0.pth', 'rcan-liif-seed0.pth',
                     'rcan-upsample-seed0.pth', 'lte-seed0.pth', 'swinir-liif-seed0.pth',
                     'swinir-lte-seed0.pth', 'swinir-metasr-seed0.pth', 'srno-seed0.pth', 'hiif-seed0.pth',
                     'swinir-hiif-seed0.pth', 'lm-liif-seed0.pth', 'lm-lte-seed0.pth',
                     'lm-liif-cmsr-x6-seed0.pth', 'lm-liif-cmsr-x8-seed0.pth', 'lm-lte-cmsr-x6-seed0.pth',
                     'lm-lte-cmsr-x8-seed0.pth', 'mmagic-edsr-liif-seed0.pth', 'mmagic-edsr-liif-2021a-seed0.pth',
                     'mmagic-rdn-liif-seed0.pth'}



@pytest.mark.parametrize('path', VECTORS, ids=lambda p: p.stem)
def test_vector_reproduced(path):
    v = torch.load(path, weights_only=True)
    model = models.make(v['checkpoint']['model'], load_sd=True).eval()
    coord, cell, expected = as_queries(v)
    with torch.no_grad():
        # A vector without queries (rcan-upsample) pins an encoder with its upsampling tail.
        out = model(v['inp']) if coord is None else model(v['inp'], coord, cell)
    assert out.shape == expected.shape
    assert coord is None or out.shape == (1, 1149, 3)
    assert (out - expected).abs().max().item() <= 1e-5


@pytest.mark.parametrize('path', VECTORS, ids=lambda p: p.stem)
def test_vector_plain_path_reproduced(path):
    """The plain query (the definition) matches too, not just the default path."""
    v = torch.load(path, weights_only=True)
    model = models.make(v['checkpoint']['model'], load_sd=True).eval()
    if not hasattr(model, 'query_rgb_plain'):
        pytest.skip('model has a single query path')
    with torch.no_grad():
        model.gen_feat(v['inp'])
        out = model.query_rgb_plain(v['coord'], v['cell'])
    assert (out - v['expected']).abs().max().item() <= 1e-5


EDSR_BASELINE = {'name': 'edsr-baseline', 'args': {'no_upsampling': True}}
RDN = {'name': 'rdn', 'args': {'no_upsampling': True}}
MLP = {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256, 256]}}
PAPER_SPECS = {
    'edsr-baseline-liif': {'name': 'liif', 'args': {'encoder_spec': EDSR_BASELINE, 'imnet_spec': MLP}},
    'rdn-liif': {'name': 'liif', 'args': {'encoder_spec': RDN, 'imnet_spec': MLP}},
    'edsr-baseline-metasr': {'name': 'metasr', 'args': {'encoder_spec': EDSR_BASELINE}},
}


@pytest.mark.parametrize('section', sorted(PAPER_SPECS))
def test_state_dict_matches_release(section):
    expected = reference_keys()[section]
    sd = models.make(PAPER_SPECS[section]).state_dict()
    assert list(sd) == list(expected)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


def test_release_counts():
    """The header's tensor and parameter counts agree with the models built here."""
    for section, spec in PAPER_SPECS.items():
        sd = models.make(spec).state_dict()
        assert (len(sd), sum(v.numel() for v in sd.values())) == header_counts('state-dict-keys.txt', section)
