"""Fault injection in training runs: two trainings into one folder, a crashed run's lock, full and
read-only disks, kill -9 during a save, stale temporary files, divergence after a resume. Each
failure is one line `error: ...`, exit status 2, and the last checkpoint stays resumable."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from tensorboardX.proto.event_pb2 import Event

import utils.files
from test_train import cli, data, one_thread, tiny_raw, write_config  # noqa: F401  (fixtures, helpers)
from training import trainer
from training.config import check_train_config
from utils.checkpoints import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- one training per folder

def wait_for(condition, timeout: float = 120, what: str = 'condition') -> None:
    """Poll condition() every 0.1 s; AssertionError after timeout seconds."""
    end = time.time() + timeout
    while not condition():
        if time.time() > end:
            raise AssertionError(f'timed out waiting for {what}')
        time.sleep(0.1)


def start_training(cfg: Path, cwd: Path, *extra) -> subprocess.Popen:
    """train_liif.py --config cfg --name r started in the background (stderr piped)."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1'}
    return subprocess.Popen([sys.executable, str(REPO / 'train_liif.py'), '--config', str(cfg), '--name', 'r', *extra],
                            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_busy_run_folder_is_refused_and_a_crashed_runs_lock_taken_over(data, tmp_path, capsys, monkeypatch):
    """Process A trains; this process (B) cannot start, overwrite or resume the same folder; A is
    killed with SIGKILL and its leftover lock file does not block the resume."""
    monkeypatch.chdir(tmp_path)
    long_run = write_config(tmp_path / 'long.yaml', tiny_raw(data, epoch_max=100000, val_dataset=None,
                                                             epoch_val=None, epoch_save=None))
    proc = start_training(long_run, tmp_path)
    run = tmp_path / 'save/r'
    try:
        wait_for(lambda: (run / '.lock').is_file() and f'pid {proc.pid} ' in (run / '.lock').read_text()
                 and (run / 'epoch-last.pth').is_file() or proc.poll() is not None, what='run A to start')
        assert proc.poll() is None, proc.stderr.read()
        for extra in ([], ['--overwrite'], ['--resume', 'save/r/epoch-last.pth']):
            code, err = cli(['--config', str(long_run), '--name', 'r', *extra], capsys)
            assert code == 2 and err.count('\n') == 1, err
            assert f'save/r is in use by another training (pid {proc.pid} ' in err, err
        assert not list(tmp_path.glob('save/r.old-*'))  # --overwrite moved nothing
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert f'pid {proc.pid} ' in (run / '.lock').read_text()  # what a kill leaves
    epoch = load_checkpoint(run / 'epoch-last.pth')['epoch']
    more = write_config(tmp_path / 'more.yaml', tiny_raw(data, epoch_max=epoch + 1, val_dataset=None,
                                                         epoch_val=None, epoch_save=None))
    code, err = cli(['--config', str(more), '--name', 'r', '--resume', 'save/r/epoch-last.pth'], capsys)
    assert code == 0, err
    log = (run / 'log.txt').read_text()
    assert f'took over the lock of a run that ended without releasing it (pid {proc.pid} ' in log
    assert (run / '.lock').read_text() == ''  # released cleanly
    assert load_checkpoint(run / 'epoch-last.pth')['epoch'] == epoch + 1


@pytest.mark.slow
def test_two_trainings_started_at_once_into_one_folder(data, tmp_path):
    """Exactly one runs; the other exits 2 with one line, and the folder holds one run."""
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=3))
    procs = [start_training(cfg, tmp_path) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(e for code, e in results if code == 2).strip()
    assert err.startswith('error: ') and '\n' not in err, err
    log = (tmp_path / 'save/r/log.txt').read_text()
    assert log.count('epoch 3/3') == 1 and log.count('model: liif') == 1, log
    assert load_checkpoint(tmp_path / 'save/r/epoch-last.pth')['epoch'] == 3


def test_a_resume_that_changes_only_resume_writes_no_new_config(data, tmp_path, capsys, monkeypatch):
    """Resumes whose config differs from the run's only in `resume:` (given again with --config, or
    taken from the checkpoint) keep the one config.yaml; a changed config adds config-resume-<N>."""
    monkeypatch.chdir(tmp_path)
    real_epoch, calls = trainer.train_epoch, []

    def one_epoch_then_ctrl_c(*args, **kwargs):  # each run stops at the start of its second epoch
        calls.append(1)
        if len(calls) % 2 == 0:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)
    monkeypatch.setattr(trainer, 'train_epoch', one_epoch_then_ctrl_c)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=3))
    assert cli(['--config', str(cfg), '--name', 'r'], capsys)[0] == 130  # epoch 1 done
    assert cli(['--config', str(cfg), '--name', 'r', '--resume', 'save/r/epoch-last.pth'], capsys)[0] == 130  # 2
    assert cli(['--resume', 'save/r/epoch-last.pth'], capsys)[0] == 0  # epoch 3: the end
    assert load_checkpoint(tmp_path / 'save/r/epoch-last.pth')['epoch'] == 3
    assert sorted(p.name for p in (tmp_path / 'save/r').glob('config*')) == ['config.yaml']
    monkeypatch.undo()  # (also undoes the chdir)
    monkeypatch.chdir(tmp_path)
    changed = write_config(tmp_path / 'c2.yaml', tiny_raw(data, epoch_max=4))
    code, err = cli(['--config', str(changed), '--name', 'r', '--resume', 'save/r/epoch-last.pth'], capsys)
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / 'save/r').glob('config*')) == ['config-resume-3.yaml', 'config.yaml']


# ---------------------------------------------------------------- full and read-only disks

HOOKED_TRAINING = '''
import os, sys
sys.path.insert(0, {repo!r})
import train_liif
from training import trainer
from utils.errors import run_cli

real_epoch = trainer.train_epoch

def break_the_disk():
    if {how!r} == 'full':
        with open({filler!r}, 'wb', buffering=0) as f:
            try:
                while True:
                    f.write(bytes(4096))
            except OSError:
                pass
    else:
        os.chmod({run!r}, 0o555)

def epoch(*args, desc, **kwargs):
    if desc == 'epoch 2':
        break_the_disk()
    return real_epoch(*args, desc=desc, **kwargs)

trainer.train_epoch = epoch
run_cli(lambda: train_liif.main(sys.argv[1:]))
'''


def run_training(argv: list, cwd: Path, script: str = None) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(REPO)}
    cmd = [sys.executable, '-c', script] if script else [sys.executable, str(REPO / 'train_liif.py')]
    return subprocess.run(cmd + argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize('how', ['full', 'chmod'])
def test_a_disk_that_fills_or_turns_read_only_mid_run_is_one_line(data, tmp_path, mount_tmpfs, how):
    """In a real process: no traceback from a writer thread or an atexit hook either; the last
    checkpoint stays loadable and the run resumes once the disk takes files again."""
    if how == 'chmod' and os.geteuid() == 0:
        pytest.skip('running as root, where chmod does not stop writes (the read-only mount is tested '
                    'by test_resuming_into_a_read_only_folder_is_one_line)')
    disk = mount_tmpfs(tmp_path / 'disk', size='4m') if how == 'full' else tmp_path / 'disk'
    disk.mkdir(exist_ok=True)
    run = disk / 'save/r'
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=3, epoch_save=None))
    script = HOOKED_TRAINING.format(repo=str(REPO), how=how, filler=str(disk / 'filler'), run=str(run))
    proc = run_training(['--config', str(cfg), '--name', 'r'], disk, script)
    try:
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip()
        assert err.startswith('error: cannot write save/r/') and '\n' not in err, err
        assert 'training stopped in epoch 2' in err
        assert 'The last good checkpoint is save/r/epoch-last.pth (epoch 1)' in err
        assert load_checkpoint(run / 'epoch-last.pth')['epoch'] == 1
        assert not [p for p in run.iterdir() if p.name.endswith('.tmp')]
    finally:
        if how == 'full':
            (disk / 'filler').unlink()
        else:
            run.chmod(0o755)
    proc = run_training(['--resume', 'save/r/epoch-last.pth'], disk)  # the disk takes files again
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(run / 'epoch-last.pth')['epoch'] == 3


def test_resuming_into_a_read_only_folder_is_one_line(data, tmp_path, mount_tmpfs, capsys, monkeypatch):
    """A read-only tmpfs as root (chmod does not stop root), chmod 555 otherwise."""
    disk = mount_tmpfs(tmp_path / 'disk', size='4m') if os.geteuid() == 0 else tmp_path / 'disk'
    disk.mkdir(exist_ok=True)
    monkeypatch.chdir(disk)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=1))
    assert cli(['--config', str(cfg), '--name', 'r'], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in (disk / 'save/r').iterdir() if p.is_file()}
    if os.geteuid() == 0:
        subprocess.run(['mount', '-o', 'remount,ro', str(disk)], check=True)
    else:
        (disk / 'save/r').chmod(0o555)
    try:
        assert not os.access(disk / 'save/r', os.W_OK)
        longer = write_config(tmp_path / 'c2.yaml', tiny_raw(data, epoch_max=2))
        code, err = cli(['--config', str(longer), '--name', 'r', '--resume', 'save/r/epoch-last.pth'], capsys)
        assert code == 2 and err.count("\n") == 1 and "save/r" in err, err
        assert {p.name: p.read_bytes() for p in (disk / 'save/r').iterdir() if p.is_file()} == before
    finally:
        if os.geteuid() == 0:
            subprocess.run(['mount', '-o', 'remount,rw', str(disk)], check=True)
        else:
            (disk / 'save/r').chmod(0o755)


def test_a_failed_checkpoint_write_is_one_line_in_process(data, tmp_path, capsys, monkeypatch):
    """The same without a mount (every platform): the write of epoch 2's checkpoint fails."""
    real_fsync, calls = utils.files.os.fsync, []

    def fsync(fd):  # epoch-last.pth is written after epochs 0 and 1; the third write fails
        name = os.readlink(f'/proc/self/fd/{fd}')
        if '.epoch-last.pth.' in name and name.endswith('.tmp'):
            calls.append(1)
            if len(calls) == 3:
                raise OSError(28, 'No space left on device')
        return real_fsync(fd)
    monkeypatch.setattr(utils.files.os, 'fsync', fsync)
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=3, epoch_save=None))
    code, err = cli(['--config', str(cfg), '--name', 'r'], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert 'No space left on device' in err and 'The last good checkpoint is save/r/epoch-last.pth' in err
    assert 'training stopped in epoch' in (tmp_path / 'save/r/log.txt').read_text()


def test_tensorboard_events_are_readable_and_written_without_a_thread(data, tmp_path):
    trainer.train(check_train_config(tiny_raw(data, epoch_max=2, tensorboard_every=1), 't'), tmp_path / 'run')
    assert not [t for t in threading.enumerate() if 'EventLogger' in type(t).__name__]
    (events,) = (tmp_path / 'run/tensorboard').iterdir()
    data_bytes, scalars, images, pos = events.read_bytes(), {}, {}, 0
    while pos < len(data_bytes):
        (n,) = struct.unpack('<Q', data_bytes[pos:pos + 8])
        event = Event.FromString(data_bytes[pos + 12:pos + 12 + n])
        pos += 12 + n + 4
        for v in event.summary.value:
            if v.HasField('image'):
                images.setdefault(v.tag, []).append((event.step, v.image.width, v.image.height))
            else:
                scalars.setdefault(v.tag, []).append((event.step, v.simple_value))
    assert sorted(scalars) == ['loss', 'loss/iteration', 'lr', 'psnr'] and [s for s, _ in scalars['loss']] == [1, 2]
    assert [s for s, _ in scalars['loss/iteration']] == [1, 2, 3, 4]  # 2 iterations per epoch
    # Two validation images per validation: bicubic | model | ground truth of the 72x72 centre crop at x4.
    assert images == {f'val_images/{i}': [(1, 3 * 72 + 4, 72), (2, 3 * 72 + 4, 72)] for i in (0, 1)}
    log = (tmp_path / 'run/log.txt').read_text()
    assert f"loss={scalars['loss'][1][1]:.4f}" in log


KILLED_IN_A_SAVE = '''
import os, signal, sys
sys.path.insert(0, {repo!r})
import train_liif
import utils.files
from utils.errors import run_cli

real_fsync, saves = utils.files.os.fsync, []

def fsync(fd):
    if '.epoch-last.pth.' in os.readlink(f'/proc/self/fd/{{fd}}'):
        saves.append(1)
        if len(saves) == 3:  # epoch 2's checkpoint is written, not yet renamed
            os.kill(os.getpid(), signal.SIGKILL)
    return real_fsync(fd)

utils.files.os.fsync = fsync
run_cli(lambda: train_liif.main(sys.argv[1:]))
'''


@pytest.mark.slow
def test_kill_9_during_a_save_then_resume_equals_uninterrupted(data, tmp_path):
    """SIGKILL while epoch 2's checkpoint is being written: epoch-last.pth still holds epoch 1, the
    leftover temporary file and lock are cleaned up by the resume, which ends bit-identical to an
    uninterrupted run."""
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=4, epoch_save=None))
    full = run_training(['--config', str(cfg), '--name', 'full'], tmp_path)
    assert full.returncode == 0, full.stderr
    killed = run_training(['--config', str(cfg), '--name', 'r'], tmp_path, KILLED_IN_A_SAVE.format(repo=str(REPO)))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / 'save/r'
    assert load_checkpoint(run / 'epoch-last.pth')['epoch'] == 1
    assert len(list(run.glob('.epoch-last.pth.*.tmp'))) == 1
    rest = run_training(['--resume', 'save/r/epoch-last.pth'], tmp_path)
    assert rest.returncode == 0, rest.stderr
    log = (run / 'log.txt').read_text()
    assert 'took over the lock' in log and 'removed 1 temporary file(s) of interrupted writes' in log
    assert not list(run.glob('.*.tmp'))
    a, b = load_checkpoint(tmp_path / 'save/full/epoch-last.pth'), load_checkpoint(run / 'epoch-last.pth')
    assert a['epoch'] == b['epoch'] == 4 and a['best_val'] == b['best_val']
    for k, v in a['model']['sd'].items():
        assert torch.equal(v, b['model']['sd'][k]), k


def test_stale_temp_files_in_a_run_folder_are_removed_on_resume(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=1))
    assert cli(['--config', str(cfg), '--name', 'r'], capsys)[0] == 0
    run = tmp_path / 'save/r'
    for name in ('.epoch-last.pth.abcd1234.tmp', '.epoch-best.pth.zz_99xyz.tmp', 'notes.tmp'):
        (run / name).write_bytes(b'half')
        os.utime(run / name, (0, 0))
    more = write_config(tmp_path / 'c2.yaml', tiny_raw(data, epoch_max=2))  # a resume needs an epoch left
    assert cli(['--config', str(more), '--resume', 'save/r/epoch-last.pth'], capsys)[0] == 0
    assert 'removed 2 temporary file(s)' in (run / 'log.txt').read_text()
    assert sorted(p.name for p in run.glob('*.tmp')) == ['notes.tmp']


def test_divergence_after_a_resume_into_a_new_folder_names_a_checkpoint_that_exists(data, tmp_path, capsys,
                                                                                     monkeypatch):
    """Before: it named <new folder>/epoch-last.pth, which a resumed run had not written yet."""
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / 'c.yaml', tiny_raw(data, epoch_max=1))
    assert cli(['--config', str(cfg), '--name', 'a'], capsys)[0] == 0
    real_build = trainer.build_model

    def poisoned(config, where):
        model = real_build(config, where)
        model.register_forward_hook(lambda m, i, out: out * float('nan') if m.training else out)
        return model
    monkeypatch.setattr(trainer, 'build_model', poisoned)
    longer = write_config(tmp_path / 'c2.yaml', tiny_raw(data, epoch_max=2))
    code, err = cli(['--config', str(longer), '--name', 'b', '--resume', 'save/a/epoch-last.pth'], capsys)
    assert code == 2 and 'The last good checkpoint is save/a/epoch-last.pth (epoch 1)' in err, err
    assert not (tmp_path / 'save/b/epoch-last.pth').exists()
    assert 'stopped: non-finite loss' in (tmp_path / 'save/b/log.txt').read_text()


def corrupt_training_set(data: Path, tmp_path: Path, keep) -> tuple[Path, Path]:
    """A copy of the training images whose 03.png keeps only `keep(bytes)`, and a config reading
    it without a cache (each image decoded when drawn, in a DataLoader worker)."""
    folder = tmp_path / 'imgs'
    shutil.copytree(data / 'train', folder)
    png = (folder / '03.png').read_bytes()
    (folder / '03.png').write_bytes(keep(png))
    raw = tiny_raw(data, num_workers=1, val_dataset=None, epoch_val=None)
    raw['train_dataset']['dataset']['args'].update(root_path=str(folder), cache='none')
    return folder, write_config(tmp_path / 'c.yaml', raw)


def test_an_image_cut_short_is_refused_before_the_run_folder(data, tmp_path, capsys, monkeypatch):
    """The dry run reads every image's header (a PNG's chunk headers too): a file cut short stops
    the run before save/r exists."""
    folder, cfg = corrupt_training_set(data, tmp_path, lambda png: png[:len(png) // 2])
    monkeypatch.chdir(tmp_path)
    code, err = cli(['--config', str(cfg), '--name', 'r'], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert err.startswith(f'error: {cfg}: train_dataset: cannot read image {folder}/03.png ('), err
    assert not (tmp_path / 'save' / 'r').exists()


def test_a_corrupt_image_read_by_a_training_worker_is_one_line(data, tmp_path, capsys, monkeypatch):
    """An image whose headers are whole but whose compressed pixels are garbled passes the dry run
    and is decoded in a DataLoader worker during training, whose traceback used to be the message."""
    def garble(png: bytes) -> bytes:
        start = png.index(b'IDAT') + 4
        return png[:start + 20] + b'\xff' * 200 + png[start + 220:]
    folder, cfg = corrupt_training_set(data, tmp_path, garble)
    monkeypatch.chdir(tmp_path)
    code, err = cli(['--config', str(cfg), '--name', 'r'], capsys)
    assert code == 2 and err.count('\n') == 1, err
    assert err.startswith(f'error: cannot read image {folder}/03.png: cannot decode the image ('), err
    assert (tmp_path / 'save' / 'r' / 'log.txt').exists()  # the run had started: the worker found it


# ---------------------------------------------------------------- the run folder is never the data (round 3)

def test_a_run_folder_holding_or_inside_the_data_is_refused(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(data, tmp_path / 'save' / 'r' / 'data')
    raw = tiny_raw(tmp_path / 'save' / 'r' / 'data')
    cfg = write_config(tmp_path / 'tiny.yaml', raw)
    before = sorted(p for p in (tmp_path / 'save').rglob('*'))
    code, err = cli(['--config', str(cfg), '--name', 'r', '--overwrite'], capsys)
    assert code == 2 and err.count('\n') == 1 and 'run folder save/r holds the data folder' in err, err
    assert sorted(p for p in (tmp_path / 'save').rglob('*')) == before  # nothing moved aside
    raw['train_dataset']['dataset']['args']['root_path'] = str(tmp_path / 'save')
    code, err = cli(['--config', str(write_config(cfg, raw)), '--name', 'r'], capsys)
    assert code == 2 and 'inside the data folder' in err, err


# ---------------------------------------------------------------- run names and --overwrite (round 3)

def test_run_names_stay_in_the_save_root_and_overwrite_moves_only_a_run(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer.train(check_train_config(tiny_raw(data, epoch_max=1, val_dataset=None, epoch_val=None), 'c'),
                  tmp_path / 'save' / 'a')
    cfg = write_config(tmp_path / 'tiny.yaml', tiny_raw(data, epoch_max=3, val_dataset=None, epoch_val=None))
    snapshot = lambda: sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob('*'))  # noqa: E731
    before = snapshot()
    for flags, expect in ((['--name', '.'], 'a run name is one folder name'),
                          (['--name', '..'], 'a run name is one folder name'),
                          (['--name', str(tmp_path / 'abs')], 'a run name is one folder name'),
                          (['--name', 'a/../..'], 'a run name is one folder name'),
                          (['--name', ''], 'a run name is one folder name'),
                          (['--tag', '../..'], 'a run name is one folder name'),
                          (['--name', 'n', '--tag', 't'], 'give one of them')):  # the tag was ignored
        code, err = cli(['--config', str(cfg), *flags, '--overwrite'], capsys)
        assert code == 2 and err.count('\n') == 1 and expect in err, (flags, err)
        assert snapshot() == before
    # A checkpoint in the save root: resuming runs in its folder, save/, which holds run a.
    shutil.copy(tmp_path / 'save/a/epoch-last.pth', tmp_path / 'save/x.pth')
    before = snapshot()
    for extra in ([], ['--overwrite']):
        code, err = cli(['--config', str(cfg), '--resume', 'save/x.pth', *extra], capsys)
        assert code == 2 and "and save also holds 'a'" in err, err
        assert snapshot() == before
    (tmp_path / 'save/a/notes.txt').write_text('mine')
    code, err = cli(['--config', str(cfg), '--name', 'a', '--overwrite'], capsys)
    assert code == 2 and "also holds 'notes.txt'" in err, err
    (tmp_path / 'save/a/notes.txt').unlink()
    code, err = cli(['--config', str(cfg), '--name', 'a', '--overwrite'], capsys)
    assert code == 0, err  # a plain run folder is still moved aside
    assert len(list((tmp_path / 'save').glob('a.old-*'))) == 1


# ---------------------------------------------------------------- the data stream ignores num_workers (round 3)

def test_the_data_stream_is_the_same_for_any_number_of_workers(data):
    from training.data import EpochLoaders, make_dataset
    from training.distributed import DistEnv
    cfg = check_train_config(tiny_raw(data), 'c')
    streams = {}
    for workers in (0, 2):
        for key in ('train_dataset', 'val_dataset'):
            loaders = EpochLoaders(make_dataset(cfg[key], key, 'c'), 2, DistEnv(), cfg['seed'], workers, False,
                                   train=key == 'train_dataset')
            streams[workers, key] = [b for epoch in (1, 2) for b in loaders(epoch)]
    for key in ('train_dataset', 'val_dataset'):
        a, b = streams[0, key], streams[2, key]
        assert len(a) == len(b) > 1
        for x, y in zip(a, b):
            assert all(torch.equal(x[k], y[k]) for k in x), key
    assert not torch.equal(streams[0, 'train_dataset'][0]['inp'], streams[0, 'train_dataset'][len(a) // 2]['inp'])


def test_training_with_and_without_workers_gives_the_same_weights(data, tmp_path):
    runs = {w: trainer.train(check_train_config(tiny_raw(data, epoch_max=1, num_workers=w), 'c'), tmp_path / str(w))
            for w in (0, 2)}
    assert runs[0]['val_psnr'] == runs[2]['val_psnr'] and runs[0]['train_loss'] == runs[2]['train_loss']
    a, b = (load_checkpoint(tmp_path / str(w) / 'epoch-last.pth')['model']['sd'] for w in (0, 2))
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- hostile resume state (round 3)

def _shared_list_bomb() -> list:
    """A list whose expanded size is 2^40 though it holds 40 objects (pickle keeps the sharing)."""
    v = ['x']
    for _ in range(40):
        v = [v, v]
    return v


def _self_referencing() -> dict:
    d = {'a': 1}
    d['self'] = d
    return d


def _bad_state_shape(ckpt: dict) -> None:
    st = ckpt['optimizer']['sd']['state']
    k = next(iter(st))
    st[k]['exp_avg'] = torch.zeros(3, 3)


@pytest.mark.parametrize('attack, expect', [
    (lambda c: c['config'].update(model={**c['config']['model'], 'junk': _shared_list_bomb()}), 'expands to more than'),
    (lambda c: c['config'].update(junk=_self_referencing()), 'contains itself'),
    (lambda c: c.update(best_val='abc'), 'best_val'),
    (lambda c: c.update(best_val=float('nan')), 'best_val'),
    (lambda c: c['optimizer'].update(sd={}), 'optimizer'),
    (lambda c: c['optimizer'].update(sd={'state': {}, 'param_groups': 'x'}), 'optimizer'),
    (_bad_state_shape, 'optimizer'),
    (lambda c: c.update(rng=[{'python': 'x'}]), 'random state'),
    (lambda c: c.update(rng=[{'python': [3, [1] * 625, None], 'numpy': {}, 'torch': torch.zeros(3), 'cuda': []}]),
     'random state'),
    (lambda c: c.update(scheduler={'milestones': 'abc'}), 'scheduler'),
    (lambda c: c.update(scheduler={**c['scheduler'], 'last_epoch': 'x'}), 'scheduler'),
    (lambda c: c.update(scheduler={**c['scheduler'], 'base_lrs': [1.0, 2.0, 3.0]}), 'scheduler'),
    (lambda c: c['model']['sd'].update({'imnet.layers.0.bias': [1, 2]}), 'expected a tensor'),
])
def test_hostile_resume_state_is_one_line_before_any_step(data, tmp_path, capsys, monkeypatch, attack, expect):
    monkeypatch.chdir(tmp_path)
    raw = tiny_raw(data, epoch_max=1, val_dataset=None, epoch_val=None,
                   multi_step_lr={'milestones': [1], 'gamma': 0.5})
    trainer.train(check_train_config(raw, 'c'), tmp_path / 'save' / 'r')
    ckpt = load_checkpoint(tmp_path / 'save/r/epoch-last.pth')
    ckpt['config']['epoch_max'] = 2
    attack(ckpt)
    torch.save(ckpt, tmp_path / 'bad.pth')
    cfg = write_config(tmp_path / 'c.yaml', {**raw, 'epoch_max': 2})
    steps = []
    monkeypatch.setattr(trainer, 'train_epoch', lambda *a, **k: steps.append(1) or 0.0)
    for argv in (['--resume', 'bad.pth', '--name', 'n'], ['--config', str(cfg), '--resume', 'bad.pth', '--name', 'n']):
        code, err = cli(argv, capsys)
        assert code == 2 and err.count('\n') == 1 and expect in err, (argv, err)
        assert steps == [] and not (tmp_path / 'save' / 'n').exists()
