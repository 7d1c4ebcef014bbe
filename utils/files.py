"""Atomic file writes: a file is written to a temporary name in its folder, flushed to disk, then
renamed over the target, so a crash, a full disk or Ctrl-C never leaves a half-written file at
the target path (the previous file, if any, stays intact). Outputs are checked before any work:
never one of the inputs, and in a folder that exists and takes files. Temporary files that an
interrupted write left behind (`.<name>.<8 chars>.tmp`) are removed when the folder is next used."""
import os
import re
import tempfile
import time
from pathlib import Path
from collections import Counter
from typing import BinaryIO, Callable, Mapping, Optional, Sequence, Union

from .errors import UserError

PathLike = Union[str, os.PathLike]

# mkstemp(prefix='.<name>.<pid>-', suffix='.tmp') names: the writer's process id, then 8 characters
# of [a-z0-9_] (older writers left no pid).
_TEMP_SUFFIX = r'\.(?:(\d+)-)?[a-z0-9_]{8}\.tmp'
_TEMP_NAME = re.compile(r'\..+' + _TEMP_SUFFIX)
# A temporary file last modified before this process started is no write of ours in flight.
_PROCESS_START = time.time()


class WriteError(UserError):
    """A file could not be written (a full disk, a read-only folder); the previous file, if any,
    is intact. One line naming the file and the system's reason."""

    def __init__(self, path: PathLike, error: OSError):
        super().__init__(f'cannot write {path} ({error.strerror or error})')
        self.path, self.error = Path(path), error


def umask() -> int:
    """The process's file-creation mask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call write(f) on a temporary file beside `path`, fsync it, give it open()'s usual mode
    (mkstemp makes 0600) and rename it over `path`. On any failure the temporary file is removed
    and the exception propagates; `path` is untouched."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{os.getpid()}-', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: PathLike, text: str) -> None:
    """atomic_write of a UTF-8 text."""
    atomic_write(path, lambda f: f.write(text.encode('utf-8')))


def is_temp_name(name: str, target: Optional[str] = None) -> bool:
    """Whether `name` is one of atomic_write's temporary files (of the file `target`, if given)."""
    return _temp_match(name, target) is not None


def _temp_match(name: str, target: Optional[str] = None) -> Optional[re.Match]:
    """The match of atomic_write's temporary-name pattern (group 1: the writer's pid, if named)."""
    if target is None:
        return _TEMP_NAME.fullmatch(name)
    return re.fullmatch(rf'\.{re.escape(target)}' + _TEMP_SUFFIX, name)


def _running(pid: int) -> bool:
    """Whether a process `pid` runs on this machine (a process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def clean_stale_temps(folder: PathLike, target: Optional[str] = None) -> list[Path]:
    """Remove the temporary files of atomic writes that were interrupted (a kill, a crash) in
    `folder` (only those of the file named `target`, if given): names of atomic_write's pattern,
    last modified before this process started, whose writer (the pid in the name) no longer runs:
    a second process writing the same output never removes the first one's file in flight.
    Returns the removed paths; a file that cannot be removed is left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _temp_match(entry.name, target)
        if match is None or (match.group(1) and int(match.group(1)) != os.getpid() and _running(int(match.group(1)))):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < _PROCESS_START:
                os.remove(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name the same file (hard links and symlinks included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return Path(a).resolve() == Path(b).resolve()


def unique_stems(stems: Sequence[str]) -> list[str]:
    """File stems made unique, one per item, by a fixed rule: a stem no other item has (compared
    ignoring case, as macOS and Windows file systems do) is kept; the items that share a stem
    (`a.png` and `a.tif`, or one file listed twice) all become `<stem>_<k>`, k = 1, 2, ... in item
    order, skipping any name another item has or was given. So no two outputs ever share a file."""
    counts = Counter(s.casefold() for s in stems)
    taken = {s.casefold() for s in stems if counts[s.casefold()] == 1}
    out, next_k = [], Counter()
    for stem in stems:
        key = stem.casefold()
        if counts[key] == 1:
            out.append(stem)
            continue
        while True:
            next_k[key] += 1
            name = f'{stem}_{next_k[key]}'
            if name.casefold() not in taken:
                break
        taken.add(name.casefold())
        out.append(name)
    return out


def check_writable(path: PathLike, what: str = 'output') -> None:
    """UserError unless a file can be created at `path` (its folder exists and is writable, and
    `path` is not a folder). Probes with a temporary file that is removed at once."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise UserError(f'{what} {path} is a folder; give a file name')
    if not folder.is_dir():
        raise UserError(f'{what} folder does not exist: {folder}')
    try:
        fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.{os.getpid()}-', suffix='.tmp', dir=folder)
        os.close(fd)
        os.remove(tmp)
    except OSError as e:
        raise UserError(f'cannot write to the {what} folder {folder} ({e.strerror})') from None


def is_within(path: PathLike, folder: PathLike) -> bool:
    """Whether `path` (existing or not) is `folder` or lies anywhere below it, symlinks resolved
    and the folder recognised under any of its names (samefile on each of path's ancestors); a
    folder not made yet is compared by its resolved name."""
    try:
        folder_stat = os.stat(folder)
    except OSError:
        return Path(folder).resolve() in (Path(path).resolve(), *Path(path).resolve().parents)
    for parent in (Path(path).resolve(), *Path(path).resolve().parents):
        try:
            st = os.stat(parent)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (folder_stat.st_dev, folder_stat.st_ino):
            return True
    return False


def refuse_inputs(path: PathLike, inputs: Mapping[str, Optional[PathLike]], what: str = 'output',
                  folder: bool = False) -> None:
    """UserError when the output `path` is one of `inputs` ({'input': path}, None skipped) or lies
    inside an input that is a folder (a data folder the run reads: an output there would change
    the data); with `folder` (the output is a folder), also when an input lies inside it. Symlinks
    and hard links count as the file they name. Every entry point calls this (or check_output)
    with every file and folder it reads: model, config and data alike (docs/design.md §4)."""
    for flag, inp in inputs.items():
        if inp is None:
            continue
        named = flag if str(inp) in flag else f'{flag} {inp}'
        if same_file(path, inp):
            raise UserError(f'{what} {path} is the {flag} itself: it would be overwritten; give '
                            'another file name')
        if os.path.isdir(inp) and is_within(path, inp):
            raise UserError(f'{what} {path} is inside the {named}, which this run reads: an output '
                            'there would change the data; write it elsewhere')
        if folder and is_within(inp, path):
            raise UserError(f'{what} {path} holds the {named}, which this run reads; give '
                            'another folder')


def refuse_existing(path: PathLike, what: str = 'output', hint: str = 'pass --overwrite to replace it') -> None:
    """UserError when `path` exists: an output is never replaced unless the caller was told to."""
    if os.path.lexists(path):
        raise UserError(f'{what} {path} exists; nothing was written ({hint})')


def check_output(path: PathLike, inputs: Mapping[str, Optional[PathLike]], what: str = 'output') -> None:
    """Before any work: UserError when `path` is one of `inputs`, lies in an input folder
    (refuse_inputs) or cannot be written (check_writable); then stale temporary files of earlier
    writes to `path` are removed."""
    refuse_inputs(path, inputs, what)
    check_writable(path, what)
    clean_stale_temps(Path(path).parent, Path(path).name)
