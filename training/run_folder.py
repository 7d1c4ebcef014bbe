"""A training run's folder: where it goes, the rule that nothing in it is ever lost, and its
log (log.txt, stdout and tensorboard, written by rank 0 only)."""
import os
import re
import time
from pathlib import Path
from typing import Optional

import yaml
from tqdm import tqdm

from utils.errors import UserError
from utils.files import WriteError, atomic_write_text, clean_stale_temps, is_temp_name

from .events import ScalarEvents
from .run_lock import LOCK_NAME, RunLock, check_not_busy


# What a run writes into its folder; --overwrite moves aside only a folder holding nothing else.
RUN_FILES = re.compile(r'config\.yaml|config-resume-\d+\.yaml|log\.txt|tensorboard|epoch-(last|best|\d+)\.pth')


def check_run_name(name: str, flag: str) -> str:
    """A run name (--name, --tag): one path component, so the run folder is a folder of the save
    root (not '.', '..', an absolute path or a path with '/'); a UserError otherwise."""
    bad = (not name or name in ('.', '..') or any(c in name for c in '/\\\0')
           or Path(name).is_absolute() or Path(name).name != name)
    if bad:
        raise UserError(f'{flag} {name!r}: a run name is one folder name (no "/", not "." or ".."): the run '
                        'folder is made inside save/')
    return name


def default_save_path(config_path: Optional[str], name: Optional[str], tag: Optional[str],
                      resume: Optional[str], root: str = 'save') -> Path:
    """save/<name>; else save/_<config stem>_<tag> with --tag; else, resuming, the resumed
    checkpoint's own folder (a resume continues its run, with or without --config); else
    save/_<config stem>. Names and tags are one path component (check_run_name)."""
    if name is not None:
        if tag is not None:
            raise UserError(f'--tag {tag!r} names a default run folder, and --name {name!r} gives the folder: '
                            'give one of them')
        return Path(root) / check_run_name(name, '--name')
    if tag is not None:
        if not config_path:
            raise UserError('--tag names a run after its config: give --config, or use --name')
        check_run_name(tag, '--tag')
        return Path(root) / check_run_name('_' + Path(config_path).stem + f'_{tag}', '--tag')
    if resume:
        return Path(resume).parent
    return Path(root) / ('_' + Path(config_path).stem)


def _ours(name: str) -> bool:
    """The lock file and temporary files of interrupted writes: not part of a run's contents."""
    return name == LOCK_NAME or is_temp_name(name)


def _holds_files(path: Path) -> bool:
    """Whether path is a folder holding any file of a run."""
    return path.is_dir() and any(not _ours(p.name) for p in path.iterdir())


def folder_state(path: Path) -> Optional[list]:
    """(name, size, mtime) of the run's files (None: no folder): what must not change between
    checking a folder and taking it."""
    if not path.is_dir():
        return None
    return sorted((p.name, st.st_size, st.st_mtime_ns) for p in path.iterdir() if not _ours(p.name)
                  for st in [p.stat()])


def claim_run_folder(save_path: Path, move_aside: bool,
                     checked: Optional[list]) -> tuple[RunLock, Optional[Path], list]:
    """Rank 0, after every check: lock save_path for this run (moving its contents aside first
    with --overwrite) and remove stale temporary files. `checked` is folder_state() when the folder
    was checked; if another training changed it since, nothing is touched and this is a UserError.
    Returns (the lock, where the old contents went or None, notes for the log)."""
    moved = None
    if move_aside:
        old = RunLock(save_path)
        old.acquire(record=False)
        try:
            _unchanged(save_path, checked)
            moved = set_aside(save_path)
        finally:
            old.release()
        checked = None
    try:
        save_path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f'cannot create the run folder {save_path} ({e.strerror})') from None
    lock = RunLock(save_path)
    notes = [lock.acquire()]
    try:
        _unchanged(save_path, checked)
    except UserError:
        lock.release()
        raise
    stale = clean_stale_temps(save_path)
    if stale:
        notes.append(f'removed {len(stale)} temporary file(s) of interrupted writes')
    return lock, moved, [n for n in notes if n]


def _unchanged(save_path: Path, checked: Optional[list]) -> None:
    """UserError unless the run's files in save_path are those seen when it was checked."""
    if (folder_state(save_path) or []) != (checked or []):
        raise UserError(f'{save_path} changed while this run was starting (another training wrote into '
                        'it); nothing was touched: look at it and start again')


def check_run_folder(save_path: Path, resume: Optional[Path], resume_epoch: Optional[int],
                     last_epoch: Optional[int], overwrite: bool) -> bool:
    """May this run write into save_path? Returns True when its present contents must first be
    moved aside (--overwrite); raises a UserError saying what to do when the run would replace
    something. `last_epoch` is the epoch of save_path/epoch-last.pth, if there is one."""
    if save_path.exists() and not save_path.is_dir():
        raise UserError(f'{save_path} exists and is not a folder')
    check_not_busy(save_path)
    if not _holds_files(save_path):
        return False
    inside = resume is not None and resume.resolve().parent == save_path.resolve()
    if inside and (last_epoch is None or last_epoch <= resume_epoch):
        _only_run_files(save_path, 'a resumed run continues in its checkpoint\'s folder', folders_only=True)
        return False  # continuing the run in its own folder
    if overwrite:
        _only_run_files(save_path, '--overwrite moves only a run folder')
        return True
    if inside:
        raise UserError(f'{save_path}/epoch-last.pth is at epoch {last_epoch}, later than {resume} '
                        f'(epoch {resume_epoch}); continuing here would replace it: branch off with '
                        f'--name NEW, or pass --overwrite to move {save_path} aside first')
    hint = (f'resume it with --resume {save_path / "epoch-last.pth"}, '
            if (save_path / 'epoch-last.pth').is_file() else '')
    raise UserError(f'{save_path} already holds a run: {hint}pick another --name or --tag, '
                    f'or pass --overwrite to move it aside (nothing is deleted) and start afresh')


def _only_run_files(save_path: Path, rule: str, folders_only: bool = False) -> None:
    """UserError unless save_path holds only a run's files (RUN_FILES, the lock, temporary files;
    with `folders_only`, any file but no folder other than tensorboard/): a folder holding other
    runs (the save root, a home folder) is never moved aside nor written into as a run."""
    foreign = sorted(p.name for p in save_path.iterdir()
                     if not (_ours(p.name) or RUN_FILES.fullmatch(p.name) or (folders_only and not p.is_dir())))
    if foreign:
        more = f' (+{len(foreign) - 1} more)' if len(foreign) > 1 else ''
        raise UserError(f'{rule}, and {save_path} also holds {foreign[0]!r}{more} (another run, or files of '
                        'yours): nothing was touched; give --name NEW')


def set_aside(save_path: Path) -> Path:
    """Rename save_path to save_path.old-<YYYYmmdd-HHMMSS>[-n] (never deleting); returns it."""
    stamp = time.strftime('%Y%m%d-%H%M%S')
    dest = save_path.with_name(f'{save_path.name}.old-{stamp}')
    n = 1
    while dest.exists():
        dest = save_path.with_name(f'{save_path.name}.old-{stamp}-{n}')
        n += 1
    os.rename(save_path, dest)
    return dest


def _latest_config(save_path: Path) -> Optional[dict]:
    """The config the run last wrote (config.yaml or the latest config-resume-<epoch>.yaml)."""
    resumes = sorted(save_path.glob('config-resume-*.yaml'),
                     key=lambda p: int(p.stem.rsplit('-', 1)[1]) if p.stem.rsplit('-', 1)[1].isdigit() else -1)
    for path in [*reversed(resumes), save_path / 'config.yaml']:
        if path.is_file():
            try:
                cfg = yaml.safe_load(path.read_text())
            except (OSError, ValueError, yaml.YAMLError):
                return None
            return cfg if isinstance(cfg, dict) else None
    return None


def save_config(save_path: Path, config: dict, epoch: int, source: Optional[str] = None) -> Path:
    """Write config.yaml for a new run; a resumed run whose config changed (other than `resume:`)
    gets config-resume-<epoch>.yaml beside it instead (the first one is kept). The config is the
    resolved one (`_base_` chain and --set applied); `source`, where it came from, is a comment on
    the first line. Written atomically; a failure is a UserError."""
    path = save_path / 'config.yaml'
    if path.is_file():
        latest = _latest_config(save_path)
        if latest is not None and {**latest, 'resume': None} == {**config, 'resume': None}:
            return path
        path = save_path / f'config-resume-{epoch}.yaml'
    try:
        header = f'# resolved from {" ".join(source.split())}\n' if source else ''
        atomic_write_text(path, header + yaml.safe_dump(config, sort_keys=False))
    except OSError as e:
        raise WriteError(path, e) from None
    return path


class RunLog:
    """Messages to stdout and log.txt, scalars to tensorboard/ (training/events.py); silent when
    save_path is None (ranks other than 0). A failed write is a WriteError naming the file; `note`
    and `close` never raise (they run while another error is reported). Holds the run's lock, if
    given, until close()."""

    def __init__(self, save_path: Optional[Path], first_step: int = 1, lock: Optional[RunLock] = None):
        self.path = None if save_path is None else save_path / 'log.txt'
        self.lock = lock
        self.events = None
        if save_path is not None:
            try:
                self.events = ScalarEvents(save_path / 'tensorboard', purge_step=first_step)
            except OSError as e:
                raise WriteError(save_path / 'tensorboard', e) from None

    def __call__(self, msg: str) -> None:
        if self.path is None:
            return
        tqdm.write(msg)
        try:
            with open(self.path, 'a') as f:
                f.write(msg + '\n')
        except OSError as e:
            raise WriteError(self.path, e) from None
        if self.events is not None:
            try:
                self.events.flush()
            except OSError as e:
                raise WriteError(self.events.path, e) from None

    def note(self, msg: str) -> None:
        """Log msg if the folder still takes it; a failure here is dropped, not raised."""
        try:
            self(msg)
        except WriteError:
            pass

    def scalar(self, tag: str, value: float, step: int) -> None:
        """A TensorBoard scalar (written to disk with the next message)."""
        if self.events is not None:
            try:
                self.events.add(tag, value, step)
            except OSError as e:
                raise WriteError(self.events.path, e) from None

    def image(self, tag: str, img, step: int) -> None:
        """A TensorBoard image, uint8 (H, W, 3) (written to disk with the next message)."""
        if self.events is not None:
            try:
                self.events.add_image(tag, img, step)
            except OSError as e:
                raise WriteError(self.events.path, e) from None

    def close(self) -> None:
        """Close the event file and release the lock; errors are dropped (the run is over)."""
        try:
            if self.events is not None:
                self.events.close()
        except OSError:
            pass
        finally:
            self.events = None
            if self.lock is not None:
                self.lock.release()
