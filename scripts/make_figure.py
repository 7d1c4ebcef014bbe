"""The README's picture: a crop of examples/coffee_lr.png rendered x30 by bicubic (left) and by
a LIIF model (right), side by side.

    python scripts/make_figure.py [--model CKPT] [--out docs/x30-bicubic-vs-liif.jpg]
"""
import os
import sys
import tempfile

from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
import demo  # noqa: E402
from utils.errors import ArgumentParser, run_cli  # noqa: E402
from utils.files import check_output  # noqa: E402
from utils.images import write_image  # noqa: E402

CROP = (52, 20, 84, 52)  # (left, top, right, bottom) of the 64x96 (HxW) input: cup rim and spoon
SCALE = 30
GAP = 12


def main() -> None:
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--input', default=os.path.join(REPO, 'examples', 'coffee_lr.png'))
    p.add_argument('--model', default=None, help='checkpoint (default: the bundled model)')
    p.add_argument('--out', default=os.path.join(REPO, 'docs', 'x30-bicubic-vs-liif.jpg'))
    args = p.parse_args()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    check_output(args.out, {'--input image': args.input, '--model checkpoint': args.model or demo.DEFAULT_MODEL}, '--out')
    crop = Image.open(args.input).convert('RGB').crop(CROP)
    size = (crop.width * SCALE, crop.height * SCALE)
    with tempfile.TemporaryDirectory() as tmp:
        crop.save(os.path.join(tmp, 'crop.png'))
        argv = ['--input', os.path.join(tmp, 'crop.png'), '--scale', str(SCALE),
                '--output', os.path.join(tmp, 'liif.png')]
        demo.main(argv + (['--model', args.model] if args.model else []))
        liif = Image.open(os.path.join(tmp, 'liif.png')).convert('RGB')
    bicubic = crop.resize(size, Image.BICUBIC)
    fig = Image.new('RGB', (2 * size[0] + GAP, size[1]), (255, 255, 255))
    fig.paste(bicubic, (0, 0))
    fig.paste(liif, (size[0] + GAP, 0))
    write_image(fig, args.out, quality=90)
    print(f'{args.out}: bicubic | LIIF, x{SCALE} of a {crop.width}x{crop.height} crop')


if __name__ == '__main__':
    run_cli(main)
