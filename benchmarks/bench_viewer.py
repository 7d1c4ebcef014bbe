"""Time to render one viewport of the viewer: a side x side region at the centre of the output at
--scale, with the bundled model (or --model), in fp32 and, where the CPU has it natively, bf16.

    python benchmarks/bench_viewer.py                        # 512x512 at x30 of examples/coffee_lr.png
    python benchmarks/bench_viewer.py --side 256 --scale 12 --repeats 5

Reports the one-off encoding of the input, then per precision the best and median of --repeats
region renders (inference/region.py: queries only, the latent grid kept) and one request through
the viewer's HTTP server (parse, render, PNG encoding, loopback transfer), all in this process.
"""
import argparse
import os
import statistics
import sys
import threading
import time
import urllib.request
from argparse import Namespace
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import viewer  # noqa: E402
from cpu_info import cpu_kind  # noqa: E402
from inference.region import Region, region_output_size  # noqa: E402
from utils.precision import native_bf16  # noqa: E402


def centre_region(out_hw, side: int) -> Region:
    """A side x side region (smaller if the output is) at the output's centre."""
    h, w = min(side, out_hw[0]), min(side, out_hw[1])
    return Region((out_hw[0] - h) // 2, (out_hw[1] - w) // 2, h, w)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--input', default=str(REPO / 'examples' / 'coffee_lr.png'))
    p.add_argument('--model', default=None, help='checkpoint (default: the bundled model)')
    p.add_argument('--side', type=int, default=512)
    p.add_argument('--scale', type=float, default=30)
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args()
    print(cpu_kind())
    cli = Namespace(input=args.input, model=[args.model] if args.model else None, force=False, gpu='cpu',
                    window='auto', tile=512, bsize=30000, port=0, host='127.0.0.1', precision='fp32', verbose=False)
    sources, image, device = viewer.load_sources(cli)
    model = sources[0]
    out_hw = region_output_size(model.in_hw, args.scale)
    region = centre_region(out_hw, args.side)
    start = time.perf_counter()
    model.encode()
    print(f'input {model.in_hw[0]}x{model.in_hw[1]}, {model.name}: encoded in {time.perf_counter() - start:.2f} s; '
          f'region {region.height}x{region.width} of the {out_hw[0]}x{out_hw[1]} output (x{args.scale:g})')

    server = viewer.make_server(cli, sources, Path(args.input).name, b'', device)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = (f'http://127.0.0.1:{server.server_address[1]}/render?model=0&scale={args.scale}&x={region.left}'
           f'&y={region.top}&w={region.width}&h={region.height}')
    precisions = ['fp32'] + (['bf16'] if native_bf16(device) else [])
    for precision in precisions:
        model.render(args.scale, region, precision)  # warm-up: the decoder's projection, bf16 casts
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model.render(args.scale, region, precision)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        with urllib.request.urlopen(f'{url}&precision={precision}') as r:
            size = len(r.read())
        http = time.perf_counter() - start
        mpx = region.height * region.width / 1e6
        print(f'{precision}: region best {min(times):.2f} s, median {statistics.median(times):.2f} s '
              f'({mpx / min(times):.2f} Mpixel/s); through HTTP {http:.2f} s ({size / 1e6:.2f} MB PNG)')
    server.server_close()
    if not native_bf16(device):
        print('bf16: skipped (no native bf16 on this device)')


if __name__ == '__main__':
    main()
