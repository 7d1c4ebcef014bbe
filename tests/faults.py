"""Helpers of the fault-injection tests (tests/test_faults_*.py; their fixtures are in
conftest.py): hostile inputs, outputs that are inputs, full and read-only disks. Every fault must
end in one line `error: ...` with exit status 2, and nothing the user had may be lost (README,
"Reliability")."""
from pathlib import Path

import pytest

from utils.errors import run_cli
from script_loader import load_script

REPO = Path(__file__).resolve().parents[1]
test_cli = load_script('test.py', 'liif_test_cli_faults')

NORM = {'inp': {'sub': [0.5], 'div': [0.5]}, 'gt': {'sub': [0.5], 'div': [0.5]}}
TINY_LIIF = {'name': 'liif', 'args': {
    'encoder_spec': {'name': 'edsr-baseline', 'args': {'n_resblocks': 1, 'n_feats': 8, 'no_upsampling': True}},
    'imnet_spec': {'name': 'mlp', 'args': {'out_dim': 3, 'hidden_list': [16]}}}}


def one_line_error(main, capsys) -> str:
    """Run main() through run_cli: exit status 2 and exactly one stderr line `error: ...`."""
    with pytest.raises(SystemExit) as e:
        run_cli(main)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def fill(disk: Path) -> None:
    """Fill a (small) file system to its last byte."""
    with open(disk / 'filler', 'wb', buffering=0) as f:
        try:
            while True:
                f.write(b'\0' * 4096)
        except OSError:
            pass


def run_test_py(eval_setup, *extra) -> dict:
    """test.py on eval_setup's config and checkpoint, with extra flags; returns its summary."""
    return test_cli.main(['--config', str(eval_setup['config']), '--model', str(eval_setup['ckpt']),
                          '--gpu', 'cpu', '--quiet', *map(str, extra)])
