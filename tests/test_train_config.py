"""The training config schema: shipped configs hold the paper's recipe; mistakes are one line
naming the key and the file."""
import copy
from pathlib import Path

import pytest

import models
from utils.config import load_yaml
from utils.errors import UserError
from utils.config import yaml_float
from training.config import DEFAULTS, check_train_config, load_train_config
from release_keys import reference_keys

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(p for d in ('train-div2k', 'train-celebAHQ', 'train-sample')
                 for p in (REPO / 'configs' / d).rglob('*.yaml'))
PAPER = REPO / 'configs/train-div2k/train_edsr-baseline-liif.yaml'


def test_every_training_config_of_the_paper_is_shipped():
    names = {p.relative_to(REPO / 'configs').as_posix() for p in CONFIGS}
    div2k = {f'train-div2k/train_{e}-{m}.yaml' for e in ('edsr-baseline', 'rdn') for m in ('liif', 'metasr', 'x2')}
    ablation = {f'train-div2k/ablation/train_edsr-baseline-liif-{a}.yaml' for a in ('c', 'u', 'e', 'd', 'x2', 'x3', 'x4')}
    assert div2k | ablation | {'train-div2k/train_edsr-baseline-liif-norm.yaml',
                               'train-sample/train_tiny-liif.yaml',
                               'train-sample/train_edsr-baseline-liif.yaml'} <= names
    assert any(n.startswith('train-celebAHQ/') for n in names)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.name)
def test_shipped_config_validates_and_builds(path):
    cfg = load_train_config(path)
    model = models.make(cfg['model'])
    assert sum(p.numel() for p in model.parameters()) > 0
    text = path.read_text()
    if '_base_:' not in text:  # a config that extends another says what it changes; its root, how LR is made
        assert 'resize' in text.split('train_dataset:')[0].lower()


def test_paper_recipe():
    cfg = load_train_config(PAPER)
    train, val = cfg['train_dataset'], cfg['val_dataset']
    assert train['dataset']['args'] == {'root_path': './load/div2k/DIV2K_train_HR', 'repeat': 20, 'cache': 'in_memory'}
    assert train['wrapper']['args'] == {'inp_size': 48, 'scale_max': 4, 'augment': True, 'sample_q': 2304, 'resize': 'pil'}
    assert train['batch_size'] == 16
    assert val['dataset']['args']['first_k'] == 10 and val['dataset']['args']['repeat'] == 160
    assert cfg['optimizer'] == {'name': 'adam', 'args': {'lr': 1e-4}}
    assert cfg['epoch_max'] == 1000 and cfg['multi_step_lr'] == {'milestones': [200, 400, 600, 800], 'gamma': 0.5}
    assert cfg['data_norm'] == {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
    assert cfg['model']['args']['imnet_spec']['args']['hidden_list'] == [256] * 4
    assert (cfg['epoch_val'], cfg['epoch_save'], cfg['seed'], cfg['precision']) == (1, 100, 0, 'fp32')


def ablation(name: str) -> dict:
    return load_train_config(REPO / f'configs/train-div2k/ablation/train_edsr-baseline-liif-{name}.yaml')


def test_ablations_change_one_thing():
    base = load_train_config(PAPER)
    for name, key, value in (('c', 'cell_decode', False), ('u', 'feat_unfold', False), ('e', 'local_ensemble', False)):
        cfg = ablation(name)
        assert cfg['model']['args'][key] is value
        assert {k: v for k, v in cfg['model']['args'].items() if k != key} == base['model']['args']
        assert {k: v for k, v in cfg.items() if k != 'model'} == {k: v for k, v in base.items() if k != 'model'}
    assert ablation('d')['model']['args']['imnet_spec']['args']['hidden_list'] == [256, 256]
    for s in (2, 3, 4):
        args = ablation(f'x{s}')['train_dataset']['wrapper']['args']
        assert args['scale_min'] == args['scale_max'] == s


def test_norm_variant_subtracts_the_div2k_mean():
    cfg = load_train_config(REPO / 'configs/train-div2k/train_edsr-baseline-liif-norm.yaml')
    pair = {'sub': [0.4488, 0.4371, 0.4040], 'div': [1.0]}
    assert cfg['data_norm'] == {'inp': pair, 'gt': pair}


def test_plain_x2_baselines_upsample_in_the_encoder():
    for enc in ('edsr-baseline', 'rdn'):
        cfg = load_train_config(REPO / f'configs/train-div2k/train_{enc}-x2.yaml')
        assert 'imnet_spec' not in cfg['model']['args']
        assert cfg['model']['args']['encoder_spec']['args'] == {'scale': 2, 'no_upsampling': False}
        assert models.make(cfg['model']).encoder.out_dim == 3


def test_defaults_are_filled_without_changing_the_input():
    raw = load_yaml(PAPER)
    snapshot = copy.deepcopy(raw)
    cfg = check_train_config(raw, 'x.yaml')
    assert raw == snapshot
    assert set(cfg) == set(raw) | set(DEFAULTS) and cfg['num_workers'] is None and cfg['resume'] is None


def mutate(path: str, value):
    """A copy of the paper config with the key at dotted `path` set to value (or deleted for ...)."""
    cfg = copy.deepcopy(load_yaml(PAPER))
    *parents, last = path.split('.')
    node = cfg
    for k in parents:
        node = node[k]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return cfg


@pytest.mark.parametrize('path, value, expected', [
    ('model', ..., 'x.yaml: model: missing (required)'),
    ('epochs', 10, 'x.yaml: epochs: unknown key'),
    ('optimizer.args.lr', '1e-4', "x.yaml: optimizer.args.lr: expected a number, got the string '1e-4'"),
    ('optimizer.args.lr', 0, 'x.yaml: optimizer.args.lr: expected a number > 0'),
    ('optimizer.name', 'adagrad', 'x.yaml: optimizer.name: expected one of adam, adamw, sgd'),
    ('epoch_max', 10.0, 'x.yaml: epoch_max: expected an integer >= 1, got 10.0 (float)'),
    ('epoch_max', True, 'x.yaml: epoch_max: expected an integer >= 1'),
    ('train_dataset.batch_size', '16', "x.yaml: train_dataset.batch_size: expected an integer >= 1, got '16' (str)"),
    ('train_dataset.batchsize', 16, 'x.yaml: train_dataset.batchsize: unknown key'),
    ('train_dataset.wrapper', ..., 'x.yaml: train_dataset.wrapper: missing (required)'),
    ('train_dataset.wrapper.name', 'sr-implicit-downsample', "x.yaml: train_dataset.wrapper.name: unknown 'sr-implicit-downsample'; known: "),
    ('model.name', 'lif', "x.yaml: model.name: unknown 'lif'; known: "),
    ('model.args.encoder_spec.args.res_scale', '1e0', "x.yaml: model.args.encoder_spec.args.res_scale: expected a number, got the string '1e0'"),
    ('data_norm.gt.div', [0.5, 0, 0.5], 'x.yaml: data_norm.gt.div[1]: must not be 0'),
    ('data_norm.inp.sub', [0.5, 0.5], 'x.yaml: data_norm.inp.sub: expected a list of 1 or 3 numbers'),
    ('data_norm.inp.sub', 0.5, 'x.yaml: data_norm.inp.sub: expected a list of 1 or 3 numbers'),
    ('multi_step_lr.milestones', [200, '400'], 'x.yaml: multi_step_lr.milestones[1]: expected an integer'),
    ('multi_step_lr.gamma', '5e-1', "x.yaml: multi_step_lr.gamma: expected a number, got the string '5e-1'"),
    ('eval_type', 'div2k', 'x.yaml: eval_type: eval_type must be div2k-S'),
    ('precision', 'fp8', 'x.yaml: precision: expected one of fp32, bf16, fp16'),
    ('num_workers', -1, 'x.yaml: num_workers: expected an integer >= 0, got -1'),
    ('seed', 'zero', "x.yaml: seed: expected an integer >= 0, got 'zero' (str)"),
])
def test_mistakes_are_one_line_naming_key_and_file(path, value, expected):
    with pytest.raises(UserError) as e:
        check_train_config(mutate(path, value), 'x.yaml')
    msg = str(e.value)
    assert msg.startswith(expected) and '\n' not in msg


def test_number_strings_get_the_yaml_spelling():
    with pytest.raises(UserError, match=r'write 1\.0e-4\)$'):
        check_train_config(mutate('optimizer.args.lr', '1e-4'), 'x.yaml')
    assert [yaml_float(s) for s in ('1e-4', '5E3', '2.5e-4', '1.0e4')] == ['1.0e-4', '5.0e+3', '2.5e-4', '1.0e+4']


def test_a_file_with_a_yaml_exponent_string_is_refused(tmp_path):
    path = tmp_path / 'c.yaml'
    path.write_text(PAPER.read_text().replace('lr: 1.0e-4', 'lr: 1e-4'))
    with pytest.raises(UserError, match=rf"^{path}: optimizer.args.lr: expected a number, got the string '1e-4'"):
        load_train_config(path)


# The LTE authors' recipes (their configs/train-div2k/*.yaml): batch, lr, milestones, decoder widths.
LTE_RECIPES = {
    'edsr-baseline-lte': (16, 1e-4, [200, 400, 600, 800], [256] * 3),
    'rdn-lte': (16, 1e-4, [200, 400, 600, 800], [256] * 3),
    'swinir-lte': (32, 2e-4, [500, 800, 900, 950], [256] * 3),
    'swinir-liif': (16, 1e-4, [200, 400, 600, 800], [256] * 4),
    'swinir-metasr': (16, 1e-4, [200, 400, 600, 800], None),
}


@pytest.mark.parametrize('name', sorted(LTE_RECIPES))
def test_lte_authors_recipes(name):
    cfg = load_train_config(REPO / f'configs/train-div2k/train_{name}.yaml')
    batch, lr, milestones, hidden = LTE_RECIPES[name]
    assert cfg['train_dataset']['batch_size'] == cfg['val_dataset']['batch_size'] == batch
    assert cfg['optimizer']['args']['lr'] == lr and cfg['epoch_max'] == 1000
    assert cfg['multi_step_lr'] == {'milestones': milestones, 'gamma': 0.5}
    assert cfg['train_dataset']['wrapper']['args']['sample_q'] == 2304
    if hidden is not None:
        assert cfg['model']['args']['imnet_spec']['args']['hidden_list'] == hidden


@pytest.mark.parametrize('name,section', [('train-div2k/train_edsr-baseline-lte.yaml', 'edsr-baseline-lte'),
                                          ('train-div2k/train_swinir-lte.yaml', 'swinir-lte'),
                                          ('train-div2k/train_rcan-liif.yaml', 'rcan-liif')])
def test_family_configs_build_the_released_models(name, section):
    """The shipped config builds exactly the module tree of the released checkpoint (keys, shapes)."""
    sd = models.make(load_train_config(REPO / 'configs' / name)['model']).state_dict()
    expected = reference_keys('state-dict-keys-more.txt')[section]
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected


@pytest.mark.parametrize('lo,hi,scale', [(32, 256, 8), (64, 128, 2)])
def test_celebahq_upsample_baselines(lo, hi, scale):
    """The LIIF authors' CelebA-HQ 'upsample' baselines: the encoder's own xS, ground truth resized
    back to the output size (gt_resize)."""
    cfg = load_train_config(REPO / f'configs/train-celebAHQ/train_celebAHQ-{lo}-{hi}_upsample.yaml')
    wrapper = cfg['train_dataset']['wrapper']
    assert wrapper['name'] == 'sr-implicit-uniform-varied'
    assert (wrapper['args']['size_min'], wrapper['args']['size_max'], wrapper['args']['gt_resize']) == (lo, hi, hi)
    assert cfg['model']['args']['encoder_spec']['args']['scale'] == scale and 'imnet_spec' not in cfg['model']['args']
