"""Strip a training checkpoint to the model: {'model': {name, args, sd}, 'epoch', 'data_norm',
'config'} in the paper release's format (no optimizer, scheduler or random states), for shipping.
The normalisation the model needs travels with it ('data_norm'; a release checkpoint without one
gets the paper's 0.5 / 0.5), and the training config, if there was one, for provenance
(inference/release.py).

    python scripts/export_model.py save/run/epoch-last.pth pretrained/model.pth
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.release import release_checkpoint  # noqa: E402
from utils.errors import ArgumentParser, run_cli  # noqa: E402


def export(src: str, dst: str) -> dict:
    """Write the model-only checkpoint of src to dst; returns it."""
    return release_checkpoint(src, dst)


def main() -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src')
    p.add_argument('dst')
    args = p.parse_args()
    out = export(args.src, args.dst)
    n = sum(v.numel() for v in out['model']['sd'].values())
    print(f"{args.dst}: {out['model']['name']}, {n:,} parameters, epoch {out['epoch']}")


if __name__ == '__main__':
    run_cli(main)
