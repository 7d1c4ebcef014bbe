"""OpenMMLab's LIIF checkpoints (MMEditing 0.x, mmagic 1.x; docs/design.md §6.1), turned into this
project's format where checkpoints are read (models/loading.py), so every entry point takes them
as they are.

Their files are {'meta': {...}, 'state_dict': {...}} with no model spec: the architecture is read
from the parameter shapes, the names mapped to the LIIF release's, and the normalisation is the one
OpenMMLab trained with, which travels as the checkpoint's `data_norm`:
- EDSR-LIIF: x - DIV2K mean, divided by 1 (not LIIF's 0.5 / 0.5);
- RDN-LIIF: (x - 0.5) / 0.5.
Two layouts exist for EDSR-LIIF: MMEditing's first (2021, `head.*`, `encoder.0.*`, `encoder.1.*`,
`imnet.*`) and the `generator.*` one of every later release; RDN-LIIF has only the latter.
"""
import re
from typing import Any, Optional

import torch
from torch import Tensor

from utils.errors import UserError

from .edsr import DIV2K_RGB_MEAN, MeanShift
from .rdn import RDN_CONFIGS

EDSR_NORM = {'inp': {'sub': list(DIV2K_RGB_MEAN), 'div': [1.0]}, 'gt': {'sub': list(DIV2K_RGB_MEAN), 'div': [1.0]}}
RDN_NORM = {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
_WB = r'(weight|bias)'


def _edsr_rules(head: str, blocks: str, after: str, imnet: str) -> list[tuple[str, str]]:
    """(pattern, replacement) of an EDSR-LIIF layout given its four prefixes (regexes); 'B' in a
    replacement is the number of EDSR blocks (the body's last conv follows them)."""
    return [(rf'{head}\.{_WB}', r'encoder.head.0.\1'),
            (rf'{blocks}\.(\d+)\.conv1\.{_WB}', r'encoder.body.\1.body.0.\2'),
            (rf'{blocks}\.(\d+)\.conv2\.{_WB}', r'encoder.body.\1.body.2.\2'),
            (rf'{after}\.{_WB}', r'encoder.body.B.\1'),
            (rf'{imnet}\.layers\.(\d+)\.{_WB}', r'imnet.layers.\1.\2')]


# (layout, the key that identifies it, [(pattern, replacement)])
LAYOUTS = (
    ('mmagic EDSR-LIIF (generator.*)', 'generator.conv_first.weight',
     _edsr_rules(r'generator\.conv_first', r'generator\.body', r'generator\.conv_after_body', r'generator\.imnet')),
    ('MMEditing 2021 EDSR-LIIF (head.*, encoder.0.*)', 'head.weight',
     _edsr_rules('head', r'encoder\.0', r'encoder\.1', 'imnet')),
    ('mmagic RDN-LIIF (generator.*)', 'generator.sfe1.weight', [
        (rf'generator\.sfe([12])\.{_WB}', r'encoder.SFENet\1.\2'),
        (rf'generator\.rdbs\.(\d+)\.layers\.(\d+)\.conv\.{_WB}', r'encoder.RDBs.\1.convs.\2.conv.0.\3'),
        (rf'generator\.rdbs\.(\d+)\.lff\.{_WB}', r'encoder.RDBs.\1.LFF.\2'),
        (rf'generator\.gff\.([01])\.{_WB}', r'encoder.GFF.\1.\2'),
        (rf'generator\.imnet\.layers\.(\d+)\.{_WB}', r'imnet.layers.\1.\2')]),
)


def is_mmagic(obj: Any) -> bool:
    """Whether a loaded checkpoint is OpenMMLab's: a dict with a 'state_dict' and no 'model'."""
    return isinstance(obj, dict) and 'model' not in obj and isinstance(obj.get('state_dict'), dict)


def _count(sd: dict, pattern: str) -> int:
    """How many distinct first groups of `pattern` the keys of sd hold (blocks, layers)."""
    return len({m.group(1) for k in sd if (m := re.fullmatch(pattern, k))})


def _rename(sd: dict, rules: list, where: str, layout: str) -> dict:
    """sd with every key mapped by the first matching rule; a UserError naming keys none maps."""
    out, unknown = {}, []
    for key, value in sd.items():
        for pattern, repl in rules:
            if re.fullmatch(pattern, key):
                out[re.sub(pattern, repl, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f'{where}: an OpenMMLab {layout} checkpoint with parameters this project does not know: '
                        + ', '.join(unknown[:3]) + (f' (+{len(unknown) - 3} more)' if len(unknown) > 3 else ''))
    blocks = _count(out, r'encoder\.body\.(\d+)\.body\.0\.weight')
    return {k.replace('encoder.body.B.', f'encoder.body.{blocks}.'): v for k, v in out.items()}


def _flag(config: Any, name: str) -> Optional[bool]:
    """A boolean model option as the checkpoint's stored config text spells it (name=False,
    'name': False), or None."""
    m = re.search(rf"\b{name}['\"]?\s*[:=]\s*(True|False)\b", config) if isinstance(config, str) else None
    return None if m is None else m.group(1) == 'True'


def liif_args(sd: dict, n_feats: int, config: Any, where: str) -> dict:
    """LIIF's switches and decoder from the renamed state dict: the decoder's widths from its
    layers, unfolding and cell decoding from its input width (9C or C, + 2 or 4), local
    ensemble from the stored config (on, as in every release, when it does not say)."""
    linears = sorted(int(m.group(1)) for k in sd if (m := re.fullmatch(r'imnet\.layers\.(\d+)\.weight', k)))
    if not linears:
        raise UserError(f'{where}: an OpenMMLab checkpoint without a LIIF decoder (imnet)')
    widths = [sd[f'imnet.layers.{i}.weight'].shape for i in linears]
    in_dim = widths[0][1]
    for unfold in (True, False):
        extra = in_dim - n_feats * (9 if unfold else 1)
        if extra in (2, 4):
            break
    else:
        raise UserError(f'{where}: its decoder reads {in_dim} values, which no LIIF over {n_feats} features does')
    ensemble = _flag(config, 'local_ensemble')
    return {'imnet_spec': {'name': 'mlp', 'args': {'out_dim': widths[-1][0], 'hidden_list': [w[0] for w in widths[:-1]]}},
            'local_ensemble': True if ensemble is None else ensemble, 'feat_unfold': unfold, 'cell_decode': extra == 4}


def _edsr(sd: dict, where: str) -> tuple[dict, dict]:
    """(encoder spec, mean-shift tensors to add) of a renamed EDSR-LIIF state dict."""
    head: Tensor = sd['encoder.head.0.weight']
    if tuple(head.shape[1:]) != (3, 3, 3):
        raise UserError(f'{where}: its first convolution is {tuple(head.shape)}, expected (F, 3, 3, 3)')
    blocks = _count(sd, r'encoder\.body\.(\d+)\.body\.0\.weight')
    means = {f'encoder.{name}.{k}': v for name, sign in (('sub_mean', -1), ('add_mean', 1))
             for k, v in MeanShift(1, sign).state_dict().items()}  # in the release's checkpoints, never applied
    spec = {'name': 'edsr-baseline', 'args': {'n_resblocks': blocks, 'n_feats': head.shape[0], 'no_upsampling': True}}
    return spec, means


def _rdn(sd: dict, where: str) -> dict:
    """The encoder spec of a renamed RDN-LIIF state dict (its D blocks, C convs, growth G)."""
    g0, k = sd['encoder.SFENet1.weight'].shape[0], sd['encoder.SFENet1.weight'].shape[-1]
    d = _count(sd, r'encoder\.RDBs\.(\d+)\.LFF\.weight')
    c = _count(sd, r'encoder\.RDBs\.0\.convs\.(\d+)\.conv\.0\.weight')
    g = sd['encoder.RDBs.0.convs.0.conv.0.weight'].shape[0]
    if sd['encoder.RDBs.0.LFF.weight'].shape[0] != g0:
        raise UserError(f'{where}: an MMEditing RDN whose blocks fuse to {g} channels, not its {g0} features '
                        '(only equal widths, as in the releases, have this architecture)')
    named = [name for name, dcg in RDN_CONFIGS.items() if dcg == (d, c, g)]  # the releases: 'B'
    return {'name': 'rdn', 'args': {'G0': g0, 'RDNkSize': k, 'RDNconfig': named[0] if named else [d, c, g],
                                    'no_upsampling': True}}


def from_mmagic(obj: dict, where: str = 'checkpoint') -> dict:
    """An OpenMMLab LIIF checkpoint (is_mmagic) -> this project's checkpoint dict {'model': {'name':
    'liif', 'args', 'sd'}, 'data_norm', 'converted_from'}. A file of another OpenMMLab model is a
    UserError naming what was expected."""
    sd = obj['state_dict']
    bad = [k for k, v in sd.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor))]
    if bad:
        raise UserError(f"{where}: not an OpenMMLab checkpoint: state_dict[{bad[0]!r}] is a "
                        f"{type(sd[bad[0]]).__name__}, expected a tensor named by a string")
    found = [(layout, rules) for layout, key, rules in LAYOUTS if key in sd]
    if not found:
        raise UserError(f"{where}: an OpenMMLab checkpoint, but not LIIF's (expected EDSR-LIIF or RDN-LIIF "
                        f"parameters such as generator.conv_first, head or generator.sfe1; got {next(iter(sd), 'none')})")
    layout, rules = found[0]
    sd = _rename(sd, rules, where, layout)
    meta = obj.get('meta')
    config = meta.get('config') if isinstance(meta, dict) else None
    if 'RDN' in layout:
        encoder, norm = _rdn(sd, where), RDN_NORM
    else:
        encoder, means = _edsr(sd, where)
        sd, norm = {**means, **sd}, EDSR_NORM
    args = {'encoder_spec': encoder, **liif_args(sd, encoder['args'].get('n_feats', encoder['args'].get('G0')),
                                                 config, where)}
    return {'model': {'name': 'liif', 'args': args, 'sd': sd}, 'data_norm': norm, 'converted_from': layout}
