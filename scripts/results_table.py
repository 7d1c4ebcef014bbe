"""A markdown table (datasets x scales, `PSNR / SSIM`) from test.py's JSON results.

    python scripts/results_table.py --title "EDSR-baseline-LIIF" Set5:2=out/set5-2.json ...

Each entry is ROW:SCALE=FILE. A FILE that does not exist gives an empty cell ('-'); a row
with no results at all is left out. Columns are the scales in increasing order.
"""
import json
import os
import sys
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402


def parse_entry(entry: str) -> tuple[str, float, str]:
    """'Set5:2=out/set5-2.json' -> ('Set5', 2, 'out/set5-2.json'); scales may be non-integer (2.5)."""
    try:
        key, path = entry.split('=', 1)
        row, scale = key.rsplit(':', 1)
        value = float(scale)
        return row, int(value) if value.is_integer() else value, path
    except ValueError:
        raise UserError(f'expected ROW:SCALE=FILE (e.g. Set5:2=set5-2.json), got {entry!r}') from None


def read_mean(path: str) -> Optional[tuple[float, float]]:
    """(mean PSNR, mean SSIM) of a test.py --out file, or None if it does not exist."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            mean = json.load(f)['mean']
        return float(mean['psnr']), float(mean['ssim'])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f'{path}: not a test.py result file ({type(e).__name__}: {e})') from None


def cell(value: Optional[tuple[float, float]]) -> str:
    """'34.67 / 0.9321', or '-' for a missing result."""
    return '-' if value is None else f'{value[0]:.2f} / {value[1]:.4f}'


def markdown_table(entries: list[tuple[str, float, str]], title: Optional[str] = None) -> str:
    """The table as markdown: one row per dataset with a result, one column per scale."""
    rows, scales, values = [], sorted({s for _, s, _ in entries}), {}
    for row, scale, path in entries:
        if row not in rows:
            rows.append(row)
        values[row, scale] = read_mean(path)
    rows = [r for r in rows if any(values.get((r, s)) for s in scales)]
    lines = [f'**{title}**', ''] if title else []
    lines.append('| Dataset | ' + ' | '.join(f'×{s:g}' for s in scales) + ' |')
    lines.append('|---|' + '---|' * len(scales))
    for r in rows:
        lines.append(f'| {r} | ' + ' | '.join(cell(values.get((r, s))) for s in scales) + ' |')
    if not rows:
        lines.append('| (no results) |' + ' |' * len(scales))
    return '\n'.join(lines)


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--title', default=None, help='a bold line above the table')
    p.add_argument('entries', nargs='+', help='ROW:SCALE=FILE')
    args = p.parse_args(argv)
    print(markdown_table([parse_entry(e) for e in args.entries], args.title))


if __name__ == '__main__':
    run_cli(main)
