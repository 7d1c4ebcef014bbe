"""From a checkpoint to a model: `make(ckpt['model'], load_sd=True)`, the one way every entry
point builds a model from a file (the file itself is read by utils/checkpoints.py)."""
import torch.nn as nn

from utils.checkpoints import PathLike, load_checkpoint
from utils.errors import UserError

from .registry import make


def build_model(ckpt: dict, path: PathLike = 'checkpoint', device='cpu') -> nn.Module:
    """`make(ckpt['model'], load_sd=True)` for a dict from load_checkpoint, moved to `device`, in
    eval mode; failures are UserErrors prefixed with `path`."""
    try:
        model = make(ckpt['model'], load_sd=True)
    except UserError as e:
        raise UserError(f'{path}: {e}') from None
    except (TypeError, ValueError) as e:
        raise UserError(f"{path}: model {ckpt['model']['name']!r} cannot be built from its args ({e})") from None
    return model.to(device).eval()


def load_model(path: PathLike, device='cpu') -> nn.Module:
    """The model of checkpoint file `path`, moved to `device`, in eval mode (build_model)."""
    return build_model(load_checkpoint(path), path, device)
