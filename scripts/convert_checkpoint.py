"""Convert an OpenMMLab LIIF checkpoint (MMEditing 2021 or mmagic: EDSR-LIIF, RDN-LIIF) to this
project's release format, its normalisation included (docs/design.md §6.1):

    python scripts/convert_checkpoint.py liif_edsr_norm_c64b16_g1_1000k_div2k_20210715-ab7ce3fc.pth \
        save/edsr-liif-mmagic.pth

Every entry point (test.py, demo.py, train_liif.py --init, Upscaler.load) already reads OpenMMLab's
files as they are; a converted file gives the same images and loads in the LIIF authors' code too
(their `make(ckpt['model'], load_sd=True)`; its data_norm, which their code ignores, must then be
applied by hand: EDSR-LIIF was trained on x - DIV2K mean, not (x - 0.5) / 0.5). The source is read
without executing code; DST is written atomically and never over SRC. Any checkpoint this project
reads is accepted (a release-format one is written back model-only, like scripts/export_model.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inference.norm import DataNorm  # noqa: E402
from inference.release import release_checkpoint  # noqa: E402
from utils.errors import ArgumentParser, run_cli  # noqa: E402


def main(argv=None) -> dict:
    """Convert SRC to DST; returns what was written."""
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('src', help='an OpenMMLab (or this project\'s) LIIF checkpoint')
    p.add_argument('dst', help='the checkpoint to write (not SRC)')
    args = p.parse_args(argv)
    out = release_checkpoint(args.src, args.dst)
    n = sum(v.numel() for v in out['model']['sd'].values())
    print(f"{args.dst}: {out['model']['name']} from {out.get('converted_from', 'a release-format checkpoint')}, "
          f"{n:,} parameters, data_norm {DataNorm.from_config(out['data_norm']).describe()}")
    return out


if __name__ == '__main__':
    run_cli(main)
