"""One training per run folder (docs/design.md §4): rank 0 holds an exclusive lock on
`<run>/.lock` (fcntl.flock) for the run's life. The operating system releases it when the process
ends, however it ends, so a lock file alone is not "busy": a file that still names its holder but
is not locked was left by a crash or a kill, and the next run takes it over with a note. A clean
release empties the file."""
import errno
import os
import socket
import time
from pathlib import Path
from typing import Optional

from utils.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no locking, runs are not protected from each other
    fcntl = None

LOCK_NAME = '.lock'


def _holder(fd: int) -> str:
    """What the lock file says about its holder ('' when empty)."""
    try:
        return os.pread(fd, 200, 0).decode('utf-8', 'replace').strip()
    except OSError:
        return ''


def _ended(holder: str) -> bool:
    """Whether the holder named in a lock file is a process of this machine that has ended."""
    parts = holder.split()
    if len(parts) < 4 or parts[0] != 'pid' or parts[2] != 'on' or parts[3] != socket.gethostname():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (OSError, ValueError):
        return False
    return False


class RunLock:
    """The exclusive lock of run folder `folder` (see the module doc)."""

    def __init__(self, folder: Path):
        self.folder, self.path = Path(folder), Path(folder) / LOCK_NAME
        self.fd: Optional[int] = None
        self.recorded = False

    def acquire(self, record: bool = True) -> Optional[str]:
        """Take the lock, or raise a UserError when another training holds it. With `record`, this
        process is written into the file. Returns a note when the lock of a run that ended without
        releasing it (a crash, a kill) was taken over, else None."""
        if fcntl is None:
            return None
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f'cannot open the lock file {self.path} ({e.strerror}): a run folder must be '
                            'writable') from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(f'cannot lock {self.path} ({e.strerror})') from None
            raise UserError(busy_message(self.folder, holder)) from None
        self.fd = fd
        previous = _holder(fd)
        if record:
            text = f'pid {os.getpid()} on {socket.gethostname()} since {time.strftime("%Y-%m-%d %H:%M:%S")}\n'
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, text.encode(), 0)
                self.recorded = True
            except OSError:
                pass  # the lock holds without the note of who holds it
        if previous:
            return f'took over the lock of a run that ended without releasing it ({previous}: a crash or a kill)'
        return None

    def release(self) -> None:
        """Empty the lock file (a clean end) and unlock; safe to call twice."""
        if self.fd is None:
            return
        try:
            if self.recorded:
                os.ftruncate(self.fd, 0)
            # Explicitly: forked data-loader workers share the descriptor, closing alone would not unlock.
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(self.fd)
        self.fd, self.recorded = None, False


def busy_message(folder: Path, holder: str) -> str:
    """The one line for a run folder that another training holds."""
    who = holder or 'a process that does not say which'
    if _ended(holder):
        who += '; it has ended, its data-loader workers release the lock within seconds: try again'
    return f'{folder} is in use by another training ({who}); wait for it to end, or pick another --name'


def check_not_busy(folder: Path) -> None:
    """UserError when another training holds `folder`'s lock (probed without keeping it)."""
    if fcntl is None or not (folder / LOCK_NAME).is_file():
        return
    probe = RunLock(folder)
    probe.acquire(record=False)
    probe.release()
