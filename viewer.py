"""A continuous-zoom viewer: an image upscaled by each model (and bicubic), side by side, at any zoom.

    python viewer.py --input lr.png                                   # the bundled model and bicubic
    python viewer.py --input lr.png --model a.pth --model b.pth --port 8000

Open the printed address (http://127.0.0.1:8000/): wheel or pinch zooms from x1 to x50, dragging
pans; each model and bicubic is a pane (side by side, or two of them with a swipe divider). Only
the visible output pixels are rendered, at the current zoom, a quarter-scale preview first. The
server listens on 127.0.0.1 only (--host to change that: it has no authentication); Ctrl-C stops
it. The page (viewer_page/) is static files, with no build step and nothing from the network.

Region API (what the page uses; scripts and tests can call it):

    GET /render?model=K&scale=S&x=X&y=Y&w=W&h=H[&precision=bf16]

returns a PNG of the output rows [Y, Y+H) and columns [X, X+W) of the input upscaled by S (the
output grid of demo.py --scale S), K the model's index in --model order or `bicubic`; precision
fp32 (default) or bf16. A region outside the output, over 1,048,576 pixels, an unknown model or a
malformed number is HTTP 400 with one line. GET /info describes the input and the models.
"""
import argparse
import errno
import io
import json
import re
import select
import signal
import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Sequence, Union
from urllib.parse import parse_qsl, urlsplit

import torch
from PIL import Image

from demo import DEFAULT_MODEL, MAX_INPUT_MEGAPIXELS
from inference.region import MAX_REGION_PIXELS, MAX_SIDE, BicubicRegions, ModelRegions, Region
from inference.render import Cancelled
from inference.upscale import Upscaler
from inference.window import resolve_window
from utils.errors import ArgumentParser, UserError, run_cli
from utils.images import LoadedImage, compose, read_image
from utils.precision import PRECISIONS, native_bf16

PAGE = Path(__file__).resolve().parent / 'viewer_page'
STATIC = {'/': 'index.html', '/index.html': 'index.html', '/viewer.js': 'viewer.js',
          '/tiles.js': 'tiles.js', '/viewer.css': 'viewer.css'}
TYPES = {'.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
         '.css': 'text/css; charset=utf-8'}
# The page may load only its own files and the images it renders: nothing from the network.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
RENDER_PARAMS = ('model', 'scale', 'x', 'y', 'w', 'h', 'precision')
_INT = re.compile(r'[0-9]{1,9}')
_REAL = re.compile(r'[0-9]{1,12}(\.[0-9]{0,12})?([eE][-+]?[0-9]{1,3})?|\.[0-9]{1,12}([eE][-+]?[0-9]{1,3})?')
Source = Union[ModelRegions, BicubicRegions]


def parse_render_query(query: str, n_models: int) -> tuple[str, float, Region, str]:
    """The query string of /render -> (model key: an index or 'bicubic', scale, region, precision).
    Every parameter once, numbers in plain decimal; a UserError names the first one that is wrong."""
    pairs = parse_qsl(query, keep_blank_values=True)
    params = {}
    for name, value in pairs:
        if name not in RENDER_PARAMS:
            raise UserError(f'unknown parameter {name!r}; /render takes {", ".join(RENDER_PARAMS)}')
        if name in params:
            raise UserError(f'parameter {name!r} given twice')
        params[name] = value
    missing = [n for n in RENDER_PARAMS[:-1] if n not in params]
    if missing:
        raise UserError(f'missing parameter {missing[0]!r}; /render needs model, scale, x, y, w, h')
    model = params['model']
    if model != 'bicubic' and not (_INT.fullmatch(model) and int(model) < n_models):
        raise UserError(f'unknown model {model!r}: expected bicubic or an index 0..{n_models - 1} (in --model order)')
    if not _REAL.fullmatch(params['scale']):
        raise UserError(f"scale must be a positive decimal number (e.g. 2.5), got {params['scale']!r}")
    ints = {}
    for name in ('x', 'y', 'w', 'h'):
        if not _INT.fullmatch(params[name]):
            raise UserError(f'{name} must be a non-negative integer (output pixels), got {params[name]!r}')
        ints[name] = int(params[name])
    precision = params.get('precision', 'fp32')
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return model, float(params['scale']), Region(ints['y'], ints['x'], ints['h'], ints['w']), precision


def peer_closed(sock: socket.socket) -> bool:
    """Whether the client has closed the connection (a fetch the page aborted): the socket reads
    as end-of-file without blocking."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b''
    except (OSError, ValueError):
        return True


class ViewerServer(ThreadingHTTPServer):
    """The viewer's HTTP server: one input image, its sources (models, then bicubic), and a lock
    that runs one model render at a time (two renders on two cores only slow each other down;
    bicubic regions and the page's files are served meanwhile)."""
    daemon_threads = True

    def __init__(self, address: tuple[str, int], image_name: str, input_png: bytes, sources: Sequence[Source],
                 default_precision: str, device: torch.device, verbose: bool = False):
        self.image_name, self.input_png, self.sources = image_name, input_png, list(sources)
        self.default_precision, self.device, self.verbose = default_precision, device, verbose
        self.render_lock = threading.Lock()
        self.stopping = threading.Event()
        self.address_family = socket.AF_INET6 if ':' in address[0] else socket.AF_INET
        super().__init__(address, ViewerHandler)

    def source(self, key: str) -> Source:
        """The source of a parsed model key: an index into the models, or the bicubic one."""
        return self.sources[-1] if key == 'bicubic' else self.sources[int(key)]

    def info(self) -> dict:
        """What the page needs to know: the input, the sources and the limits."""
        h, w = self.sources[-1].in_hw
        return {'input': {'name': self.image_name, 'height': int(h), 'width': int(w)},
                'sources': [{'key': 'bicubic' if isinstance(s, BicubicRegions) else str(i), 'name': s.name}
                            for i, s in enumerate(self.sources)],
                'precision': {'default': self.default_precision, 'bf16_native': native_bf16(self.device)},
                'max_region_pixels': MAX_REGION_PIXELS, 'max_side': MAX_SIDE}

    def allowed_host(self, host: Optional[str]) -> bool:
        """Whether a request's Host header names this server on a loopback name: a page of another
        site whose name resolves to 127.0.0.1 (DNS rebinding) must not read the renders. Any Host
        passes when --host opened the server beyond loopback."""
        addr, port = self.server_address[:2]
        if not is_loopback(addr):
            return True
        names = {f'127.0.0.1:{port}', f'localhost:{port}', f'[::1]:{port}'}
        if port == 80:
            names |= {'127.0.0.1', 'localhost', '[::1]'}
        return host is not None and host.lower() in names

    def encode_all(self) -> None:
        """Encode the input with every model, in --model order, before the page asks (a thread)."""
        for source in self.sources:
            if self.stopping.is_set():
                return
            if isinstance(source, ModelRegions):
                with self.render_lock:
                    try:
                        source.encode()
                    except Exception as e:  # noqa: BLE001 - reported again, as one line, by its first region
                        print(f'note: encoding for {source.name} failed ({e})', file=sys.stderr)


def is_loopback(host: str) -> bool:
    """Whether a bound address is a loopback one (127.0.0.0/8 or ::1)."""
    return host.startswith('127.') or host in ('::1', 'localhost')


class ViewerHandler(BaseHTTPRequestHandler):
    """GET only: the page's files, /info, /input.png and /render. Errors are one line of text."""
    protocol_version = 'HTTP/1.1'  # keep-alive: the page's tiles reuse a few connections
    server: ViewerServer
    timeout = 120

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        if not self.server.allowed_host(self.headers.get('Host')):
            return self.send_text(403, f"error: host {self.headers.get('Host')!r} is not this viewer's address")
        url = urlsplit(self.path)
        if url.path in STATIC:
            name = STATIC[url.path]
            return self.send_bytes(200, (PAGE / name).read_bytes(), TYPES[Path(name).suffix])
        if url.path == '/info':
            return self.send_bytes(200, json.dumps(self.server.info()).encode(), 'application/json')
        if url.path == '/input.png':
            return self.send_bytes(200, self.server.input_png, 'image/png')
        if url.path == '/render':
            return self.render(url.query)
        self.send_text(404, f'error: no such page {url.path!r}')

    def render(self, query: str) -> None:
        """/render: parse, render (one model at a time; skipped when the page has given it up),
        answer a PNG with the seconds it took in X-Render-Seconds."""
        server = self.server

        def cancelled() -> bool:
            return server.stopping.is_set() or peer_closed(self.connection)
        try:
            key, scale, region, precision = parse_render_query(query, len(server.sources) - 1)
            source = server.source(key)
            start = time.perf_counter()
            if isinstance(source, BicubicRegions):
                img = source.render(scale, region, precision)
            else:
                with server.render_lock:
                    if cancelled():
                        self.close_connection = True
                        return
                    start = time.perf_counter()
                    img = source.render(scale, region, precision, cancelled=cancelled)
            seconds = time.perf_counter() - start
        except UserError as e:
            return self.send_text(400, f'error: {e}')
        except Cancelled:
            self.close_connection = True
            return
        except Exception as e:  # noqa: BLE001 - a bug or a resource limit: one line to the page, the trace here
            traceback.print_exc()
            return self.send_text(500, f'error: the render failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})')
        png = encode_png(img)
        self.send_bytes(200, png, 'image/png', {'X-Render-Seconds': f'{seconds:.4f}'})

    def send_bytes(self, status: int, body: bytes, ctype: str, headers: Optional[dict] = None) -> None:
        """One complete response (length known, never cached: a restarted viewer may serve other
        models under the same addresses)."""
        self.send_response(status)
        self.send_header('Content-Type', ctype)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Cache-Control', 'no-store')
        self.send_header('Content-Security-Policy', CSP)
        self.send_header('X-Content-Type-Options', 'nosniff')
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def send_text(self, status: int, line: str) -> None:
        self.send_bytes(status, (line + '\n').encode(), 'text/plain; charset=utf-8')

    def do_POST(self) -> None:  # noqa: N802
        self.send_text(405, 'error: the viewer answers GET only')

    do_PUT = do_DELETE = do_PATCH = do_POST

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - http.server's signature
        if self.server.verbose:
            super().log_message(format, *args)


def encode_png(img: Image.Image) -> bytes:
    """A PIL image as PNG bytes at zlib level 1: a region is sent once over loopback, where speed
    matters more than size."""
    buf = io.BytesIO()
    img.save(buf, format='PNG', compress_level=1)
    return buf.getvalue()


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(description='A continuous-zoom viewer: an image upscaled by each model and bicubic, in the browser.')
    p.add_argument('--input', required=True, help='the image to look at')
    p.add_argument('--model', action='append', help='a checkpoint; repeat for several panes (default: '
                   f'{DEFAULT_MODEL.relative_to(DEFAULT_MODEL.parents[1])})')
    p.add_argument('--port', type=int, default=8000, help='TCP port (default 8000; 0: any free port)')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to listen on (default 127.0.0.1: this machine only; the viewer has no '
                        'authentication, so anything else exposes the image and the models)')
    p.add_argument('--gpu', default=None, help="GPU index, or 'cpu' (default: CUDA if present)")
    p.add_argument('--precision', default='auto', choices=('auto', 'fp32', 'bf16'),
                   help="the page's initial decoder precision (a toggle on the page): auto = bf16 where "
                        'the device computes it natively, else fp32')
    p.add_argument('--bsize', type=int, default=30000, help='queries per decoder call')
    p.add_argument('--tile', type=int, default=512,
                   help='encode inputs larger than TILE x TILE pixels in overlapping tiles (0: never)')
    p.add_argument('--window', default='auto', help="mirror-pad to the encoder's window (SwinIR), as demo.py")
    p.add_argument('--force', action='store_true', help=f'allow inputs over {MAX_INPUT_MEGAPIXELS} megapixels')
    p.add_argument('--verbose', action='store_true', help='log every request')
    return p


def load_sources(args: argparse.Namespace) -> tuple[list[Source], LoadedImage, torch.device]:
    """The input (checked as demo.py checks it) and one region source per --model, then bicubic."""
    image = read_image(args.input, allow_huge=args.force, max_megapixels=None if args.force else MAX_INPUT_MEGAPIXELS,
                       hint='; pass --force to read it anyway')
    sources: list[Source] = []
    device = None
    for path in args.model or [None]:
        up = Upscaler.load(path, args.gpu, window=args.window, tile=args.tile,
                           bsize=args.bsize)
        name = Path(path).stem if path is not None else DEFAULT_MODEL.stem
        sources.append(ModelRegions(up, image, f'{name} ({type(up.model).__name__})'))
        device = up.device
    sources.append(BicubicRegions(image))
    return sources, image, device


def make_server(args: argparse.Namespace, sources: Sequence[Source], image_name: str, input_png: bytes,
                device: torch.device) -> ViewerServer:
    """Bind the server; a port in use or an address that cannot be bound is one UserError."""
    precision = args.precision
    if precision == 'auto':
        precision = 'bf16' if native_bf16(device) else 'fp32'
    try:
        return ViewerServer((args.host, args.port), image_name, input_png, sources, precision, device, args.verbose)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f'port {args.port} on {args.host} is in use (another viewer?); pass --port N, '
                            'or --port 0 for any free port') from None
        raise UserError(f'cannot listen on {args.host}:{args.port} ({e.strerror or e})') from None


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Parse argv, load the input and the models, serve until Ctrl-C (or SIGTERM), then close the
    port and return (exit status 0). Mistakes raise UserError before anything listens."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UserError(f'--port must be from 0 to 65535, got {args.port}')
    if args.bsize < 1:
        raise UserError(f'--bsize must be at least 1, got {args.bsize}')
    resolve_window(args.window, None)  # a malformed --window fails before any work
    sources, image, device = load_sources(args)
    input_png = encode_png(compose(image.rgb, image.alpha, image.gray))
    server = make_server(args, sources, Path(args.input).name, input_png, device)
    host, port = server.server_address[:2]
    shown = f'[{host}]' if ':' in host else host
    models = ', '.join(s.name for s in sources[:-1])
    print(f'viewer: http://{shown}:{port}/  ({Path(args.input).name}: {models}, bicubic; Ctrl-C stops)', flush=True)
    if not is_loopback(host):
        print(f'note: listening on {host}, beyond this machine; the viewer has no authentication', file=sys.stderr)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # even when started with SIGINT ignored (a background job)
    threading.Thread(target=server.encode_all, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()  # renders in flight stop at their next chunk
        server.server_close()
        # Let a render finish its chunk before the interpreter goes (torch must not run at exit).
        if server.render_lock.acquire(timeout=10):
            server.render_lock.release()
    print('viewer: stopped', flush=True)


if __name__ == '__main__':
    run_cli(main)
