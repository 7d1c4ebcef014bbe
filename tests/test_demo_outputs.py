"""demo.py and the library never replace an output silently (every output checked before any is
rendered), name the model they used, put the model's name in outputs on request ({model}), and
give grayscale back for grayscale in."""
import numpy as np
import pytest
from PIL import Image

import demo
from inference.upscale import Upscaler
from models.loading import describe_family, model_family
from test_demo import ckpt, fails, rgb_array, save  # noqa: F401  (fixture, helpers)
from utils.checkpoints import checkpoint_label
from utils.errors import UserError


def test_an_existing_output_is_refused_and_left_as_it_was(tmp_path, ckpt, capsys):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    out = tmp_path / 'o.png'
    out.write_bytes(b'the first model')
    err = fails(['--input', inp, '--model', ckpt, '--scale', '2', '--output', out], capsys)
    assert err.startswith(f'error: output {out} exists; nothing was written (pass --overwrite')
    assert out.read_bytes() == b'the first model'
    (written,) = demo.main([str(a) for a in ['--input', inp, '--model', ckpt, '--scale', '2', '--output', out,
                                             '--overwrite']])
    assert Image.open(written).size == (18, 14)


def test_with_several_inputs_no_output_is_rendered_when_one_exists(tmp_path, ckpt, capsys):
    for i in range(3):
        save(Image.fromarray(rgb_array(seed=i)), tmp_path / f'p{i}.png')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out/p2_x2.png').write_bytes(b'earlier')
    err = fails(['--input', tmp_path / 'p*.png', '--model', ckpt, '--scale', '2', '--output', tmp_path / 'out'], capsys)
    assert f"output {tmp_path / 'out/p2_x2.png'} exists" in err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['p2_x2.png']  # p0, p1 not rendered either
    assert (tmp_path / 'out/p2_x2.png').read_bytes() == b'earlier'


def test_the_model_is_named_once_with_family_and_normalisation(tmp_path, ckpt, capsys):
    for i in range(2):
        save(Image.fromarray(rgb_array(seed=i)), tmp_path / f'p{i}.png')
    demo.main(['--input', str(tmp_path / 'p0.png'), str(tmp_path / 'p1.png'), '--model', str(ckpt),
               '--scale', '2', '--output', str(tmp_path / 'out')])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('model: ')]
    assert lines == [f'model: {ckpt}: liif over edsr-baseline, data_norm inp sub [0.5] div [0.5], gt sub [0.5] div [0.5]']


def test_model_placeholder_in_the_output(tmp_path, ckpt):
    inp = save(Image.fromarray(rgb_array()), tmp_path / 'lr.png')
    run = tmp_path / 'save/_train_tiny'
    run.mkdir(parents=True)
    best = run / 'epoch-best.pth'
    best.write_bytes(ckpt.read_bytes())
    (one,) = demo.main([str(a) for a in ['--input', inp, '--model', ckpt, '--scale', '2',
                                         '--output', tmp_path / '{model}_x2.png']])
    (two,) = demo.main([str(a) for a in ['--input', inp, '--model', best, '--scale', '2',
                                         '--output', f'{tmp_path}/by-model/{{model}}/']])
    assert one == tmp_path / 'tiny_x2.png' and two == tmp_path / 'by-model/_train_tiny-epoch-best/lr_x2.png'
    assert one.is_file() and two.is_file()


def test_checkpoint_labels():
    assert checkpoint_label('save/_train_x/epoch-best.pth') == '_train_x/epoch-best'
    assert checkpoint_label('save/run/epoch-120.pth') == 'run/epoch-120'
    assert checkpoint_label('pretrained/edsr-baseline-liif-sample.pth') == 'edsr-baseline-liif-sample'
    assert checkpoint_label('epoch-last.pth') == 'epoch-last'


def test_library_upscale_file_keeps_the_same_promise(tmp_path, ckpt):
    up = Upscaler.load(ckpt, 'cpu')
    src = save(Image.fromarray(rgb_array()), tmp_path / 'a.png')
    dst = tmp_path / 'b.png'
    dst.write_bytes(b'keep')
    with pytest.raises(UserError, match='exists; nothing was written .pass overwrite=True'):
        up.upscale_file(src, dst, scale=2)
    assert dst.read_bytes() == b'keep'
    up.upscale_file(src, dst, scale=2, overwrite=True)
    assert Image.open(dst).size == (18, 14)


def test_grayscale_in_grayscale_out(tmp_path, ckpt):
    """(H, W) and (H, W, 1) arrays, L images and files: one channel in, one channel out, equal to
    the RGB rendering of the same gray repeated (then reduced to L)."""
    up = Upscaler.load(ckpt, 'cpu')
    gray = rgb_array()[:, :, 0]
    ref = np.asarray(Image.fromarray(up(np.repeat(gray[:, :, None], 3, 2), scale=2)).convert('L'))
    assert np.array_equal(up(gray, scale=2), ref)
    col = up(gray[:, :, None], scale=2)
    assert col.shape == (14, 18, 1) and np.array_equal(col[:, :, 0], ref)
    assert up(Image.fromarray(gray, 'L'), scale=2).mode == 'L'
    src = save(Image.fromarray(gray, 'L'), tmp_path / 'g.png')
    (out,) = demo.main(['--input', str(src), '--model', str(ckpt), '--scale', '2'])
    with Image.open(out) as img:
        assert img.mode == 'L' and np.array_equal(np.asarray(img), ref)


def test_model_family_and_its_description():
    assert model_family({'name': 'metasr', 'args': {'encoder_spec': {'name': 'rdn'}}}) == {'family': 'metasr', 'encoder': 'rdn'}
    assert describe_family({'name': 'x', 'args': {}}) == 'x'
