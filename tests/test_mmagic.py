"""OpenMMLab's LIIF checkpoints (docs/design.md §6.1): the three vectors made with MMEditing/mmagic
(raw output, normalised input, final image of 0.x and of 1.x), both EDSR layouts and RDN at the
releases' size against their key lists, every entry point reading the files as they are, the
converted file giving identical images, MMEditing's protocol, and mistakes refused in one line."""
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import demo
import models
from inference.metrics import parse_eval_type, psnr
from inference.norm import DataNorm
from inference.region import ModelRegions, Region
from inference.upscale import Upscaler
from models.loading import read_checkpoint
from models.mmagic import from_mmagic, is_mmagic
from release_keys import DATA, reference_keys
from script_loader import ROOT, load_script
from training import trainer
from training.config import check_train_config
from utils.checkpoints import load_checkpoint
from utils.config import load_yaml
from utils.coords import make_coord
from utils.errors import UserError, run_cli
from utils.images import read_image

NAMES = ['mmagic-edsr-liif', 'mmagic-edsr-liif-2021a', 'mmagic-rdn-liif']
convert = load_script('scripts/convert_checkpoint.py', 'convert_checkpoint').main
test_cli = load_script('test.py', 'mmagic_test_cli')


def vector(name: str) -> dict:
    return torch.load(DATA / 'vectors' / f'{name}-seed0.pth', weights_only=True)


@pytest.mark.parametrize('name', NAMES)
def test_vectors_reproduced(name):
    """Their normalised input, raw output (1149 queries), final image (0.x: clamp(raw * std +
    mean), [0, 1] RGB) and mmagic 1.x's ([0, 255], BGR) from the file's own normalisation."""
    v = vector(name)
    ckpt = from_mmagic(v['checkpoint'], name)
    norm = DataNorm.from_checkpoint(ckpt)
    x = norm.inp(v['inp'])
    assert (x - v['inp_norm']).abs().max().item() <= 1e-6
    model = models.make(ckpt['model'], load_sd=True).eval()
    with torch.no_grad():
        raw = model(x, v['coord'], v['cell'])
    assert (raw - v['expected']).abs().max().item() <= 1e-5
    h, w = v['out_grid_hw']
    assert torch.allclose(v['coord'][0, :h * w], make_coord((h, w)), atol=1e-6)
    final = norm.pred_to_rgb(raw[0, :h * w]).view(h, w, 3).permute(2, 0, 1)  # (3, H, W)
    assert (final - v['expected_final'][0]).abs().max().item() <= 1e-5
    if 'expected_final_mmagic' in v:
        assert (final - v['expected_final_mmagic'][0].flip(0) / 255).abs().max().item() <= 1e-5


RELEASE = {'mmagic-edsr-liif': 'edsr-baseline-liif', 'mmagic-edsr-liif-2021a': 'edsr-baseline-liif',
           'mmagic-rdn-liif': 'rdn-liif'}


@pytest.mark.parametrize('name', NAMES)
def test_release_sized_files_become_the_paper_models(name):
    """A state dict with the keys and shapes of each released file (its key list) converts to the
    LIIF release's own keys and shapes (EDSR-baseline-LIIF, RDN-LIIF 'B') and loads strictly."""
    shapes = reference_keys('state-dict-keys-lmf-mmagic.txt')[name]
    ckpt = from_mmagic({'meta': {}, 'state_dict': {k: torch.zeros(s) for k, s in shapes.items()}}, name)
    expected = reference_keys('state-dict-keys.txt')[RELEASE[name]]
    assert {k: tuple(t.shape) for k, t in ckpt['model']['sd'].items()} == expected
    model = models.make(ckpt['model'], load_sd=True)
    assert list(model.state_dict()) == list(expected)
    if 'rdn' in name:
        assert ckpt['model']['args']['encoder_spec']['args']['RDNconfig'] == 'B'


def test_local_ensemble_from_the_stored_config():
    v = vector('mmagic-edsr-liif')
    meta = dict(v['checkpoint']['meta'], config=v['checkpoint']['meta']['config'].replace(
        "'local_ensemble': True", "'local_ensemble': False"))
    assert from_mmagic(v['checkpoint'])['model']['args']['local_ensemble'] is True
    assert from_mmagic({**v['checkpoint'], 'meta': meta})['model']['args']['local_ensemble'] is False


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The EDSR vector's checkpoint as OpenMMLab publishes it (legacy pickle format) and as a zip,
    the RDN one, an LR image, a HR folder and a test config under MMEditing's protocol."""
    root = tmp_path_factory.mktemp('mmagic')
    for name, fname in (('mmagic-edsr-liif', 'edsr.pth'), ('mmagic-rdn-liif', 'rdn.pth')):
        torch.save(vector(name)['checkpoint'], root / fname, _use_new_zipfile_serialization=False)
    torch.save(vector('mmagic-edsr-liif-2021a')['checkpoint'], root / 'edsr2021a.pth')
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)).save(root / 'lr.png')
    (root / 'hr').mkdir()
    Image.fromarray(rng.integers(0, 256, (50, 61, 3), dtype=np.uint8)).save(root / 'hr' / 'a.png')
    cfg = load_yaml(ROOT / 'configs/test-mmagic/test-set5-3.yaml')
    cfg['test_dataset']['dataset']['args']['root_path'] = str(root / 'hr')
    (root / 'test.yaml').write_text(yaml.safe_dump(cfg))
    return root


@pytest.mark.parametrize('fname', ['edsr.pth', 'edsr2021a.pth', 'rdn.pth'])
def test_entry_points_read_the_files_and_the_converted_one_agrees(files, tmp_path, fname):
    """demo.py, Upscaler.load, the viewer's regions and test.py take the OpenMMLab file as it is; convert_checkpoint.py
    writes a release-format file (with the normalisation) that gives identical images and scores."""
    src = files / fname
    assert is_mmagic(torch.load(src, weights_only=True))
    dst = tmp_path / 'converted.pth'
    convert([str(src), str(dst)])
    out = load_checkpoint(dst)  # the release format, strictly
    assert out['data_norm'] == read_checkpoint(src)['data_norm'] and 'converted_from' in out
    images = [np.asarray(Image.open(demo.main(['--input', str(files / 'lr.png'), '--scale', '3.5', '--model',
                                               str(m), '--output', str(tmp_path / f'{i}.png')])[0]))
              for i, m in enumerate((src, dst))]
    assert np.array_equal(images[0], images[1])
    lr = np.asarray(Image.open(files / 'lr.png'))
    assert np.array_equal(Upscaler.load(src, 'cpu')(lr, scale=3.5), images[0])
    h, w = images[0].shape[:2]  # the viewer's regions (viewer.py loads through Upscaler.load)
    region = ModelRegions(Upscaler.load(src, 'cpu'), read_image(files / 'lr.png')).render(3.5, Region(0, 0, h, w))
    assert np.abs(np.asarray(region).astype(int) - images[0]).max() <= 1
    scores = [test_cli.main(['--config', str(files / 'test.yaml'), '--model', str(m), '--gpu', 'cpu', '--quiet'])
              for m in (src, dst)]
    assert scores[0]['mean'] == scores[1]['mean'] and 'rounded to 8 bits' in scores[0]['protocol']['text']


def test_init_fine_tunes_from_an_openmmlab_file(files, tmp_path):
    """train_liif.py --init takes the file as it is; a config whose normalisation differs from
    the file's gets a note in the log."""
    ckpt = read_checkpoint(files / 'edsr.pth')
    raw = load_yaml(ROOT / 'configs/train-sample/train_tiny-liif.yaml')
    photos = tmp_path / 'photos'
    photos.mkdir()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (80, 90, 3), dtype=np.uint8)).save(photos / 'a.png')
    for part in ('train_dataset', 'val_dataset'):
        raw[part]['dataset']['args']['root_path'] = str(photos)
    raw.update(model={'name': 'liif', 'args': ckpt['model']['args']}, epoch_max=1, multi_step_lr=None)
    trainer.train(check_train_config(raw, 'tiny'), tmp_path / 'run', init=str(files / 'edsr.pth'))
    log = (tmp_path / 'run' / 'log.txt').read_text()
    assert f"initialised from {files / 'edsr.pth'}" in log and 'trained with data_norm inp sub [0.4488' in log


def test_convert_refuses_its_source_and_other_models(files, tmp_path, capsys):
    src = files / 'edsr.pth'
    before = src.read_bytes()
    other = tmp_path / 'other.pth'
    torch.save({'meta': {}, 'state_dict': {'generator.conv_first.weight': torch.zeros(4, 3, 3, 3),
                                           'generator.upsample.0.weight': torch.zeros(1)}}, other)
    stranger = tmp_path / 'stranger.pth'
    torch.save({'meta': {}, 'state_dict': {'backbone.weight': torch.zeros(1)}}, stranger)
    for argv, match in (([src, src], 'is the source checkpoint itself'), ([other, tmp_path / 'o.pth'], 'does not know'),
                        ([stranger, tmp_path / 'o.pth'], "not LIIF's")):
        with pytest.raises(SystemExit) as e:
            run_cli(lambda: convert([str(a) for a in argv]))
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and err.startswith('error: ') and '\n' not in err and match in err, err
    assert src.read_bytes() == before and not (tmp_path / 'o.pth').exists()
    with pytest.raises(UserError, match="not LIIF's"):
        Upscaler.load(stranger, 'cpu')


def test_mmedit_protocol_rounds_the_prediction():
    """mmedit-S scores the prediction rounded to 8 bits (MMEditing 0.x's tensor2img), rgb-S as is."""
    torch.manual_seed(0)
    gt = torch.randint(0, 256, (1, 3, 20, 20)).float() / 255
    pred = (gt + 0.3 / 255).clamp(0, 1)  # off by less than half a level: rounds back onto gt
    assert torch.isinf(psnr(pred, gt, 'mmedit-2')).all()
    assert torch.isfinite(psnr(pred, gt, 'rgb-2')).all()
    proto = parse_eval_type('mmedit-4')
    assert proto.crop == 4 and not proto.luminance and proto.quantized
