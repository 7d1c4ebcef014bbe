"""Checkpoint files in the paper release's format (docs/design.md §6): read safely, write atomically,
load a state dict strictly. Turning a checkpoint into a model is models/loading.py's job.

{'model': {'name', 'args', 'sd'}, 'optimizer': {'name', 'args', 'sd'}, 'epoch': int, ...}
Loading never executes code: `torch.load(weights_only=True)`; anything else is refused. Before
unpickling, the zip archive's CRC-32 checksums are verified (torch.load does not), so a flipped
bit or a truncated copy is refused instead of loading as different weights.
"""
import hashlib
import pickle
import re
import zipfile
from pathlib import Path

import torch
import torch.nn as nn

from .config import check_value_graph
from .errors import UserError
from .files import PathLike, WriteError, atomic_write
from .images import physical_memory


def _first(names, n: int = 3) -> str:
    names = list(names)
    return ', '.join(names[:n]) + (f' (+{len(names) - n} more)' if len(names) > n else '')


def load_state_dict_strict(model: nn.Module, sd: dict, what: str = 'model') -> None:
    """Load every tensor of sd into model; any missing, unexpected or mis-shaped parameter is a
    UserError naming the first few."""
    check_state_dict(model, sd, what)
    model.load_state_dict(sd)


def check_state_dict(model: nn.Module, sd: dict, what: str = 'model') -> None:
    """UserError naming the first few parameters that model has and sd lacks, that sd has and
    model lacks, or whose shapes differ (model may live on the meta device: nothing is loaded)."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing:
        raise UserError(f'{what}: checkpoint lacks parameters {_first(missing)}')
    if unexpected:
        raise UserError(f'{what}: checkpoint has unexpected parameters {_first(unexpected)}')
    shaped = [f'{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}'
              for k in own if tuple(sd[k].shape) != tuple(own[k].shape)]
    if shaped:
        raise UserError(f'{what}: mis-shaped parameters {_first(shaped)}')


def non_finite(sd: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold a NaN or an inf."""
    return [k for k, v in sd.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def check_finite(sd: dict, path: PathLike) -> None:
    """UserError naming the first parameters of `sd` that hold NaN or inf: such weights render
    black or NaN images and cannot be trained on."""
    bad = non_finite(sd)
    if bad:
        raise UserError(f'{path}: parameters {_first(bad)} hold NaN or inf values (a diverged run or '
                        'a damaged file); refusing to use it')


# torch.save stores tensors uncompressed, so a checkpoint's archive expands to about its own size;
# one that expands to more than this many times its size (plus a little) is a zip bomb.
MAX_EXPANSION = 4
MAX_CHECKPOINT_VALUES = 10_000_000  # every tensor, number and string of the dict, shared ones at every use


def verify_archive(path: Path) -> None:
    """UserError unless every member of the zip archive at `path` matches its stored CRC-32, after
    checking from the directory alone (nothing decompressed) that the archive does not expand
    beyond MAX_EXPANSION times its size nor beyond this machine's memory."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
            size = path.stat().st_size
            memory = physical_memory()
            if total > MAX_EXPANSION * size + (1 << 20) or (memory is not None and total > memory):
                raise UserError(f'{path}: its archive expands to {total / 1e9:,.2f} GB, {total / max(size, 1):,.0f} times '
                                'its size (torch writes checkpoints uncompressed): refused as a zip bomb')
            bad = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f'{path}: damaged checkpoint, its zip archive cannot be read ({msg}); '
                        'use another copy') from None
    if bad is not None:
        raise UserError(f'{path}: damaged checkpoint, {bad} fails its checksum (a changed bit or a '
                        'bad copy); use another copy')


def read_checkpoint_file(path: PathLike, map_location='cpu'):
    """What a checkpoint file holds, read without executing code (weights_only) after its
    archive's checksums are verified; any format (models/loading.py reads foreign ones). Every
    failure is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f'checkpoint not found: {path}')
    with open(path, 'rb') as f:
        magic = f.read(4)
    # torch.save writes a zip archive (PK..) or, in the legacy format, a pickle (0x80 = PROTO).
    if not (magic.startswith(b'PK\x03\x04') or magic[:1] == b'\x80'):
        raise UserError(f'{path}: not a PyTorch checkpoint (neither a zip archive nor a pickle)')
    if magic.startswith(b'PK'):
        verify_archive(path)  # the legacy pickle format carries no checksum
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if 'Weights only load failed' in str(e):
            raise UserError(f'{path}: refused, it needs code to be executed to load '
                            '(only plain tensors and Python types are accepted)') from None
        raise UserError(f'{path}: not a PyTorch checkpoint ({str(e).splitlines()[0]})') from None
    except Exception as e:  # a garbage file can fail anywhere inside the unpickler
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f'{path}: not a PyTorch checkpoint ({msg})') from None
    # Unpickling can build shared or self-referencing lists: bounded as YAML configs are (tensors
    # count as one value; a checkpoint holds at most a few thousand of them and their states).
    check_value_graph(ckpt, str(path), max_values=MAX_CHECKPOINT_VALUES)
    return ckpt


def check_release_format(ckpt, path: PathLike) -> dict:
    """ckpt, or a UserError unless it is a dict whose 'model' holds name, args and sd."""
    spec = ckpt.get('model') if isinstance(ckpt, dict) else None
    if not (isinstance(spec, dict) and isinstance(spec.get('name'), str)
            and isinstance(spec.get('args', {}), dict) and isinstance(spec.get('sd'), dict)):
        raise UserError(f"{path}: not a LIIF checkpoint (expected a dict whose 'model' holds "
                        "'name', 'args' and 'sd')")
    bad = [k for k, v in spec['sd'].items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise UserError(f"{path}: not a LIIF checkpoint: model.sd[{bad[0]!r}] is a "
                        f"{type(spec['sd'][bad[0]]).__name__}, expected a tensor named by a string")
    return ckpt


def load_checkpoint(path: PathLike, map_location='cpu') -> dict:
    """Read a checkpoint in this project's (the LIIF release's) format without executing code;
    returns the dict, after checking that ckpt['model'] holds name, args and sd. Every failure is
    a one-line UserError. (models/loading.read_checkpoint also takes OpenMMLab's files.)"""
    return check_release_format(read_checkpoint_file(path, map_location), path)


class _WatchedFile:
    """A binary file whose write errors are remembered: torch.save reports a failed write (a full
    disk) as an opaque RuntimeError, and the OSError behind it is what the user needs to see."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        """f.write(data), remembering an OSError before raising it."""
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self.f, name)


def save_checkpoint(obj: dict, path: PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`: a crash
    mid-write leaves the previous file intact. A failed write (a full disk, a read-only folder)
    is a WriteError naming `path`."""
    def write(f) -> None:
        watched = _WatchedFile(f)
        try:
            torch.save(obj, watched)
        except RuntimeError:
            if watched.error is not None:
                raise watched.error from None
            raise
    try:
        atomic_write(path, write)
    except OSError as e:
        raise WriteError(path, e) from None


# Stems a training run gives its checkpoints: on their own they do not say which model it is.
_RUN_STEM = re.compile(r'(epoch-(last|best|\d+)|ema-(last|best))')


def checkpoint_label(path: PathLike) -> str:
    """A short name for a checkpoint in tables, figures and file names: its stem, prefixed with
    its run folder when the stem is one a run gives every checkpoint ('save/_train_x/epoch-best.pth'
    -> '_train_x/epoch-best'; 'pretrained/edsr-baseline-liif-sample.pth' -> 'edsr-baseline-liif-sample')."""
    path = Path(path)
    if _RUN_STEM.fullmatch(path.stem) and path.parent.name not in ('', '.'):
        return f'{path.parent.name}/{path.stem}'
    return path.stem


def file_digest(path: PathLike, length: int = 12) -> str:
    """The first `length` hex digits of the sha256 of a file's bytes: which exact file a result
    came from (two copies of one checkpoint share it; a retrained one does not)."""
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()[:length]
