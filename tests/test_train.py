"""train_liif.py end to end on tiny image folders made here: files written, loss falling,
resume == uninterrupted, the never-replace rule, a non-finite loss stopped, torchrun on CPU."""
import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import train_liif
import training.loop
from inference.metrics import psnr
from models.loading import load_model
from script_loader import load_script
from training import trainer
from training.config import check_train_config
from utils.checkpoints import file_digest, load_checkpoint
from utils.config import load_yaml
from utils.coords import to_pixel_samples
from utils.errors import run_cli

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / 'configs/train-sample/train_tiny-liif.yaml'


def smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """uint8 (h, w, 3): a few random low-frequency waves per channel."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.zeros((h, w, 3))
    for c in range(3):
        for _ in range(3):
            fy, fx, ph = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6.3)]
            img[..., c] += np.sin(2 * np.pi * (fy * y + fx * x) + ph)
    img = (img - img.min()) / (img.max() - img.min())
    return (img * 255).round().astype(np.uint8)


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Path:
    """train/ (6 images) and val/ (2 images) of 72x80 pixels, enough for 16-pixel crops at x4."""
    root = tmp_path_factory.mktemp('data')
    rng = np.random.default_rng(0)
    for split, n in (('train', 6), ('val', 2), ('one', 1)):
        (root / split).mkdir()
        for i in range(n):
            Image.fromarray(smooth_image(rng, 72, 80)).save(root / split / f'{i:02d}.png')
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest, and deterministically, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_raw(data: Path, **overrides) -> dict:
    """The shipped tiny config pointed at the test folders, with top-level overrides."""
    cfg = copy.deepcopy(load_yaml(TINY))
    cfg['train_dataset']['dataset']['args']['root_path'] = str(data / 'train')
    cfg['val_dataset']['dataset']['args']['root_path'] = str(data / 'val')
    cfg.update(overrides)
    return cfg


def tiny(data: Path, **overrides) -> dict:
    return check_train_config(tiny_raw(data, **overrides), 'tiny')


def interrupt_at_step(monkeypatch, n: int) -> None:
    """Make training's n-th train_step (counted from 1) raise KeyboardInterrupt, as Ctrl-C would;
    monkeypatch.undo() puts the real step back."""
    real_step, calls = training.loop.train_step, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)
    monkeypatch.setattr(training.loop, 'train_step', interrupted)


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def cli(argv: list, capsys) -> tuple[int, str]:
    """Run train_liif's entry point as the shell would; returns (exit code, stderr)."""
    try:
        run_cli(lambda: train_liif.main(argv))
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_two_epochs_end_to_end(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg_path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data))
    code, err = cli(['--config', str(cfg_path), '--tag', 't'], capsys)
    assert code == 0, err
    run = tmp_path / 'save' / '_tiny_t'
    names = {p.name for p in run.iterdir()}
    assert {'config.yaml', 'log.txt', 'tensorboard', 'epoch-last.pth', 'epoch-best.pth',
            'epoch-1.pth', 'epoch-2.pth'} <= names
    assert any(p.name.startswith('events.out.tfevents') for p in (run / 'tensorboard').iterdir())
    assert load_yaml(run / 'config.yaml') == tiny(data)
    ckpt = load_checkpoint(run / 'epoch-last.pth')  # weights_only=True
    assert ckpt['epoch'] == 2 and ckpt['model']['name'] == 'liif' and ckpt['optimizer']['name'] == 'adam'
    assert ckpt['scheduler']['last_epoch'] == 2 and ckpt['optimizer']['sd']['param_groups'][0]['lr'] == 5e-4
    assert math.isfinite(ckpt['best_val']) and len(ckpt['rng']) == 1
    model = load_model(run / 'epoch-last.pth')
    assert model(torch.zeros(1, 3, 8, 8), torch.zeros(1, 5, 2), torch.full((1, 5, 2), 0.1)).shape == (1, 5, 3)
    log = (run / 'log.txt').read_text().splitlines()
    epochs = [line for line in log if line.startswith('epoch ')]
    assert [line.split(',')[0] for line in epochs] == ['epoch 1/2', 'epoch 2/2']
    losses = [float(line.split('loss=')[1].split(',')[0]) for line in epochs]
    assert all(math.isfinite(v) and v > 0 for v in losses)


def test_loss_falls_when_overfitting_one_image(data, tmp_path):
    raw = tiny_raw(data, epoch_max=30, multi_step_lr=None, val_dataset=None, epoch_val=None, epoch_save=None)
    raw['train_dataset']['dataset']['args'].update(root_path=str(data / 'one'), repeat=8)
    raw['train_dataset']['wrapper']['args'].update(scale_min=2, scale_max=2, augment=False)
    raw['optimizer']['args']['lr'] = 3e-3
    hist = trainer.train(check_train_config(raw, 'overfit'), tmp_path / 'run')
    loss = hist['train_loss']
    assert len(loss) == 30 and all(math.isfinite(v) for v in loss)
    assert loss[-1] < 0.5 * loss[0], loss


def test_seed_decides_the_run(data, tmp_path):
    a = trainer.train(tiny(data, epoch_max=1), tmp_path / 'a')
    b = trainer.train(tiny(data, epoch_max=1), tmp_path / 'b')
    c = trainer.train(tiny(data, epoch_max=1, seed=1), tmp_path / 'c')
    assert a['train_loss'] == b['train_loss'] and a['val_psnr'] == b['val_psnr']
    assert a['train_loss'] != c['train_loss']


def test_bf16_trains_on_cpu(data, tmp_path):
    hist = trainer.train(tiny(data, epoch_max=1, precision='bf16'), tmp_path / 'bf16')
    assert math.isfinite(hist['train_loss'][0]) and math.isfinite(hist['val_psnr'][0])
    assert 'precision bf16' in (tmp_path / 'bf16/log.txt').read_text()


def test_validation_psnr_matches_a_direct_computation(data, tmp_path):
    """Whole val images at x2, eval_type div2k-2 (border 8), decoder queried in chunks: the
    logged PSNR equals inference.metrics.psnr on the model's full prediction, image by image."""
    raw = tiny_raw(data, epoch_max=1, eval_type='div2k-2', eval_bsize=500)
    raw['val_dataset']['wrapper']['args'] = {'scale_min': 2}
    raw['val_dataset']['dataset']['args']['repeat'] = 1
    raw['val_dataset']['batch_size'] = 1
    cfg = check_train_config(raw, 'whole')
    hist = trainer.train(cfg, tmp_path / 'run')
    model = load_model(tmp_path / 'run/epoch-last.pth')
    values = []
    for name in sorted(os.listdir(data / 'val')):
        hr = torch.from_numpy(np.array(Image.open(data / 'val' / name))).permute(2, 0, 1).float() / 255
        lr = torch.from_numpy(np.array(Image.open(data / 'val' / name).resize((40, 36), Image.BICUBIC)))
        lr = lr.permute(2, 0, 1).float().unsqueeze(0) / 255
        coord, _ = to_pixel_samples(hr)
        cell = torch.full_like(coord, 2 / 72)
        cell[:, 1] = 2 / 80
        with torch.no_grad():
            pred = model((lr - 0.5) / 0.5, coord.unsqueeze(0), cell.unsqueeze(0))  # (1, Q, 3)
        img = (pred * 0.5 + 0.5).clamp(0, 1).view(1, 72, 80, 3).permute(0, 3, 1, 2)
        values.append(psnr(img, hr.unsqueeze(0), 'div2k-2').item())
    assert hist['val_psnr'][0] == pytest.approx(sum(values) / len(values), abs=1e-4)


@pytest.mark.parametrize('workers', [0, 2])
def test_resume_equals_uninterrupted(data, tmp_path, monkeypatch, workers):
    cfg = tiny(data, epoch_max=4, multi_step_lr={'milestones': [2, 3], 'gamma': 0.5}, num_workers=workers)
    full = trainer.train(cfg, tmp_path / 'full')

    # Ctrl-C in the middle of epoch 3 (its second step; 2 steps per epoch), after one update.
    cut = tmp_path / 'cut'
    interrupt_at_step(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cfg, cut)
    monkeypatch.undo()
    assert 'interrupted in epoch 3' in (cut / 'log.txt').read_text()
    assert load_checkpoint(cut / 'epoch-last.pth')['epoch'] == 2

    rest = trainer.train(cfg, cut, resume=str(cut / 'epoch-last.pth'))
    assert rest['epoch'] == [3, 4]
    assert 'differs' not in (cut / 'log.txt').read_text()  # same config: the loaded schedule stays
    assert rest['train_loss'] == full['train_loss'][2:]
    assert rest['val_psnr'] == full['val_psnr'][2:]
    a, b = load_checkpoint(tmp_path / 'full/epoch-last.pth'), load_checkpoint(cut / 'epoch-last.pth')
    for k, v in a['model']['sd'].items():
        assert torch.equal(v, b['model']['sd'][k]), k
    assert a['optimizer']['sd']['param_groups'][0]['lr'] == b['optimizer']['sd']['param_groups'][0]['lr'] == 2.5e-4
    assert a['scheduler'] == b['scheduler'] and a['best_val'] == b['best_val']


def test_resume_from_a_released_format_checkpoint(data, tmp_path):
    """{'model', 'optimizer', 'epoch'} only, as the paper's release: the learning rate continues
    from the optimizer state without being decayed again; the random state is reseeded."""
    cfg = tiny(data, epoch_max=2, multi_step_lr={'milestones': [1, 3], 'gamma': 0.5})
    trainer.train(cfg, tmp_path / 'a')
    full = load_checkpoint(tmp_path / 'a/epoch-last.pth')
    released = {k: full[k] for k in ('model', 'optimizer', 'epoch')}
    torch.save(released, tmp_path / 'released.pth')
    hist = trainer.train(tiny(data, epoch_max=4, multi_step_lr={'milestones': [1, 3], 'gamma': 0.5}),
                            tmp_path / 'b', resume=str(tmp_path / 'released.pth'))
    assert hist['epoch'] == [3, 4]
    log = (tmp_path / 'b/log.txt').read_text()
    assert 'epoch 3/4, lr 5.00e-04' in log and 'epoch 4/4, lr 2.50e-04' in log
    assert 'reseeded, not bit-identical' in log


def test_resume_with_a_changed_schedule_follows_the_config(data, tmp_path):
    """Resuming with a lower rate, other milestones or another gamma: the config's schedule wins
    (the optimizer state would otherwise bring back the old rate), recomputed at the epoch."""
    lr = tiny(data)['optimizer']['args']['lr']
    trainer.train(tiny(data, epoch_max=2, multi_step_lr={'milestones': [1], 'gamma': 0.5}), tmp_path / 'a')
    changed = tiny(data, epoch_max=5, multi_step_lr={'milestones': [1, 4], 'gamma': 0.25})
    changed['optimizer']['args']['lr'] = lr / 2
    trainer.train(changed, tmp_path / 'b', resume=str(tmp_path / 'a/epoch-last.pth'))
    log = (tmp_path / 'b/log.txt').read_text()
    assert "config's optimizer or schedule differs" in log
    for epoch, want in ((3, lr / 2 * 0.25), (4, lr / 2 * 0.25), (5, lr / 2 * 0.25 ** 2)):
        assert f'epoch {epoch}/5, lr {want:.2e}' in log, (epoch, log)
    ckpt = load_checkpoint(tmp_path / 'b/epoch-last.pth')
    assert ckpt['optimizer']['sd']['param_groups'][0]['lr'] == pytest.approx(lr / 2 * 0.25 ** 2, rel=1e-12)
    assert ckpt['scheduler']['milestones'] == {1: 1, 4: 1} and ckpt['scheduler']['gamma'] == 0.25


def test_warmup_cosine_schedule_resumes_exactly(data, tmp_path):
    """warmup_cosine_lr (training/schedule.py): each epoch's rate is the closed form; a run resumed
    from epoch 2 ends with the uninterrupted run's weights and state; resumed with another
    warmup_prefix, the config's schedule is followed from there."""
    sched = {'warmup_epochs': 2, 'warmup_start_lr': 1.0e-4, 'min_lr': 1.0e-5}
    cfg = tiny(data, epoch_max=4, multi_step_lr=None, warmup_cosine_lr=sched, val_dataset=None, epoch_val=None)
    assert cfg['warmup_cosine_lr'] == {**sched, 'warmup_prefix': True}
    trainer.train(cfg, tmp_path / 'full')
    log = (tmp_path / 'full/log.txt').read_text()
    base = cfg['optimizer']['args']['lr']  # 1e-3
    wants = [1e-4, 1e-4 + (base - 1e-4) / 2, base, 1e-5 + (base - 1e-5) * (1 + math.cos(math.pi / 2)) / 2]
    for epoch, want in enumerate(wants, 1):
        assert f'epoch {epoch}/4, lr {want:.2e}' in log, (epoch, log)
    trainer.train(cfg, tmp_path / 'b', resume=str(tmp_path / 'full/epoch-2.pth'))
    a, b = load_checkpoint(tmp_path / 'full/epoch-last.pth'), load_checkpoint(tmp_path / 'b/epoch-last.pth')
    assert all(torch.equal(v, b['model']['sd'][k]) for k, v in a['model']['sd'].items())
    assert a['scheduler'] == b['scheduler'] and 'differs' not in (tmp_path / 'b/log.txt').read_text()
    other = tiny(data, epoch_max=4, multi_step_lr=None, warmup_cosine_lr={**sched, 'warmup_prefix': False},
                 val_dataset=None, epoch_val=None)
    trainer.train(other, tmp_path / 'c', resume=str(tmp_path / 'full/epoch-2.pth'))
    log = (tmp_path / 'c/log.txt').read_text()
    assert "schedule differs" in log
    for epoch, t in ((3, 2), (4, 3)):  # the cosine counted from epoch 1 over 4 epochs
        assert f'epoch {epoch}/4, lr {1e-5 + (base - 1e-5) * (1 + math.cos(math.pi * t / 4)) / 2:.2e}' in log


def test_existing_run_is_never_replaced(data, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg_path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data, epoch_max=2))
    assert cli(['--config', str(cfg_path), '--name', 'r'], capsys)[0] == 0
    run = Path('save/r')
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    code, err = cli(['--config', str(cfg_path), '--name', 'r'], capsys)
    assert code == 2 and 'save/r already holds a run' in err and '--resume save/r/epoch-last.pth' in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

    # Resuming from epoch 1 would replace epoch-last (epoch 2): refused.
    code, err = cli(['--config', str(cfg_path), '--name', 'r', '--resume', 'save/r/epoch-1.pth'], capsys)
    assert code == 2 and 'later than' in err and '--name' in err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before

    # A config mistake found while building fails before any folder is made.
    bad = tiny_raw(data)
    bad['train_dataset']['dataset']['args']['root_path'] = str(tmp_path / 'missing')
    code, err = cli(['--config', str(write_config(tmp_path / 'bad.yaml', bad)), '--name', 'b'], capsys)
    assert code == 2 and not Path('save/b').exists()

    # --overwrite moves the old run aside, byte for byte, and starts afresh.
    assert cli(['--config', str(cfg_path), '--name', 'r', '--overwrite'], capsys)[0] == 0
    (old,) = Path('save').glob('r.old-*')
    assert {p.name: p.read_bytes() for p in old.iterdir() if p.is_file()} == before
    assert 'moved the previous contents' in (run / 'log.txt').read_text()

    # Continuing a finished run in place, with more epochs: allowed, appends to the log.
    longer = write_config(tmp_path / 'longer.yaml', tiny_raw(data, epoch_max=3))
    assert cli(['--config', str(longer), '--name', 'r', '--resume', 'save/r/epoch-last.pth'], capsys)[0] == 0
    assert load_checkpoint(run / 'epoch-last.pth')['epoch'] == 3
    assert (run / 'config-resume-2.yaml').is_file()


def test_resume_continues_in_the_checkpoint_folder(data, tmp_path, monkeypatch, capsys):
    """A resume, with or without --config, continues in the checkpoint's own folder (not a new
    save/_<config stem>), and a run with nothing left to train says so, exit 2."""
    monkeypatch.chdir(tmp_path)
    cfg_path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data, epoch_max=1))
    assert cli(['--config', str(cfg_path), '--name', 'r'], capsys)[0] == 0
    code, err = cli(['--resume', 'save/r/epoch-last.pth'], capsys)  # epoch_max 1: nothing left
    assert code == 2
    assert err.strip() == ('error: nothing to train: save/r/epoch-last.pth is at epoch 1 and epoch_max is 1; '
                           'to continue, raise epoch_max (give --config with a larger epoch_max)')
    longer = write_config(tmp_path / 'other.yaml', tiny_raw(data, epoch_max=2))
    code, err = cli(['--resume', 'save/r/epoch-last.pth', '--config', str(longer)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in Path('save').iterdir()) == ['r']  # no save/_other
    log = Path('save/r/log.txt').read_text()
    assert 'resumed from save/r/epoch-last.pth (epoch 1)' in log and log.count('run folder: save/r') == 2
    assert load_checkpoint('save/r/epoch-last.pth')['epoch'] == 2


def test_init_fine_tunes_from_a_model_only_checkpoint(data, tmp_path, monkeypatch, capsys):
    """--init starts a new run (epoch 0, fresh optimizer) from an exported model's weights;
    --resume of the same file is one line pointing at --init."""
    monkeypatch.chdir(tmp_path)
    cfg_path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data, epoch_max=1))
    assert cli(['--config', str(cfg_path), '--name', 'a'], capsys)[0] == 0
    export = load_script('scripts/export_model.py', 'export_for_init').export
    exported = export('save/a/epoch-last.pth', str(tmp_path / 'model.pth'))
    code, err = cli(['--resume', str(tmp_path / 'model.pth')], capsys)
    assert code == 2 and err.count('\n') == 1
    assert 'holds a model without its training state' in err and f'--init {tmp_path / "model.pth"}' in err
    code, err = cli(['--config', str(cfg_path), '--name', 'b', '--init', str(tmp_path / 'model.pth')], capsys)
    assert code == 0, err
    log = Path('save/b/log.txt').read_text()
    digest = file_digest(tmp_path / 'model.pth')
    assert f'initialised from {tmp_path / "model.pth"} (sha256 {digest}, epoch 1 of its run)' in log
    start = load_checkpoint('save/b/epoch-last.pth')
    assert start['epoch'] == 1  # one epoch of the new run, counted from 0
    # Where the weights came from: config.yaml and every checkpoint say it.
    assert load_yaml('save/b/config.yaml')['init'] == str(tmp_path / 'model.pth')
    assert start['init'] == {'path': str(tmp_path / 'model.pth'), 'digest': digest, 'epoch': 1}
    assert not torch.equal(start['model']['sd']['imnet.layers.0.weight'], exported['model']['sd']['imnet.layers.0.weight'])
    assert cli(['--init', str(tmp_path / 'model.pth')], capsys)[0] == 2  # --init needs --config
    wrong = write_config(tmp_path / 'wrong.yaml', tiny_raw(data, model={'name': 'metasr', 'args': {
        'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}}}}))
    code, err = cli(['--config', str(wrong), '--name', 'c', '--init', str(tmp_path / 'model.pth')], capsys)
    assert code == 2 and "its model is 'liif', the config's is 'metasr'" in err
    assert not Path('save/c').exists()
    # Another module tree of the same family: the differing model arguments are named.
    deeper = tiny_raw(data)
    deeper['model']['args']['encoder_spec']['args']['n_resblocks'] = 3
    code, err = cli(['--config', str(write_config(tmp_path / 'deeper.yaml', deeper)), '--name', 'd', '--init',
                     str(tmp_path / 'model.pth')], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert ("its model differs from the config's (model.args, checkpoint vs config: "
            'encoder_spec.args.n_resblocks 2 vs 3); checkpoint lacks parameters') in err


def test_run_config_keeps_the_source_key_order_and_checkpoints_carry_data_norm(data, tmp_path):
    raw = tiny_raw(data, epoch_max=1)
    trainer.train(check_train_config(raw, 'tiny'), tmp_path / 'run')
    written = yaml.safe_load((tmp_path / 'run/config.yaml').read_text())
    assert list(written)[:len(raw)] == list(raw)
    ckpt = load_checkpoint(tmp_path / 'run/epoch-last.pth')
    assert ckpt['data_norm'] == {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(data, tmp_path, monkeypatch, capsys):
    real_build, calls = trainer.build_model, []

    def poisoned(config, where):
        model = real_build(config, where)

        def hook(module, inputs, output):
            if not module.training:  # the dry run before the folder is made (training/probe.py)
                return output
            calls.append(1)
            return output * float('nan') if len(calls) > 3 else output  # from epoch 2, step 2
        model.register_forward_hook(hook)
        return model

    monkeypatch.setattr(trainer, "build_model", poisoned)
    monkeypatch.chdir(tmp_path)
    cfg = tiny_raw(data, epoch_max=3, val_dataset=None)
    code, err = cli(['--config', str(write_config(tmp_path / 'tiny.yaml', cfg)), '--name', 'n'], capsys)
    assert code == 2
    assert 'non-finite loss (nan) at iteration 2 in epoch 2' in err
    assert 'save/n/epoch-last.pth (epoch 1)' in err
    ckpt = load_checkpoint(tmp_path / 'save/n/epoch-last.pth')
    assert ckpt['epoch'] == 1
    assert all(torch.isfinite(v).all() for v in ckpt['model']['sd'].values())


def test_torchrun_two_processes_agree(data, tmp_path):
    """2 CPU processes (gloo) under torchrun: global batch split, ranks end with equal weights
    (about 15 s, mostly two interpreters importing torch)."""
    cfg_path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data))
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
                           '--standalone', str(REPO / 'train_liif.py'), '--config', str(cfg_path),
                           '--name', 'ddp'], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (tmp_path / 'save/ddp/log.txt').read_text()
    assert '2 process(es)' in log and '2 per step and process' in log
    assert 'weights identical on all 2 ranks' in log
    assert load_checkpoint(tmp_path / 'save/ddp/epoch-last.pth')['epoch'] == 2
    assert len(load_checkpoint(tmp_path / 'save/ddp/epoch-last.pth')['rng']) == 2


def test_validation_sees_the_same_samples_every_epoch(data, tmp_path, monkeypatch):
    """Without loader workers the validation wrapper draws its random crops in this process: they
    come from validation's own seeded state, so epoch-best compares epochs on the same samples (and
    training's random stream is not consumed by validation)."""
    seen = []
    real = training.loop.evaluate

    def recording(model, loader, *args, **kwargs):
        batches = list(loader)
        seen.append([b['inp'].clone() for b in batches])
        return real(model, batches, *args, **kwargs)
    monkeypatch.setattr(training.loop, 'evaluate', recording)
    trainer.train(tiny(data, epoch_max=2, num_workers=0), tmp_path / 'run')
    assert len(seen) == 2 and len(seen[0]) == len(seen[1]) > 0
    assert all(torch.equal(a, b) for a, b in zip(*seen))
