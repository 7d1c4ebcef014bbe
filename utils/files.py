"""Atomic file writes: a file is written to a temporary name in its folder, flushed to disk, then
renamed over the target, so a crash, a full disk or Ctrl-C never leaves a half-written file at
the target path (the previous file, if any, stays intact)."""
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Union

PathLike = Union[str, os.PathLike]


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
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
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
