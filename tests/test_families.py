"""RCAN, SwinIR and LTE (docs/design.md §2.4): released checkpoints' state dicts, SwinIR's window
padding and masks, LTE's decoder input. Their vectors are reproduced in test_vectors.py."""
import math

import pytest
import torch

import models
from models.lte import decoder_input, fourier_basis
from models.swin import relative_position_index, shifted_window_mask
from release_keys import DATA, assert_matches_release
from utils.coords import make_coord
from inference.tiling import receptive_radius
from tiny import edsr_spec, mlp_spec, swinir_spec

MLP3 = {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256, 256, 256]}}
# The released families as their authors' configs build them.
FAMILY_SPECS = {
    'rcan-liif': {'name': 'liif', 'args': {
        'encoder_spec': {'name': 'rcan', 'args': {'no_upsampling': True}},
        'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [256] * 4}}}},
    'edsr-baseline-lte': {'name': 'lte', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'no_upsampling': True}},
        'imnet_spec': MLP3, 'hidden_dim': 256}},
    'swinir-lte': {'name': 'lte', 'args': {
        'encoder_spec': {'name': 'swinir', 'args': {'no_upsampling': True}},
        'imnet_spec': MLP3, 'hidden_dim': 256}},
}
TINY_SWINIR = swinir_spec()


@pytest.mark.parametrize('section', sorted(FAMILY_SPECS))
def test_state_dict_matches_release(section):
    """Same keys, in the same order, and shapes as the released checkpoints (buffers included)."""
    assert_matches_release(models.make(FAMILY_SPECS[section]).state_dict(), 'state-dict-keys-more.txt', section)


def test_swinir_latent_grid_covers_the_padded_input():
    enc = models.make(TINY_SWINIR).eval()
    assert enc.window_size == 4 and enc.out_dim == 64
    x = torch.randn(1, 3, 6, 7)
    with torch.no_grad():
        feat = enc(x)
        padded = torch.nn.functional.pad(x, (0, 1, 0, 2), mode='reflect')
        assert feat.shape == (1, 64, 8, 8)
        assert torch.allclose(feat, enc(padded), atol=1e-6)  # a multiple of the window: no more padding


def test_swinir_stored_masks_are_the_release_buffers():
    """The authors' attn_mask and relative_position_index buffers (swinir-liif vector: img_size 16,
    window 4) are what this code computes."""
    sd = torch.load(DATA / 'vectors' / 'swinir-liif-seed0.pth', weights_only=True)['checkpoint']['model']['sd']
    mask = sd['encoder.layers.0.residual_group.blocks.1.attn_mask']
    assert torch.equal(shifted_window_mask((16, 16), 4, 2), mask)
    index = sd['encoder.layers.0.residual_group.blocks.0.attn.relative_position_index']
    assert torch.equal(relative_position_index(4), index)


def test_swinir_uses_the_stored_mask_only_at_img_size():
    enc = models.make(TINY_SWINIR).eval()
    block = enc.layers[0].residual_group.blocks[1]
    at_size, other = torch.randn(1, 3, 8, 8), torch.randn(1, 3, 12, 8)
    with torch.no_grad():
        before = enc(at_size), enc(other)
        block.attn_mask.zero_()
        after = enc(at_size), enc(other)
    assert not torch.allclose(before[0], after[0])
    assert torch.equal(before[1], after[1])


def test_swinir_cannot_be_tiled():
    with pytest.raises(ValueError, match='cannot tile'):
        receptive_radius(models.make(TINY_SWINIR))


def test_fourier_basis_pairs_and_cos_first():
    q_freq = torch.tensor([1.0, 2.0, 3.0, 4.0])
    rel_coord, phase = torch.tensor([0.5, 0.25]), torch.tensor([0.1, 0.2])
    x = [1 * 0.5 + 2 * 0.25 + 0.1, 3 * 0.5 + 4 * 0.25 + 0.2]  # pair j: channels 2j (row), 2j + 1 (col)
    expected = torch.tensor([math.cos(math.pi * x[0]), math.cos(math.pi * x[1]),
                             math.sin(math.pi * x[0]), math.sin(math.pi * x[1])])
    assert torch.allclose(fourier_basis(q_freq, rel_coord, phase), expected, atol=1e-6)
    q_coef = torch.tensor([2.0, -1.0, 0.5, 3.0])
    assert torch.allclose(decoder_input(q_coef, q_freq, rel_coord, phase), q_coef * expected, atol=1e-6)


def test_lte_adds_the_bilinear_input():
    """With a decoder that outputs 0, LTE renders the input upsampled bilinearly (border-extended)."""
    model = models.make({'name': 'lte', 'args': {'encoder_spec': edsr_spec(), 'imnet_spec': mlp_spec(hidden=(8,)),
                                                 'hidden_dim': 8}})
    with torch.no_grad():
        model.imnet.layers[-1].weight.zero_()
        model.imnet.layers[-1].bias.zero_()
        inp = torch.randn(1, 3, 4, 5)
        coord = make_coord((8, 10)).unsqueeze(0)  # (1, 80, 2)
        out = model(inp, coord, torch.full_like(coord, 0.2))
    expected = torch.nn.functional.interpolate(inp, size=(8, 10), mode='bilinear', align_corners=False)
    assert torch.allclose(out, expected.flatten(2).transpose(1, 2), atol=1e-6)


def test_lte_refuses_what_it_cannot_build():
    encoder = edsr_spec()
    with pytest.raises(ValueError, match='imnet_spec'):
        models.make({'name': 'lte', 'args': {'encoder_spec': encoder}})
    with pytest.raises(ValueError, match='even'):
        models.make({'name': 'lte', 'args': {'encoder_spec': encoder, 'imnet_spec': MLP3, 'hidden_dim': 7}})
