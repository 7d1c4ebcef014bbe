"""Export a checkpoint's implicit model to one ONNX file (docs/deploy.md, docs/design.md §11).

    python scripts/export_onnx.py save/run/epoch-best.pth model.onnx
    python demo.py --input lr.png --scale 4 --backend onnxruntime --model model.onnx

The graph: image (1, 3, h, w) in [0, 1], coord and cell (1, Q, 2) -> rgb (1, Q, 3) in [0, 1], any
h, w and Q, the model's normalisation inside. Exported with torch.onnx.export (dynamo) at the
pinned torch's default opset, no custom operators. Before writing, the file is run by onnxruntime
and compared with the PyTorch model on check inputs (sides not multiples of a window, non-integer
scales, a one-row input); it is written (atomically) only if they agree to 1e-4.
"""
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.norm import DataNorm  # noqa: E402
from inference.onnx_export import TOLERANCE, check_samples, export_onnx, max_difference, save_onnx  # noqa: E402
from models.loading import build_model, require_implicit  # noqa: E402
from utils.checkpoints import load_checkpoint  # noqa: E402
from utils.errors import ArgumentParser, UserError, run_cli  # noqa: E402
from utils.files import check_output  # noqa: E402


def export(src: str, dst: str, check: bool = True) -> tuple[int, float]:
    """Write the ONNX file of checkpoint src to dst (refused when dst is src or not a .onnx name);
    returns its size in bytes and the largest difference from PyTorch (NaN without the check)."""
    if Path(dst).suffix.lower() != '.onnx':
        raise UserError(f'output {dst}: give a file name ending in .onnx (a checkpoint is never overwritten)')
    check_output(dst, {'checkpoint': src})
    ckpt = load_checkpoint(src)
    name = ckpt['model']['name']
    model = require_implicit(build_model(ckpt, src, 'cpu'), name, src)
    norm = DataNorm.from_checkpoint(ckpt, src)
    proto = export_onnx(model, norm, name=name, source=Path(src).name)
    worst = float('nan')
    if check:
        worst = max_difference(proto, model, norm, check_samples(model))
        if not worst <= TOLERANCE:
            raise UserError(f'{src}: the exported graph differs from the PyTorch model by {worst:.2g} '
                            f'(more than {TOLERANCE:g}); {dst} is not written')
    return save_onnx(proto, dst), worst


def main() -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('checkpoint', help='a checkpoint of an implicit model (LIIF, Meta-SR, A-LIIF, LTE)')
    p.add_argument('output', help='the ONNX file to write (.onnx)')
    p.add_argument('--no-check', action='store_true',
                   help='write without comparing onnxruntime with PyTorch first')
    args = p.parse_args()
    start = time.time()
    size, worst = export(args.checkpoint, args.output, check=not args.no_check)
    checked = '' if args.no_check else f'; onnxruntime equals PyTorch to {worst:.1e}'
    print(f'wrote {args.output}: {size / 1e6:.1f} MB in {time.time() - start:.0f} s{checked}')


if __name__ == '__main__':
    run_cli(main)
