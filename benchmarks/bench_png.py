"""Time and size of writing an upscaled photo as PNG at each zlib level (demo.py --png-compression).

    python benchmarks/bench_png.py [--side 1024] [--repeats 5]

The photo is scikit-image's astronaut resized to side x side with PIL's bicubic (smooth, as an
upscaled image is); best of --repeats per level, in memory (no disk in the timing).
"""
import argparse
import io
import os
import sys
import time

from PIL import Image
from skimage import data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_info import cpu_kind  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--side', type=int, default=1024)
    p.add_argument('--repeats', type=int, default=5)
    args = p.parse_args()
    img = Image.fromarray(data.astronaut()).resize((args.side, args.side), Image.BICUBIC)
    print(cpu_kind())
    base = None
    for level in (6, 1, 2, 3, 4, 9):
        best, size = float('inf'), 0
        for _ in range(args.repeats):
            buf = io.BytesIO()
            start = time.perf_counter()
            img.save(buf, format='PNG', compress_level=level)
            best, size = min(best, time.perf_counter() - start), len(buf.getvalue())
        base = base or (best, size)
        print(f'level {level}: {best:.3f} s ({base[0] / best:.2f}x level 6), {size:,} bytes ({size / base[1] - 1:+.1%})')


if __name__ == '__main__':
    main()
