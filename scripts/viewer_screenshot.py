"""A screenshot of the viewer (viewer.py) at a given zoom, taken in headless Chromium: the README's
picture of LIIF beside bicubic.

    python scripts/viewer_screenshot.py --input examples/coffee_lr.png --scale 12 --out docs/viewer-x12.jpg

Starts viewer.py (--model as often as it takes, default the bundled model), opens the page at
--scale centred on --centre (fractions of the input's height and width), waits until every pane
shows its exact render (twice: the second load's times exclude encoding the input), and writes the page (--size CSS pixels) as PNG or JPEG (--quality).
"""
import argparse
import io
import os
import sys
from pathlib import Path

from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import chromium_path, launch, start_viewer, stop_viewer  # noqa: E402
from utils.errors import UserError, run_cli  # noqa: E402
from utils.files import check_output  # noqa: E402
from utils.images import output_format, write_image  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--input', required=True)
    p.add_argument('--model', action='append', default=[])
    p.add_argument('--scale', type=float, default=12)
    p.add_argument('--centre', default='0.5,0.5', help='CY,CX: the view centre as fractions of the input')
    p.add_argument('--mode', default='side', choices=('side', 'swipe'))
    p.add_argument('--size', default='1200x560', help='WxH of the page in CSS pixels')
    p.add_argument('--out', required=True)
    p.add_argument('--quality', type=int, default=85)
    args = p.parse_args()
    try:
        cy, cx = (float(v) for v in args.centre.split(','))
        width, height = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise UserError(f'--centre expects CY,CX and --size WxH, got {args.centre!r} and {args.size!r}') from None
    check_output(args.out, {'input': args.input, **{f'model {m}': m for m in args.model}})
    fmt = output_format(args.out)
    executable = chromium_path()
    if executable is None:
        raise UserError('no Chromium found (apt-get install chromium, or set CHROMIUM)')
    from playwright.sync_api import sync_playwright  # a test requirement, needed by this script only
    models = [a for m in args.model for a in ('--model', m)]
    proc, url = start_viewer(['--input', args.input, *models, '--precision', 'fp32'])
    try:
        with sync_playwright() as pw:
            chromium, page = launch(pw, executable, width, height)
            idle = '() => window.viewer && window.viewer.state().idle'
            page.goto(f'{url}#s={args.scale:g}&cy={cy}&cx={cx}&mode={args.mode}')
            page.wait_for_function(idle, timeout=600_000)
            page.reload()  # again, with the input encoded: the times shown are the view's own
            page.wait_for_function(idle, timeout=600_000)
            shot = Image.open(io.BytesIO(page.screenshot())).convert('RGB')
            chromium.close()
    finally:
        stop_viewer(proc)
    write_image(shot, args.out, fmt, quality=args.quality)
    print(f'wrote {args.out}: {shot.height}x{shot.width} (HxW), {Path(args.out).stat().st_size / 1024:.0f} KB')


if __name__ == '__main__':
    run_cli(main)
