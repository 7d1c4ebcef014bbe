"""inference/norm.py: the one normalisation (DataNorm) used by training, evaluation and demo.py."""
import pytest
import torch
import yaml

from inference.evaluate import predict
from inference.norm import IDENTITY, DataNorm, parse_data_norm
from tests.script_loader import load_script
from utils.errors import UserError

HALF = {'sub': [0.5], 'div': [0.5]}


def test_parses_scalar_and_per_channel_lists():
    out = parse_data_norm({'inp': HALF, 'gt': {'sub': [0.1, 0.2, 0.3], 'div': [1, 2, 4]}}, 'x.yaml')
    assert out == {'inp': ((0.5,), (0.5,)), 'gt': ((0.1, 0.2, 0.3), (1.0, 2.0, 4.0))}


def test_absent_means_the_callers_default():
    assert parse_data_norm(None, 'x.yaml') == {'inp': IDENTITY, 'gt': IDENTITY} == {'inp': ((0.0,), (1.0,)), 'gt': ((0.0,), (1.0,))}
    assert parse_data_norm(None, 'x', default=((0.5,), (0.5,)))['gt'] == ((0.5,), (0.5,))


@pytest.mark.parametrize('value, expected', [
    ([0.5], 'x.yaml: data_norm: expected a mapping with inp, gt, got [0.5] (list)'),
    ({'inp': HALF}, 'x.yaml: data_norm.gt: missing (required)'),
    ({'inp': HALF, 'gt': None}, 'x.yaml: data_norm.gt: expected a mapping with sub, div, got None'),
    ({'inp': HALF, 'gt': HALF, 'out': HALF}, 'x.yaml: data_norm.out: unknown key; expected one of inp, gt'),
    ({'inp': {'sub': [0.5]}, 'gt': HALF}, 'x.yaml: data_norm.inp.div: missing (required)'),
    ({'inp': {'sub': [0.5], 'div': [0.5], 'mul': [1]}, 'gt': HALF}, 'x.yaml: data_norm.inp.mul: unknown key'),
    ({'inp': {'sub': 0.5, 'div': [0.5]}, 'gt': HALF}, 'x.yaml: data_norm.inp.sub: expected a list of 1 or 3 numbers'),
    ({'inp': {'sub': [0.5, 0.5], 'div': [0.5]}, 'gt': HALF}, 'x.yaml: data_norm.inp.sub: expected a list of 1 or 3 numbers'),
    ({'inp': HALF, 'gt': {'sub': ['0.5'], 'div': [0.5]}}, "x.yaml: data_norm.gt.sub[0]: expected a number, got '0.5'"),
    ({'inp': HALF, 'gt': {'sub': [True], 'div': [0.5]}}, 'x.yaml: data_norm.gt.sub[0]: expected a number, got True'),
    ({'inp': HALF, 'gt': {'sub': [0], 'div': [0.5, 0, 0.5]}}, 'x.yaml: data_norm.gt.div[1]: must not be 0'),
])
def test_mistakes_name_the_key(value, expected):
    with pytest.raises(UserError) as e:
        parse_data_norm(value, 'x.yaml')
    assert str(e.value).startswith(expected)


class _Recorder(torch.nn.Module):
    """A stand-in model: keeps the encoder input it is given and predicts 0 (normalised units)."""

    def gen_feat(self, inp):
        self.seen = inp

    def query_rgb(self, coord, cell):
        return coord.new_zeros(*coord.shape[:2], 3)


def test_config_and_checkpoint_give_one_norm_and_one_message(tmp_path):
    """A config's data_norm and the same data_norm stored in a checkpoint's config give one
    DataNorm; evaluation normalises with it; the same mistake gets the same message everywhere."""
    norm = {'inp': {'sub': [0.1, 0.2, 0.3], 'div': [2]}, 'gt': HALF}
    test_py = load_script('test.py', 'liif_test_script')
    trained = DataNorm.from_config(norm)
    stored = DataNorm.from_checkpoint({'config': {'data_norm': norm}})
    assert stored == trained and DataNorm.from_config(trained.to_config()) == trained
    # Evaluation normalises the input and de-normalises a prediction with those numbers.
    inp = torch.rand(1, 3, 2, 2)
    batch = {'inp': inp, 'coord': torch.zeros(1, 16, 2), 'cell': torch.full((1, 16, 2), 0.5),
             'gt': torch.rand(1, 16, 3)}
    model = _Recorder()
    pred, _ = predict(model, batch, trained, (4, 4), None, torch.device('cpu'), 'fp32')
    sub, div = torch.tensor([0.1, 0.2, 0.3]).view(1, -1, 1, 1), 2.0
    assert torch.allclose(model.seen, (inp - sub) / div, atol=1e-7)
    assert torch.equal(pred, torch.full((1, 3, 4, 4), 0.5))  # 0 * div + sub
    bad = {'inp': HALF, 'gt': {'sub': [0.5], 'div': [0]}}
    config = tmp_path / 'x.yaml'
    config.write_text(yaml.safe_dump({
        'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(tmp_path)}},
                         'wrapper': {'name': 'sr-implicit-downsampled', 'args': {}}, 'batch_size': 1},
        'data_norm': bad}))
    messages = []
    for call in (lambda: DataNorm.from_config(bad), lambda: test_py.main(['--config', str(config), '--model', 'bicubic']),
                 lambda: DataNorm.from_checkpoint({'config': {'data_norm': bad}})):
        with pytest.raises(UserError) as e:
            call()
        messages.append(str(e.value).split(': ', 1)[1])
    assert messages == ['data_norm.gt.div[0]: must not be 0'] * 3


def test_checkpoint_defaults():
    assert DataNorm.from_checkpoint({}).inp_sub == (0.5,)  # released checkpoints: no config
    assert DataNorm.from_checkpoint({}).gt_div == (0.5,)
    assert DataNorm.from_checkpoint({'config': {}}) == DataNorm()  # a config without data_norm: sub 0, div 1
