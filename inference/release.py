"""The model-only checkpoint this project ships (docs/design.md §6): {'model': {name, args, sd},
'epoch', 'data_norm'[, 'config'][, 'converted_from']}, the paper release's format plus the
normalisation the model needs. Written by scripts/export_model.py (from a training run) and
scripts/convert_checkpoint.py (from OpenMMLab's files); both read through models/loading.py."""
from typing import Any

from models.loading import build_model, read_checkpoint
from utils.checkpoints import PathLike, save_checkpoint
from utils.files import check_output

from .norm import DataNorm


def release_checkpoint(src: PathLike, dst: PathLike) -> dict:
    """Read src (any format read_checkpoint takes), check that its model builds, and write its
    model-only checkpoint to dst atomically (never over src). Returns what was written."""
    check_output(dst, {'source checkpoint': src})
    ckpt = read_checkpoint(src)
    model = build_model(ckpt, src)  # refuse to write something that does not load
    spec = ckpt['model']
    out: dict[str, Any] = {
        'model': {'name': spec['name'], 'args': spec['args'],
                  'sd': {k: spec['sd'][k].detach().clone().contiguous() for k in model.state_dict()}},
        'epoch': ckpt.get('epoch'),
        'data_norm': DataNorm.from_checkpoint(ckpt, str(src)).to_config()}
    if isinstance(ckpt.get('config'), dict):
        out['config'] = ckpt['config']
    if isinstance(ckpt.get('converted_from'), str):
        out['converted_from'] = ckpt['converted_from']
    save_checkpoint(out, dst)
    return out
