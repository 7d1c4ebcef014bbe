"""Config inheritance (`_base_`) and command-line overrides (`--set`): the shipped configs resolve
to exactly what they held before they were shortened; precedence base < file < --set; YAML typing;
unknown keys, cycles and malformed items are one line; the run folder records the resolved config."""
import json
from pathlib import Path

import pytest
import yaml

from test_train import cli, data, one_thread, tiny_raw, write_config  # noqa: F401  (fixtures, helpers)
from inference.eval_config import read_test_config
from utils.config import load_yaml
from utils.config_sources import MAX_BASE_DEPTH, apply_sets, load_config, merge, parse_set
from utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# Every config shortened with _base_, loaded (yaml.safe_load) from its full text before the change.
BEFORE = json.loads((REPO / 'tests/data/configs-before-base.json').read_text())


@pytest.mark.parametrize('path', sorted(BEFORE))
def test_shortened_configs_resolve_to_what_they_were(path):
    text = (REPO / path).read_text()
    assert '_base_:' in text and len(text.splitlines()) < 35
    assert load_config(REPO / path) == BEFORE[path]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_merge_mappings_replace_everything_else():
    base = {'a': {'x': 1, 'y': [1, 2], 'z': {'k': 1}}, 'b': 2}
    over = {'a': {'y': [3], 'z': {'_delete_': True, 'j': 2}, 'w': None}, 'c': 3}
    got = merge(base, over)
    assert got == {'a': {'x': 1, 'y': [3], 'z': {'j': 2}, 'w': None}, 'b': 2, 'c': 3}
    assert list(got) == ['a', 'b', 'c'] and list(got['a']) == ['x', 'y', 'z', 'w']  # base order first
    assert base == {'a': {'x': 1, 'y': [1, 2], 'z': {'k': 1}}, 'b': 2}  # inputs unchanged
    assert over['a']['z'] == {'_delete_': True, 'j': 2}


def test_relative_bases_resolve_against_the_including_file(tmp_path, monkeypatch):
    write(tmp_path / 'root.yaml', 'a: 1\nb: {x: 1, y: 2}\n')
    write(tmp_path / 'one/mid.yaml', '_base_: ../root.yaml\nb: {y: 3}\nc: mid\n')
    write(tmp_path / 'one/two/leaf.yaml', '_base_: ../mid.yaml\nc: leaf\n')
    monkeypatch.chdir(tmp_path / 'one')  # not where the files are
    assert load_config(tmp_path / 'one/two/leaf.yaml') == {'a': 1, 'b': {'x': 1, 'y': 3}, 'c': 'leaf'}


def test_a_list_of_bases_merges_left_to_right(tmp_path):
    write(tmp_path / 'p.yaml', 'a: p\nb: p\n')
    write(tmp_path / 'q.yaml', 'b: q\nc: q\n')
    write(tmp_path / 'f.yaml', '_base_: [p.yaml, q.yaml]\nc: f\n')
    assert load_config(tmp_path / 'f.yaml') == {'a': 'p', 'b': 'q', 'c': 'f'}


@pytest.mark.parametrize('files, message', [
    ({'a.yaml': '_base_: b.yaml\n', 'b.yaml': '_base_: a.yaml\n'}, 'is already being included (a cycle:'),
    ({'a.yaml': '_base_: a.yaml\n'}, 'is already being included (a cycle:'),
    ({'a.yaml': '_base_: missing.yaml\n'}, '_base_: missing.yaml not found'),
    ({'a.yaml': '_base_: 3\n'}, '_base_: expected a config path or a list of them'),
    ({'a.yaml': '_base_: []\n'}, '_base_: expected a config path or a list of them'),
    ({'a.yaml': '_base_: b.yaml\nx: {_delete_: yes-please}\n', 'b.yaml': 'x: {y: 1}\n'},
     "x._delete_: expected true (replace the base mapping), got 'yes-please'"),
    ({'a.yaml': '_base_: b.yaml\n', 'b.yaml': 'x: [1\n'}, 'b.yaml: not valid YAML'),
])
def test_bad_bases_are_one_line(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(UserError, match=None) as e:
        load_config(tmp_path / 'a.yaml')
    assert message in str(e.value) and '\n' not in str(e.value)


def test_inheritance_depth_is_bounded(tmp_path):
    write(tmp_path / 'c0.yaml', 'a: 0\n')
    for i in range(1, MAX_BASE_DEPTH + 2):
        write(tmp_path / f'c{i}.yaml', f'_base_: c{i - 1}.yaml\n')
    assert load_config(tmp_path / f'c{MAX_BASE_DEPTH}.yaml') == {'a': 0}
    with pytest.raises(UserError, match=f'more than {MAX_BASE_DEPTH} levels'):
        load_config(tmp_path / f'c{MAX_BASE_DEPTH + 1}.yaml')


@pytest.mark.parametrize('item, value', [
    ('a.b=2', 2), ('a.b=2.0e-4', 2e-4), ('a.b=1e-4', '1e-4'), ('a.b=true', True), ('a.b=off', False),
    ('a.b=[32, 32]', [32, 32]), ('a.b=null', None), ('a.b=', None), ('a.b=pil', 'pil'),
    ("a.b='2'", '2'), ('a.b={x: 1}', {'x': 1}), ('a.b=x=y', 'x=y'),
])
def test_set_values_are_typed_by_yaml(item, value):
    parts, got = parse_set(item)
    assert parts == ['a', 'b'] and got == value and type(got) is type(value)


@pytest.mark.parametrize('item, message', [
    ('lr', 'expected KEY.PATH=VALUE'), ('=3', 'expected KEY.PATH=VALUE'), ('a..b=3', 'expected KEY.PATH=VALUE'),
    ('a=[1', 'the value is not valid YAML'), ('_base_=x.yaml', '_base_ cannot be set'),
    ('a.b.c=1', 'a.b is 1, not a mapping'),
])
def test_bad_set_items_are_one_line(item, message):
    with pytest.raises(UserError, match=None) as e:
        apply_sets({'a': {'b': 1}}, [item])
    assert message in str(e.value) and '\n' not in str(e.value)


def test_sets_apply_in_order_and_leave_the_config_alone():
    cfg = {'a': {'b': 1}}
    assert apply_sets(cfg, ['a.b=2', 'a.c.d=3', 'a.b=4']) == {'a': {'b': 4, 'c': {'d': 3}}}
    assert cfg == {'a': {'b': 1}}


def test_precedence_base_file_set_and_what_the_run_folder_records(data, tmp_path, monkeypatch, capsys):
    """train_liif.py: a value from the base, overridden by the file, overridden by --set; the run
    folder's config.yaml holds the resolved config (no _base_), naming its sources on line 1."""
    monkeypatch.chdir(tmp_path)
    base = tiny_raw(data, epoch_max=1, epoch_save=None, seed=3)
    base['optimizer']['args']['lr'] = 1.0e-3
    (tmp_path / 'cfg').mkdir()
    write_config(tmp_path / 'cfg/base.yaml', base)
    write(tmp_path / 'cfg/exp/child.yaml', '_base_: ../base.yaml\nseed: 4\noptimizer: {args: {lr: 2.0e-3}}\n'
                                           'model: {args: {imnet_spec: {args: {hidden_list: [8]}}}}\n')
    code, err = cli(['--config', str(tmp_path / 'cfg/exp/child.yaml'), '--name', 'r',
                     '--set', 'optimizer.args.lr=3.0e-3', '--set', 'train_dataset.wrapper.args.augment=false'], capsys)
    assert code == 0, err
    text = (tmp_path / 'save/r/config.yaml').read_text()
    assert text.splitlines()[0] == (f'# resolved from {tmp_path}/cfg/exp/child.yaml with --set optimizer.args.lr, '
                                    'train_dataset.wrapper.args.augment')
    rec = load_yaml(tmp_path / 'save/r/config.yaml')
    assert '_base_' not in rec
    assert rec['optimizer']['args']['lr'] == 3.0e-3 and rec['seed'] == 4 and rec['epoch_max'] == 1  # set > file > base
    assert rec['train_dataset']['wrapper']['args']['augment'] is False
    assert rec['model']['args']['imnet_spec']['args'] == {'out_dim': 3, 'hidden_list': [8]}


@pytest.mark.parametrize('item, message', [
    ('epoch_maxx=3', 'epoch_maxx: unknown key; expected train_dataset'),
    ('optimizer.args.lr=1e-3', "optimizer.args.lr: expected a number, got the string '1e-3'"),
    ('optimizer.args.lr=abc', "optimizer.args.lr: expected a number, got 'abc'"),
    ('train_dataset.wrapperr.args.x=1', 'train_dataset.wrapperr: unknown key'),
    ('model.args.imnet_spec.args.hidden_lists=[8]', "model: cannot build 'liif'"),
])
def test_unknown_or_mistyped_set_keys_are_one_line(data, tmp_path, monkeypatch, capsys, item, message):
    monkeypatch.chdir(tmp_path)
    path = write_config(tmp_path / 'tiny.yaml', tiny_raw(data))
    code, err = cli(['--config', str(path), '--name', 'r', '--set', item], capsys)
    err = err.strip()
    assert code == 2 and '\n' not in err and message in err, err
    assert err.startswith(f'error: {path} with --set {item.split("=")[0]}: ')
    assert not (tmp_path / 'save').exists()


def test_test_configs_take_bases_and_sets(tmp_path):
    hr = tmp_path / 'hr'
    hr.mkdir()
    write(tmp_path / 'base.yaml', yaml.safe_dump({
        'test_dataset': {'dataset': {'name': 'image-folder', 'args': {'root_path': str(hr)}},
                         'wrapper': {'name': 'sr-implicit-downsampled', 'args': {'scale_min': 4}}, 'batch_size': 1},
        'eval_type': 'benchmark-4', 'eval_bsize': 100}))
    write(tmp_path / 'x4.yaml', '_base_: base.yaml\ncell_scale_max: 4\n')
    plan = read_test_config(str(tmp_path / 'x4.yaml'), None, 'LIIF_DATA', sets=['eval_bsize=7'])
    assert (plan.protocol.eval_type, plan.bsize, plan.cell_scale_max) == ('benchmark-4', 7, 4)
    with pytest.raises(UserError, match='cell_scale_maxx: unknown key; expected test_dataset'):
        read_test_config(str(tmp_path / 'x4.yaml'), None, 'LIIF_DATA', sets=['cell_scale_maxx=4'])
