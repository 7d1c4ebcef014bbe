"""Comparison tables from test.py's result files (--out JSON): rows are models (or variants of one:
another cell clip, precision or --set), columns are test set x scale, cells PSNR / SSIM. Results
are found from files, folders (searched recursively; earlier results moved aside to *.old-* are
skipped) or checkpoints (the results under a results folder whose recorded file hash is theirs),
optionally labelled `NAME=PATH`. Written as markdown, CSV or JSON (scripts/results_table.py)."""
import csv
import glob
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from utils.checkpoints import file_digest
from utils.errors import UserError

from .metrics import parse_eval_type
from .provenance import check_label, protocol_line

# Test sets in the papers' order, with their usual spelling; others follow, sorted by name.
KNOWN_SETS = {'div2k': 'DIV2K', 'set5': 'Set5', 'set14': 'Set14', 'b100': 'B100', 'urban100': 'Urban100',
              'sample5': 'Sample5', 'sample3': 'Sample3', 'sample-valid': 'sample-valid'}
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt')


@dataclass(frozen=True)
class Result:
    """One test.py result file: its row (model label and variant), column (test set, scale) and
    mean PSNR / SSIM, with the provenance it recorded."""
    path: str
    label: str
    variant: str
    dataset: str
    scale: Optional[float]
    psnr: float
    ssim: Optional[float]
    protocol: str
    checkpoint: Optional[dict] = field(default=None, compare=False)

    @property
    def row(self) -> str:
        return f'{self.label}, {self.variant}' if self.variant else self.label


def variant_of(summary: dict) -> str:
    """What distinguishes evaluations of one model beyond the test set: 'cell clip x4', 'bf16',
    '--set k=v' (empty for the defaults)."""
    parts = []
    if summary.get('cell_scale_max') is not None and summary.get('checkpoint') is not None:
        parts.append(f"cell clip ×{summary['cell_scale_max']:g}")
    if summary.get('precision', 'fp32') != 'fp32':
        parts.append(summary['precision'])
    # eval_bsize changes no number; eval_type and the cell clip are said elsewhere (the column's
    # protocol, the clip above).
    parts += [f'--set {s}' for s in summary.get('sets') or []
              if s.partition('=')[0].strip() not in ('cell_scale_max', 'eval_bsize', 'eval_type')]
    return ', '.join(parts)


def read_result(path: Path, label: Optional[str] = None, strict: bool = True) -> Optional[Result]:
    """A test.py --out file as a Result (label overrides the one it recorded). A file that is not
    one is a UserError when strict, else None (found while searching a folder)."""
    try:
        summary = json.loads(Path(path).read_text())
        mean = summary['mean']
        psnr, ssim = float(mean['psnr']), mean.get('ssim')
        protocol = summary.get('protocol')
        scale = protocol.get('scale') if isinstance(protocol, dict) else summary.get('scale')
        # The column's protocol without the row's options (cell clip, window: the row says them).
        text = protocol_line(summary['dataset'], parse_eval_type(summary.get('eval_type'))).split(': ', 1)[-1]
        name = summary.get('dataset_name') or Path(summary['config']).stem
    except (OSError, ValueError, KeyError, TypeError, AttributeError, UserError) as e:
        if not strict:
            return None
        raise UserError(f'{path}: not a test.py result file ({type(e).__name__}: {e})') from None
    row_label = label or summary.get('label') or Path(str(summary.get('model'))).stem
    return Result(str(path), row_label, variant_of(summary), name, scale, psnr,
                  None if ssim is None else float(ssim), text, summary.get('checkpoint'))


def _skipped(path: Path) -> bool:
    """Earlier results moved aside (<folder>.old-<time>) and our own tables are not results."""
    return any('.old-' in part for part in path.parts) or path.name == 'table.json'


def _by_checkpoint(ckpt: Path, results_root: Path) -> list[Path]:
    """Result files under results_root that recorded ckpt's file hash."""
    digest = file_digest(ckpt)
    found = []
    for p in sorted(results_root.rglob('*.json')):
        if _skipped(p):
            continue
        try:
            rec = json.loads(p.read_text()).get('checkpoint') or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(rec, dict) and rec.get('digest') == digest:
            found.append(p)
    if not found:
        raise UserError(f'no results of {ckpt} under {results_root} (evaluate it first: bash scripts/test-benchmark.sh {ckpt})')
    return found


def find_results(items: Sequence[str], results_root='save/test') -> list[Result]:
    """Results of each item: a result file, a folder (recursively), a checkpoint (its results under
    results_root) or a glob of those, optionally as NAME=PATH (NAME labels the row)."""
    results = []
    for item in items:
        label, sep, pattern = item.partition('=')
        if not sep or not label or '/' in label or Path(item).exists():
            label, pattern = None, item
        else:
            check_label(label, f'the name in {item!r}')
        paths = sorted(Path(p) for p in glob.glob(pattern)) if glob.has_magic(pattern) else [Path(pattern)]
        if not paths or not all(p.exists() for p in paths):
            raise UserError(f'no result file, folder or checkpoint at {pattern}')
        for path in paths:
            if path.is_dir():
                found = [read_result(p, label, strict=False) for p in sorted(path.rglob('*.json')) if not _skipped(p)]
                found = [r for r in found if r is not None]
                if not found:
                    raise UserError(f'{path}: holds no test.py result file (*.json written by test.py --out)')
            elif path.suffix in CHECKPOINT_SUFFIXES:
                found = [read_result(p, label) for p in _by_checkpoint(path, Path(results_root))]
            else:
                found = [read_result(path, label)]
            results += found
    return results


def _border_rule(text: str, scale) -> str:
    """'border 4' at x4 -> 'border = scale', 'border 10' at x4 -> 'border = scale + 6' (docs/design.md §5)."""
    if scale is None:
        return text
    def rule(m: re.Match) -> str:
        border = int(m.group(1))
        return {math.ceil(scale): 'border = scale', math.ceil(scale) + 6: 'border = scale + 6'}.get(border, m.group(0))
    return re.sub(r'border (\d+)', rule, text)


def _set_key(name: str) -> tuple:
    keys = list(KNOWN_SETS)
    return (keys.index(name), '') if name in keys else (len(keys), name)


def column_name(dataset: str, scale) -> str:
    """'Set5 ×4' (or the set alone when its scale is unknown)."""
    name = KNOWN_SETS.get(dataset, dataset)
    return f'{name} ×{scale:g}' if scale is not None else name


@dataclass
class Table:
    """Rows (in first-seen order), columns (test set in the papers' order, then scale) and cells."""
    rows: list
    columns: list
    cells: dict
    title: str

    @classmethod
    def build(cls, results: Sequence[Result], title: Optional[str] = None) -> 'Table':
        """The table of results; two results for one cell are a UserError naming both files, and
        one label shared by two different checkpoints gets each file's hash appended."""
        digests: dict = {}
        for r in results:
            if r.checkpoint and r.checkpoint.get('digest'):
                digests.setdefault(r.label, set()).add(r.checkpoint['digest'])
        rows, cells = [], {}
        for r in results:
            row = r.row
            if len(digests.get(r.label, ())) > 1:
                row = row.replace(r.label, f"{r.label} ({r.checkpoint['digest'][:6]})", 1)
            col = (r.dataset, r.scale)
            if (row, col) in cells:
                raise UserError(f'two results for {row} at {column_name(*col)}: {cells[row, col].path} and {r.path}; '
                                'pass one of them (or label them NAME=PATH)')
            cells[row, col] = r
            if row not in rows:
                rows.append(row)
        columns = sorted({c for _, c in cells}, key=lambda c: (_set_key(c[0]), c[1] is None, c[1] or 0))
        if not rows:
            raise UserError('no results to tabulate')
        return cls(rows, columns, cells, title or 'PSNR (dB) / SSIM')

    def notes(self) -> list[str]:
        """The protocol of each column (and, where rows differ, of each row); columns of one test set
        whose protocols differ only in a border that follows the scale share a line."""
        groups: dict = {}
        for col in self.columns:
            texts: dict = {}
            for row in self.rows:
                if (row, col) in self.cells:
                    texts.setdefault(_border_rule(self.cells[row, col].protocol, col[1]), []).append(row)
            if len(texts) == 1:
                text = next(iter(texts))
            else:
                text = '; '.join(f'{t} ({", ".join(rs)})' for t, rs in texts.items())
            groups.setdefault((col[0], text), []).append(col)
        return [f'- {KNOWN_SETS.get(ds, ds)} ' + ', '.join(f'×{c[1]:g}' for c in cols if c[1] is not None) + f': {text}'
                if any(c[1] is not None for c in cols) else f'- {KNOWN_SETS.get(ds, ds)}: {text}'
                for (ds, text), cols in groups.items()]

    def markdown(self) -> str:
        """A title saying what the rows and columns are, the table, then each column's protocol."""
        def cell(r: Optional[Result]) -> str:
            if r is None:
                return '-'
            return f'{r.psnr:.2f}' + (f' / {r.ssim:.4f}' if r.ssim is not None and math.isfinite(r.ssim) else '')
        lines = [f'**{self.title}**: rows are models (after a comma, how they were evaluated); columns are test set ×scale', '',
                 '| model | ' + ' | '.join(column_name(*c) for c in self.columns) + ' |',
                 '|---|' + '---|' * len(self.columns)]
        for row in self.rows:
            name = row.replace('|', '\\|')  # a '|' in a name would end its cell
            lines.append(f'| {name} | ' + ' | '.join(cell(self.cells.get((row, c))) for c in self.columns) + ' |')
        return '\n'.join(lines + ['', 'Protocols:'] + self.notes()) + '\n'

    def csv(self) -> str:
        """One line per row: the model, then PSNR and SSIM of each column."""
        out = io.StringIO()
        w = csv.writer(out, lineterminator='\n')
        w.writerow(['model'] + [f'{column_name(*c)} {m}' for c in self.columns for m in ('PSNR', 'SSIM')])
        for row in self.rows:
            values = []
            for c in self.columns:
                r = self.cells.get((row, c))
                values += ['', ''] if r is None else [f'{r.psnr:.4f}', '' if r.ssim is None else f'{r.ssim:.6f}']
            w.writerow([row] + values)
        return out.getvalue()

    def json(self) -> str:
        """Everything: rows, columns and one entry per cell with its protocol and provenance."""
        cells = [{'row': row, 'dataset': c[0], 'scale': c[1], 'psnr': r.psnr, 'ssim': r.ssim, 'protocol': r.protocol,
                  'checkpoint': r.checkpoint, 'file': r.path}
                 for row in self.rows for c in self.columns for r in [self.cells.get((row, c))] if r is not None]
        return json.dumps({'title': self.title, 'rows': self.rows, 'columns': [column_name(*c) for c in self.columns],
                           'cells': cells}, indent=1) + '\n'

    def render(self, fmt: str) -> str:
        """The table as 'md', 'csv' or 'json'."""
        return {'md': self.markdown, 'csv': self.csv, 'json': self.json}[fmt]()
