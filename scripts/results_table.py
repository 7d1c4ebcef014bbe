"""One comparison table from test.py's results: rows are models (or variants), columns test set x
scale, cells PSNR / SSIM, each column's protocol below (inference/results.py).

    python scripts/results_table.py save/test/_train_liif save/test/_train_lte          # result folders
    python scripts/results_table.py 'save/test/*/epoch-best' --out cmp.md --out cmp.csv
    python scripts/results_table.py LIIF=save/a/epoch-best.pth LTE=save/b/epoch-best.pth  # by checkpoint
    python scripts/results_table.py -c=save/test/abl-c -u=save/test/abl-u --title 'Ablation'

An argument is a result file, a folder (searched recursively; *.old-* folders of earlier results
are skipped), a checkpoint (the results under --results-root that recorded its file's hash) or a
glob of those; NAME=PATH names the row. --out FILE writes .md, .csv or .json (atomically; it may
be given several times); without --out the markdown goes to stdout.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.results import Table, find_results  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import atomic_write_text, check_output  # noqa: E402

FORMATS = {'.md': 'md', '.csv': 'csv', '.json': 'json'}


def main(argv=None) -> Table:
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('results', nargs='+', help='[NAME=]result file, folder, checkpoint or glob')
    p.add_argument('--title', default=None, help="the table's title (default 'PSNR (dB) / SSIM')")
    p.add_argument('--out', action='append', default=[], help='write the table here (.md, .csv or .json); repeatable')
    p.add_argument('--results-root', default='save/test', help='where checkpoints\' results are looked for')
    args = p.parse_args(argv)
    for out in args.out:
        if Path(out).suffix.lower() not in FORMATS:
            raise UserError(f'--out {out}: expected a .md, .csv or .json file')
    results = find_results(args.results, args.results_root)
    for out in args.out:
        check_output(out, {f'result {r.path}': r.path for r in results}, '--out')
    table = Table.build(results, args.title)
    for out in args.out:
        try:
            atomic_write_text(out, table.render(FORMATS[Path(out).suffix.lower()]))
        except OSError as e:
            raise UserError(f'cannot write --out {out} ({e.strerror or e})') from None
    if not args.out:
        print(table.markdown(), end='')
    else:
        print(f"table of {len(table.rows)} row(s) x {len(table.columns)} column(s): {', '.join(args.out)}")
    return table


if __name__ == '__main__':
    run_cli(main)
