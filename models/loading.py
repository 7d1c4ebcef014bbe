"""From a checkpoint file to a model: `read_checkpoint` then `make(ckpt['model'], load_sd=True)`,
the one way every entry point builds a model from a file (the file itself is read, and its archive
verified, by utils/checkpoints.py). OpenMMLab's LIIF files are turned into this project's format
here (models/mmagic.py), so every entry point takes them. Weights holding NaN or inf are refused
here, for every entry point."""
import torch
import torch.nn as nn

from utils.checkpoints import (PathLike, check_finite, check_release_format, check_state_dict,
                               read_checkpoint_file)
from utils.errors import UserError

from .mmagic import from_mmagic, is_mmagic
from .registry import make


def read_checkpoint(path: PathLike) -> dict:
    """The checkpoint at `path` in this project's format (the LIIF release's): as stored, or
    converted from OpenMMLab's (MMEditing / mmagic EDSR-LIIF and RDN-LIIF, with their own
    `data_norm`). Read without executing code; every failure is a one-line UserError."""
    raw = read_checkpoint_file(path)
    if is_mmagic(raw):
        return from_mmagic(raw, str(path))
    return check_release_format(raw, path)


def is_implicit(model: nn.Module) -> bool:
    """Whether model is an implicit image function (gen_feat + query_rgb: LIIF, Meta-SR, ...)."""
    return hasattr(model, 'gen_feat') and hasattr(model, 'query_rgb')


def require_implicit(model: nn.Module, name: str, where: PathLike) -> nn.Module:
    """model, or a UserError when it cannot render arbitrary sizes (a plain encoder)."""
    if not is_implicit(model):
        raise UserError(f"{where}: model {name!r} is not an implicit image function (it has no "
                        'gen_feat/query_rgb); give a LIIF-style model')
    return model


def _largest_int(value) -> int:
    """The largest integer anywhere in a spec's args (nested lists and dicts), 0 without any."""
    if isinstance(value, dict):
        return max((_largest_int(v) for v in value.values()), default=0)
    if isinstance(value, (list, tuple)):
        return max((_largest_int(v) for v in value), default=0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def model_family(spec: dict) -> dict:
    """{'family': the model's registered name ('liif', 'lte', ...), 'encoder': its encoder's name or
    None} of a model spec (a checkpoint's 'model'), for result files and messages."""
    args = spec.get('args') or {}
    encoder = args.get('encoder_spec') if isinstance(args, dict) else None
    return {'family': spec.get('name'),
            'encoder': encoder.get('name') if isinstance(encoder, dict) else None}


def describe_family(spec: dict) -> str:
    """'liif over edsr-baseline' (or just the name for a model without an encoder spec)."""
    f = model_family(spec)
    return f"{f['family']} over {f['encoder']}" if f['encoder'] else str(f['family'])


def build_model(ckpt: dict, path: PathLike = 'checkpoint', device='cpu') -> nn.Module:
    """`make(ckpt['model'], load_sd=True)` for a dict from load_checkpoint, moved to `device`, in
    eval mode; failures (and non-finite weights) are UserErrors prefixed with `path`. A checkpoint's
    args are not trusted to size memory: no width or count may exceed the state dict's number of
    values, and the model is first built on the meta device (no memory) and compared with the state
    dict, so args implying a model larger than the file's weights are refused before allocating."""
    spec = ckpt['model']
    check_finite(spec['sd'], path)
    n_values = sum(v.numel() for v in spec['sd'].values())
    if _largest_int(spec.get('args')) > max(n_values, 1024):
        raise UserError(f"{path}: model {spec['name']!r}: its args hold the number {_largest_int(spec.get('args')):,}, "
                        f'more than the {n_values:,} values of its weights: not a model this file holds')
    what = f"model {spec['name']!r}"
    try:
        with torch.device('meta'):
            check_state_dict(make(spec), spec['sd'], what)
        model = make(spec, load_sd=True)
    except UserError as e:
        raise UserError(f'{path}: {e}') from None
    except Exception as e:  # noqa: BLE001  (a checkpoint's args can break a constructor in any way)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: model {spec['name']!r} cannot be built from its args ({msg})") from None
    return model.to(device).eval()


def load_model_checkpoint(path: PathLike, device='cpu') -> tuple[dict, nn.Module]:
    """(the checkpoint dict (read_checkpoint), its implicit model on `device` in eval mode):
    what test.py, demo.py and the library load."""
    ckpt = read_checkpoint(path)
    return ckpt, require_implicit(build_model(ckpt, path, device), ckpt['model']['name'], path)


def load_model(path: PathLike, device='cpu') -> nn.Module:
    """The implicit model of checkpoint file `path`, moved to `device`, in eval mode."""
    return load_model_checkpoint(path, device)[1]
