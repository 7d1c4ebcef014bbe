"""Training feedback and options beyond the paper: progress lines when stdout is not a terminal,
gradient-norm clipping, EMA weights (validated, saved, resumed exactly), several validation sets,
--data-root and "data not found" messages, and a tiny config for every decoder family."""
import inspect
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import models
from inference.norm import DataNorm
from models.loading import load_model
from test_train import cli, data, interrupt_at_step, one_thread, tiny, tiny_raw, write_config  # noqa: F401  (fixtures, helpers)
from tiny import liif_spec
from training import trainer
from training.config import load_train_config
from training.ema import EMA
from training.losses import make_loss
from training.loop import train_step
from training.progress import StepReport, clock_text
from utils.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def test_progress_line_every_interval_with_rate_and_eta():
    now = [100.0]
    lines, scalars = [], []
    report = StepReport(epoch=3, epoch_max=5, n_iter=10, batch=8, interval=30, every=4,
                        scalar=lambda tag, v, step: scalars.append((tag, v, step)), lines=True,
                        run_elapsed=200.0, epochs_done=2, clock=lambda: now[0], write=lines.append)
    for i in range(1, 11):
        now[0] += 10  # 10 s per iteration
        report(i, loss=float(i), mean_loss=i / 2)
    # Lines at 30, 60, 90 s (iterations 3, 6, 9), none after the epoch's last iteration.
    assert [line.split(',')[1] for line in lines] == [' iteration 3/10', ' iteration 6/10', ' iteration 9/10']
    # Iteration 3: 24 samples in 30 s; 70 s left in the epoch; the run so far 230 s for 2.3 epochs,
    # so 100 s per epoch and 2 epochs after this one: 270 s left.
    assert lines[0] == ('epoch 3/5, iteration 3/10, loss 1.5000, 0.8 samples/s, ETA epoch 0:01:10, '
                        'run 0:04:30')
    assert scalars == [('loss/iteration', 4.0, 24), ('loss/iteration', 8.0, 28)]  # step: (epoch - 1) * 10 + i
    assert clock_text(90061) == '1 day, 1:01:01'


def test_progress_lines_in_a_run_whose_stdout_is_not_a_terminal(data, tmp_path, capsys):
    trainer.train(tiny(data, epoch_max=1, progress_seconds=1.0e-9), tmp_path / 'run')
    out = capsys.readouterr().out.splitlines()
    assert [line.split(', loss')[0] for line in out if line.startswith('epoch 1/1, iteration')] == \
        ['epoch 1/1, iteration 1/2']  # 2 iterations: a line after the first; the epoch's own line ends it


@pytest.mark.parametrize('loss_fn', [None, lambda pred, gt, batch: 1000 * (pred - gt).abs().mean()])
def test_gradient_norm_is_clipped(loss_fn):
    """With SGD at lr 1, the update is the (clipped) gradient: its global norm is the clip, with the
    default loss and with a config's loss (training/losses.py), whose value train_step returns."""
    torch.manual_seed(0)
    net = models.make(liif_spec(n_feats=4, hidden=(8,)))
    norm = DataNorm()
    batch = {'inp': torch.rand(2, 3, 6, 6), 'coord': torch.rand(2, 20, 2) * 2 - 1,
             'cell': torch.full((2, 20, 2), 0.1), 'gt': torch.rand(2, 20, 3)}
    before = [p.detach().clone() for p in net.parameters()]
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler('cpu', enabled=False)
    with torch.no_grad():
        expected = (loss_fn or make_loss(None))(net(norm.inp(batch['inp']), batch['coord'], batch['cell']),
                                                norm.gt(batch['gt']), batch)
    loss = train_step(net, batch, norm, opt, scaler, torch.device('cpu'), 'fp32', grad_clip=1.0e-3, loss_fn=loss_fn)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    moved = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert moved.item() == pytest.approx(1.0e-3, rel=1e-4)


def test_ema_follows_the_definition():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    ema = EMA(a, decay=0.75)
    start = a.weight.detach().clone()
    with torch.no_grad():
        a.weight.copy_(b.weight)
    ema.update(a)
    assert torch.allclose(ema.model.weight, 0.75 * start + 0.25 * b.weight)
    assert not ema.model.weight.requires_grad and ema.updates == 1


def test_ema_is_validated_saved_and_resumed_exactly(data, tmp_path, monkeypatch):
    cfg = tiny(data, epoch_max=3, ema=0.5, loss={'name': 'l1'})  # with the loss hook named
    full = trainer.train(cfg, tmp_path / 'full')
    assert all(math.isfinite(v) for v in full['val_psnr_ema']) and full['val_psnr_ema'] != full['val_psnr']
    log = (tmp_path / 'full/log.txt').read_text()
    assert f"val: psnr={full['val_psnr'][0]:.4f} (ema {full['val_psnr_ema'][0]:.4f})" in log
    for name in ('ema-last.pth', 'ema-best.pth'):
        assert load_model(tmp_path / 'full' / name) is not None  # model-only: test.py and demo.py load it
    last = load_checkpoint(tmp_path / 'full/epoch-last.pth')
    assert last['ema']['decay'] == 0.5 and last['ema']['updates'] == 6
    assert torch.equal(load_checkpoint(tmp_path / 'full/ema-last.pth')['model']['sd']['imnet.layers.0.weight'],
                       last['ema']['sd']['imnet.layers.0.weight'])

    # Ctrl-C in epoch 3, resume: model and EMA weights equal the uninterrupted run's.
    interrupt_at_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, tmp_path / 'cut')
    monkeypatch.undo()
    rest = trainer.train(cfg, tmp_path / 'cut', resume=str(tmp_path / 'cut/epoch-last.pth'))
    assert rest['val_psnr_ema'] == full['val_psnr_ema'][2:]
    a, b = (load_checkpoint(tmp_path / run / 'epoch-last.pth') for run in ('full', 'cut'))
    assert all(torch.equal(a['ema']['sd'][k], b['ema']['sd'][k]) for k in a['ema']['sd'])
    assert all(torch.equal(a['model']['sd'][k], b['model']['sd'][k]) for k in a['model']['sd'])


def test_several_validation_sets(data, tmp_path):
    raw = tiny_raw(data, epoch_max=1)
    first = raw['val_dataset']
    second = {**first, 'name': 'x2', 'eval_type': 'rgb-2',
              'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 2}}, 'batch_size': 1}
    raw['val_dataset'] = [first, second]
    hist = trainer.train(tiny(data, epoch_max=1, val_dataset=raw['val_dataset']), tmp_path / 'run')
    log = (tmp_path / 'run/log.txt').read_text()
    assert f"val: psnr={hist['val_psnr'][0]:.4f}, x2: psnr=" in log and 'val: val 4, x2 4 items' in log
    # A mistake in the second set names it.
    bad = {**second, 'eval_type': 'rgb-200'}
    with pytest.raises(Exception, match=r'val_dataset\[1\]'):
        trainer.train(tiny(data, val_dataset=[first, bad]), tmp_path / 'bad')
    assert not (tmp_path / 'bad').exists()


def test_data_root_and_missing_data_name_the_command_that_makes_it(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shipped = REPO / 'configs/train-sample/train_tiny-liif.yaml'
    code, err = cli(['--config', str(shipped), '--name', 'm', '--data-root', str(tmp_path / 'nowhere')], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert (f"dataset folder not found: {tmp_path / 'nowhere/sample/train_HR'} (config {shipped}; set --data-root "
            f"or $LIIF_DATA); get it with `python scripts/prepare_sample_data.py --root {tmp_path / 'nowhere/sample'}`, "
            f"check it with `python -m datasets.layout {tmp_path / 'nowhere/sample'} sample`") in err
    root = tmp_path / 'root'
    (root / 'sample').mkdir(parents=True)
    (root / 'sample/train_HR').symlink_to(data / 'train')
    (root / 'sample/valid_HR').symlink_to(data / 'val')
    monkeypatch.setenv('LIIF_DATA', str(root))  # the environment variable test.py reads
    code, err = cli(['--config', str(shipped), '--name', 'r', '--set', 'epoch_max=1'], capsys)
    assert code == 0, err
    assert load_train_config(tmp_path / 'save/r/config.yaml')['train_dataset']['dataset']['args']['root_path'] == \
        str(root / 'sample/train_HR')


def decoder_families() -> list[str]:
    """Registered models built over an encoder (an `encoder_spec` argument): the decoder families."""
    return [n for n in models.MODELS.names()
            if 'encoder_spec' in inspect.signature(models.MODELS.get(n)).parameters]


def tiny_configs() -> dict[str, Path]:
    """{model name: file} of the shipped tiny configs (configs/train-sample/train_tiny-*.yaml)."""
    return {load_train_config(p)['model']['name']: p
            for p in sorted((REPO / 'configs/train-sample').glob('train_tiny-*.yaml'))}


@pytest.mark.parametrize('family', decoder_families())
def test_every_decoder_family_has_a_tiny_config(family):
    path = tiny_configs().get(family)
    assert path is not None, f'no configs/train-sample/train_tiny-*.yaml for the registered family {family!r}'
    cfg = load_train_config(path)
    model = models.make(cfg['model'])
    # Tiny: seconds on a CPU (SRNO's lifting layer needs a 64-feature encoder, the largest of them).
    assert sum(p.numel() for p in model.parameters()) < 250_000
    assert cfg['epoch_max'] <= 2 and cfg['train_dataset']['wrapper']['args']['inp_size'] <= 16
