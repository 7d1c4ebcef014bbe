"""A training run's folder: where it goes, the rule that nothing in it is ever lost, and its
log (log.txt, stdout and tensorboard, written by rank 0 only)."""
import os
import time
from pathlib import Path
from typing import Optional

import yaml
from tqdm import tqdm

from utils.errors import UserError


def default_save_path(config_path: Optional[str], name: Optional[str], tag: Optional[str],
                      resume: Optional[str], root: str = 'save') -> Path:
    """save/<name>; else save/_<config stem>_<tag> with --tag; else, resuming, the resumed
    checkpoint's own folder (a resume continues its run, with or without --config); else
    save/_<config stem>."""
    if name:
        return Path(root) / name
    if tag:
        if not config_path:
            raise UserError('--tag names a run after its config: give --config, or use --name')
        return Path(root) / ('_' + Path(config_path).stem + f'_{tag}')
    if resume:
        return Path(resume).parent
    return Path(root) / ('_' + Path(config_path).stem)


def _holds_files(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def check_run_folder(save_path: Path, resume: Optional[Path], resume_epoch: Optional[int],
                     last_epoch: Optional[int], overwrite: bool) -> bool:
    """May this run write into save_path? Returns True when its present contents must first be
    moved aside (--overwrite); raises a UserError saying what to do when the run would replace
    something. `last_epoch` is the epoch of save_path/epoch-last.pth, if there is one."""
    if save_path.exists() and not save_path.is_dir():
        raise UserError(f'{save_path} exists and is not a folder')
    if not _holds_files(save_path):
        return False
    inside = resume is not None and resume.resolve().parent == save_path.resolve()
    if inside and (last_epoch is None or last_epoch <= resume_epoch):
        return False  # continuing the run in its own folder
    if overwrite:
        return True
    if inside:
        raise UserError(f'{save_path}/epoch-last.pth is at epoch {last_epoch}, later than {resume} '
                        f'(epoch {resume_epoch}); continuing here would replace it: branch off with '
                        f'--name NEW, or pass --overwrite to move {save_path} aside first')
    hint = (f'resume it with --resume {save_path / "epoch-last.pth"}, '
            if (save_path / 'epoch-last.pth').is_file() else '')
    raise UserError(f'{save_path} already holds a run: {hint}pick another --name or --tag, '
                    f'or pass --overwrite to move it aside (nothing is deleted) and start afresh')


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


def save_config(save_path: Path, config: dict, epoch: int) -> Path:
    """Write config.yaml for a new run; a resumed run whose config changed gets
    config-resume-<epoch>.yaml beside it instead (the first one is kept)."""
    text = yaml.safe_dump(config, sort_keys=False)
    path = save_path / 'config.yaml'
    if path.is_file():
        if path.read_text() == text:
            return path
        path = save_path / f'config-resume-{epoch}.yaml'
    path.write_text(text)
    return path


class RunLog:
    """Messages to stdout and log.txt, scalars to tensorboard; silent when save_path is None
    (ranks other than 0)."""

    def __init__(self, save_path: Optional[Path], first_step: int = 1):
        self.path = None if save_path is None else save_path / 'log.txt'
        self.writer = None
        if save_path is not None:
            from tensorboardX import SummaryWriter

            # purge_step drops events of epochs a resumed run is about to redo.
            self.writer = SummaryWriter(str(save_path / 'tensorboard'), purge_step=first_step)

    def __call__(self, msg: str) -> None:
        if self.path is None:
            return
        tqdm.write(msg)
        with open(self.path, 'a') as f:
            f.write(msg + '\n')

    def scalar(self, tag: str, value: float, step: int) -> None:
        if self.writer is not None:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
