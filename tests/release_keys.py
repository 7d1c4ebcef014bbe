"""Read what tests/data holds about the authors' code: the released checkpoints' state-dict listings
(state-dict-keys*.txt: a '## section ...: N tensors, M parameters|numbers' header, then one
'key (shape)' line per tensor), the vector files, and the vectors' queries in this project's
convention."""
import re
from pathlib import Path

DATA = Path(__file__).parent / 'data'


def reference_keys(filename: str = 'state-dict-keys.txt') -> dict[str, dict[str, tuple]]:
    """{section: {key: shape}}, keys in the file's (the state dict's) order."""
    sections, current = {}, None
    for line in (DATA / filename).read_text().splitlines():
        if line.startswith('## '):
            current = sections.setdefault(line.split()[1].rstrip(':'), {})
        elif current is not None and line.strip() and not line.startswith('#'):
            key, shape = re.match(r'(\S+) \(([\d, ]*)\)', line).groups()
            current[key] = tuple(int(s) for s in shape.split(',') if s.strip())
    return sections


def header_counts(filename: str, section: str) -> tuple[int, int]:
    """(tensors, numbers) that the section's header announces."""
    text = (DATA / filename).read_text()
    match = re.search(rf'^## {re.escape(section)}\b.*?: (\d+) tensors, (\d+) (?:parameters|numbers)$', text, re.M)
    return int(match.group(1)), int(match.group(2))


def all_vectors() -> list[Path]:
    """Every vector file in tests/data/vectors."""
    return sorted((DATA / 'vectors').glob('*-seed0.pth'))


def release_vectors() -> list[Path]:
    """The vectors in the release format: make(checkpoint['model'], load_sd=True)(inp, coord, cell)
    == expected. CMSR's (tests/test_lmf.py) also need its tables; OpenMMLab's (tests/test_mmagic.py)
    hold an mmagic checkpoint."""
    return [p for p in all_vectors() if '-cmsr-' not in p.name and not p.name.startswith('mmagic-')]


def assert_matches_release(sd: dict, filename: str, section: str) -> None:
    """A state dict has the release's keys in its order, its shapes, and the header's counts."""
    expected = reference_keys(filename)[section]
    assert list(sd) == list(expected)
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    assert (len(sd), sum(v.numel() for v in sd.values())) == header_counts(filename, section)


def as_queries(v: dict) -> tuple:
    """A vector's (coord, cell, expected) in this project's convention: (1, Q, 2), (1, Q, 2), (1, Q, 3).
    The SRNO and HIIF vectors store the authors' image-shaped call: coord (1, H, W, 2), one cell
    (1, 2) for the call, expected (1, 3, H, W); their queries are the same 1149 points."""
    if v['coord'] is None or v['coord'].dim() == 3:
        return v['coord'], v['cell'], v['expected']
    coord = v['coord'].reshape(1, -1, 2)
    return coord, v['cell'].unsqueeze(1).expand(1, coord.shape[1], 2), v['expected'].flatten(2).transpose(1, 2)
