"""Checkpoints: released format round-trips bitwise; every bad file gets one clear line."""
import copy
import os
from pathlib import Path

import pytest
import torch

import models
from models.loading import load_model
from utils.checkpoints import load_checkpoint, save_checkpoint
from utils.errors import UserError

VECTOR = Path(__file__).parent / 'data' / 'vectors' / 'liif-seed0.pth'


def released_checkpoint() -> dict:
    """A checkpoint in the paper release's format (model + optimizer + epoch)."""
    return torch.load(VECTOR, weights_only=True)['checkpoint']


def test_release_format_with_optimizer_loads(tmp_path):
    """A checkpoint as the release's train script writes it, Adam state included, loads."""
    ckpt = released_checkpoint()
    assert set(ckpt['model']) == {'name', 'args', 'sd'}
    model = models.make(ckpt['model'], load_sd=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model(torch.randn(1, 3, 5, 6), torch.rand(1, 4, 2) - 0.5, torch.full((1, 4, 2), 0.1)).sum().backward()
    opt.step()
    ckpt['optimizer'] = {'name': 'adam', 'args': {'lr': 1e-4}, 'sd': opt.state_dict()}
    ckpt['epoch'] = 1000
    torch.save(ckpt, tmp_path / 'epoch-last.pth')
    assert isinstance(load_model(tmp_path / 'epoch-last.pth'), type(model))
    assert load_checkpoint(tmp_path / 'epoch-last.pth')['optimizer']['sd']['state']


def test_save_reload_bitwise(tmp_path):
    v = torch.load(VECTOR, weights_only=True)
    model = models.make(v['checkpoint']['model'], load_sd=True).eval()
    path = tmp_path / 'model.pth'
    save_checkpoint({'model': {'name': 'liif', 'args': v['checkpoint']['model']['args'],
                               'sd': model.state_dict()}, 'epoch': 3}, path)
    reloaded = load_model(path)
    assert not reloaded.training
    with torch.no_grad():
        a = model(v['inp'], v['coord'], v['cell'])
        b = reloaded(v['inp'], v['coord'], v['cell'])
    assert torch.equal(a, b)
    assert load_checkpoint(path)['epoch'] == 3
    assert [p.name for p in tmp_path.iterdir()] == ['model.pth']  # no temp file left behind


def test_saved_file_has_the_usual_permissions(tmp_path):
    save_checkpoint({'epoch': 1}, tmp_path / 'c.pth')
    mask = os.umask(0o022)
    os.umask(mask)
    assert (tmp_path / 'c.pth').stat().st_mode & 0o777 == 0o666 & ~mask


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / 'ckpt.pth'
    save_checkpoint({'epoch': 1}, path)

    def crash(obj, f):
        f.write(b'partial')
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({'epoch': 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {'epoch': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']


def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert '\n' not in msg
    return msg


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match='checkpoint not found') as e:
        load_model(tmp_path / 'nope.pth')
    assert 'nope.pth' in one_line(e)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('hello, not a checkpoint\n')
    with pytest.raises(UserError, match='not a PyTorch checkpoint') as e:
        load_model(path)
    one_line(e)
    truncated = tmp_path / 'truncated.pth'
    torch.save({'model': {'name': 'liif', 'args': {}, 'sd': {}}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:100])
    with pytest.raises(UserError, match='damaged checkpoint, its zip archive cannot be read'):
        load_model(truncated)


def test_dict_without_model(tmp_path):
    path = tmp_path / 'x.pth'
    torch.save({'weights': torch.zeros(2)}, path)
    with pytest.raises(UserError, match='not a LIIF checkpoint') as e:
        load_model(path)
    one_line(e)


class Exploit:
    """Unpickling this would create a marker file: proof that code ran."""
    marker = None

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickle_needing_code_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / 'pwned'
    Exploit.marker = str(marker)
    path = tmp_path / 'evil.pth'
    torch.save({'model': {'name': 'liif', 'args': {}, 'sd': {}}, 'payload': Exploit()}, path)
    with pytest.raises(UserError, match='refused') as e:
        load_model(path)
    one_line(e)
    assert not marker.exists()


def test_unknown_model_name(tmp_path):
    ckpt = released_checkpoint()
    ckpt['model']['name'] = 'liff'
    path = tmp_path / 'c.pth'
    torch.save(ckpt, path)
    with pytest.raises(UserError, match="unknown model 'liff'; known: .*liif") as e:
        load_model(path)
    one_line(e)


@pytest.mark.parametrize('damage, pattern', [
    (lambda sd: sd.pop('imnet.layers.0.bias'), r'lacks parameters imnet\.layers\.0\.bias'),
    (lambda sd: sd.__setitem__('imnet.extra', torch.zeros(1)), r'unexpected parameters imnet\.extra'),
    (lambda sd: sd.__setitem__('imnet.layers.0.bias', torch.zeros(5)),
     r'mis-shaped parameters imnet\.layers\.0\.bias \(5,\) vs model \(32,\)'),
])
def test_parameter_mismatches_are_named(tmp_path, damage, pattern):
    ckpt = released_checkpoint()
    damage(ckpt['model']['sd'])
    path = tmp_path / 'c.pth'
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=pattern) as e:
        load_model(path)
    one_line(e)


def test_many_missing_are_summarised(tmp_path):
    ckpt = released_checkpoint()
    sd = ckpt['model']['sd']
    for k in [k for k in sd if k.startswith('imnet')]:
        del sd[k]
    path = tmp_path / 'c.pth'
    torch.save(ckpt, path)
    with pytest.raises(UserError, match=r'\(\+\d+ more\)'):
        load_model(path)


def test_mean_shift_keys_load(tmp_path):
    """The unused EDSR mean-shift tensors are part of the released state dict and load."""
    ckpt = released_checkpoint()
    assert 'encoder.sub_mean.weight' in ckpt['model']['sd']
    sd = copy.deepcopy(ckpt['model']['sd'])
    model = models.make(ckpt['model'], load_sd=True)
    assert torch.equal(model.encoder.sub_mean.weight, sd['encoder.sub_mean.weight'])
