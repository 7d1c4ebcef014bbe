"""What a result was computed from, recorded with it: which checkpoint (path, epoch, a short hash of
its bytes, the model family) and which protocol was actually used (how the LR input was made, the
border, luminance or RGB, the cell clip, the window, how attending queries were grouped). test.py prints the protocol in one line before
its numbers and writes all of it into --out; scripts/results_table.py reads it back."""
import re
from pathlib import Path
from typing import Optional, Union

from models.loading import model_family
from utils.checkpoints import PathLike, checkpoint_label, file_digest
from utils.errors import UserError

from .metrics import Protocol

RESIZE_NAMES = {'pil': 'PIL bicubic', 'matlab': 'MATLAB bicubic'}


def lr_source(spec: dict) -> dict:
    """How a test_dataset spec gives its LR inputs: {'source': 'files' | 'on the fly' | <wrapper>,
    'resize': the resize method when the project makes or resizes images, 'text': one phrase}."""
    name = spec['wrapper']['name']
    args = spec['wrapper'].get('args') or {}
    resize = args.get('resize', 'pil')
    how = RESIZE_NAMES.get(resize, str(resize))
    if name in ('sr-implicit-downsampled', 'sr-implicit-downsampled-fast'):
        return {'source': 'on the fly', 'resize': resize, 'text': f'LR made on the fly ({how})'}
    if name == 'sr-implicit-paired':
        return {'source': 'files', 'resize': None, 'text': 'LR from files'}
    if name == 'sr-implicit-uniform-varied':
        return {'source': 'files', 'resize': resize, 'text': f'LR from files, HR resized ({how})'}
    return {'source': name, 'resize': None, 'text': f'LR made by {name}'}


def spec_scale(spec: dict, protocol: Protocol):
    """The scale a test set is evaluated at: the protocol's, else a downsampling wrapper's fixed
    scale_min, else None (unknown: e.g. CelebA-HQ's all-pixels protocol over paired folders)."""
    if protocol.scale is not None:
        return protocol.scale
    args = spec['wrapper'].get('args') or {}
    if spec['wrapper']['name'] == 'sr-implicit-downsampled' and args.get('scale_max') in (None, args.get('scale_min')):
        return args.get('scale_min')
    return None


def protocol_line(spec: dict, protocol: Protocol, cell_scale_max: Optional[float] = None,
                  window: Optional[int] = None, attention_rows: Union[int, str, None] = None) -> str:
    """One line, e.g. 'x2.5: LR made on the fly (PIL bicubic), border 3, Y' (+ ', cell clip at x4',
    ', window 8', ', attention over blocks of 8 rows' / 'over the whole image', ', prediction rounded to
    8 bits' when they apply;
    attention_rows: rows per group, 'whole', or None for models whose queries are independent)."""
    scale = spec_scale(spec, protocol)
    parts = [lr_source(spec)['text'], f'border {protocol.crop}' if protocol.crop else 'all pixels',
             'Y' if protocol.luminance else 'RGB']
    if protocol.quantized:
        parts.append('prediction rounded to 8 bits')
    if cell_scale_max is not None:
        parts.append(f'cell clip at x{cell_scale_max:g}')
    if window:
        parts.append(f'window {window}')
    if attention_rows is not None:
        parts.append('attention over the whole image' if isinstance(attention_rows, str)
                     else f'attention over blocks of {attention_rows} rows')
    return (f'x{scale:g}: ' if scale is not None else '') + ', '.join(parts)


def protocol_record(spec: dict, protocol: Protocol, cell_scale_max: Optional[float], window: Optional[int],
                    attention_rows: Union[int, str, None] = None) -> dict:
    """The protocol as a result file keeps it: the line, and each of its parts."""
    return {'text': protocol_line(spec, protocol, cell_scale_max, window, attention_rows),
            'eval_type': protocol.eval_type, 'scale': spec_scale(spec, protocol),
            'lr': {k: v for k, v in lr_source(spec).items() if k != 'text'}, 'border': protocol.crop,
            'luminance': protocol.luminance, 'cell_scale_max': cell_scale_max, 'window': window,
            'attention_rows': attention_rows}


MAX_LABEL = 100  # characters of a model's name in result files, tables and figure captions


def check_label(label: str, what: str = '--label') -> str:
    """label if it can name a row of a table or a panel of a figure: one line of printable
    characters, 1 to MAX_LABEL of them; otherwise a UserError naming `what`."""
    if not label or len(label) > MAX_LABEL or not label.isprintable():
        shown = label if len(label) <= MAX_LABEL else label[:MAX_LABEL] + '...'
        raise UserError(f'{what}: expected a name of 1 to {MAX_LABEL} printable characters on one line, got {shown!r}')
    return label


def checkpoint_record(path: PathLike, ckpt: dict, label: Optional[str] = None) -> dict:
    """Which model a result came from: {'path', 'label', 'epoch' (None for a release without one),
    'digest' (12 hex digits of the file's sha256), 'family', 'encoder', 'init' (the checkpoint a
    fine-tuned run started from, {'path', 'digest', 'epoch'}, if recorded)}."""
    epoch = ckpt.get('epoch')
    config = ckpt.get('config') if isinstance(ckpt.get('config'), dict) else {}
    return {'path': str(path), 'label': label or checkpoint_label(path),
            'epoch': epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None,
            'digest': file_digest(path), **model_family(ckpt['model']),
            'init': ckpt.get('init') or ({'path': config['init']} if config.get('init') else None)}


_SCALE_SUFFIX = re.compile(r'-\d+(\.\d+)?$')


def dataset_name(config: PathLike, scale=None) -> str:
    """A test set's name from its config file: its stem without 'test-' and, when the evaluation has
    a scale, without the trailing scale: 'configs/test/test-set5-2.yaml' -> 'set5',
    'test-sample-valid-12.yaml' -> 'sample-valid', 'test-celebAHQ-32-256.yaml' (no scale) -> 'celebAHQ-32-256'."""
    stem = Path(config).stem
    stem = stem[len('test-'):] if stem.startswith('test-') else stem
    return (_SCALE_SUFFIX.sub('', stem) or stem) if scale is not None else stem
