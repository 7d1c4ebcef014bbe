"""viewer.py without a browser: the region API answers exactly the library's regions, refuses every
malformed request in one line, serves only this machine by default, skips renders the page gave up,
and stops cleanly on Ctrl-C with its port freed."""
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

import faults
import viewer
from inference.region import Region
from script_loader import load_script
from tiny import liif_spec, tiny_checkpoint
from utils.errors import UserError

browser = load_script('scripts/browser.py', 'browser')


@pytest.fixture(scope='module')
def files(tmp_path_factory) -> dict:
    """A tiny random LIIF checkpoint and a 12x16 photo."""
    root = tmp_path_factory.mktemp('viewer')
    ckpt = root / 'tiny.pth'
    tiny_checkpoint(ckpt, liif_spec(hidden=(16,)))
    inp = root / 'photo.png'
    Image.fromarray(skdata.coffee()).resize((16, 12), Image.BICUBIC).save(inp)
    return {'ckpt': ckpt, 'input': inp}


@pytest.fixture(scope='module')
def server(files):
    """The viewer on a free loopback port, in this process: (server, port)."""
    args = viewer.build_parser().parse_args(['--input', str(files['input']), '--model', str(files['ckpt']),
                                             '--port', '0', '--precision', 'fp32'])
    sources, image, device = viewer.load_sources(args)
    srv = viewer.make_server(args, sources, 'photo.png', b'png', device)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def get(port: int, path: str, host: str = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of GET path."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
    conn.request('GET', path, headers={'Host': host} if host else {})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, dict(r.getheaders()), body


def png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


def test_render_is_the_librarys_region(server):
    srv, port = server
    for key, source in (('0', srv.sources[0]), ('bicubic', srv.sources[1])):
        status, headers, body = get(port, f'/render?model={key}&scale=7.3&x=30&y=20&w=40&h=25')
        assert status == 200 and headers['Content-Type'] == 'image/png'
        assert float(headers['X-Render-Seconds']) >= 0
        assert "default-src 'self'" in headers['Content-Security-Policy']
        want = np.asarray(source.render(7.3, Region(20, 30, 25, 40)))
        assert np.array_equal(png(body), want)
    status, _, body = get(port, '/render?model=0&scale=2&x=0&y=0&w=32&h=24&precision=bf16')
    assert status == 200 and png(body).shape == (24, 32, 3)


@pytest.mark.parametrize('query, message', [
    ('model=0&scale=2&x=0&y=0&w=33&h=1', 'outside the 24x32 output'),
    ('model=0&scale=2&x=0&y=24&w=1&h=1', 'outside the 24x32 output'),
    ('model=0&scale=400&x=0&y=0&w=1100&h=1000', 'over the budget of 1,048,576 per request'),
    ('model=1&scale=2&x=0&y=0&w=1&h=1', "unknown model '1': expected bicubic or an index 0..0"),
    ('model=-0&scale=2&x=0&y=0&w=1&h=1', "unknown model '-0'"),
    ('model=lanczos&scale=2&x=0&y=0&w=1&h=1', "unknown model 'lanczos'"),
    ('model=0&scale=nan&x=0&y=0&w=1&h=1', "scale must be a positive decimal number (e.g. 2.5), got 'nan'"),
    ('model=0&scale=inf&x=0&y=0&w=1&h=1', "got 'inf'"),
    ('model=0&scale=1e999&x=0&y=0&w=1&h=1', 'scale must be a positive finite number, got inf'),
    ('model=0&scale=0&x=0&y=0&w=1&h=1', 'scale must be a positive finite number, got 0.0'),
    ('model=0&scale=-2&x=0&y=0&w=1&h=1', "got '-2'"),
    ('model=0&scale=1_0&x=0&y=0&w=1&h=1', "got '1_0'"),
    ('model=0&scale=2&x=1.5&y=0&w=1&h=1', "x must be a non-negative integer (output pixels), got '1.5'"),
    ('model=0&scale=2&x=0&y=0&w=0&h=1', 'at least 1x1'),
    ('model=0&scale=2&x=0&y=0&w=99999999999&h=1', "w must be a non-negative integer"),
    ('model=0&scale=2&x=0&y=0&w=1', "missing parameter 'h'"),
    ('model=0&scale=2&x=0&y=0&w=1&h=1&x=2', "parameter 'x' given twice"),
    ('model=0&scale=2&x=0&y=0&w=1&h=1&z=1', "unknown parameter 'z'"),
    ('model=0&scale=2&x=0&y=0&w=1&h=1&precision=fp64', "precision must be one of fp32, bf16, fp16, got 'fp64'"),
    ('model=0&scale=2&x=0&y=0&w=1&h=1&precision=fp16', 'fp16 needs a CUDA device'),
    ('model=0&scale=5e6&x=0&y=0&w=1&h=1', 'at most 1,048,576 pixels a side'),
])
def test_bad_requests_are_400_with_one_line(server, query, message):
    status, headers, body = get(server[1], '/render?' + query)
    text = body.decode()
    assert status == 400 and headers['Content-Type'].startswith('text/plain')
    assert text.startswith('error: ') and text.count('\n') == 1 and message in text, text


def test_parse_render_query():
    assert viewer.parse_render_query('model=bicubic&scale=.5&x=1&y=2&w=3&h=4', 1) == \
        ('bicubic', 0.5, Region(2, 1, 4, 3), 'fp32')
    assert viewer.parse_render_query('h=4&w=3&y=2&x=1&scale=12.25e0&model=2&precision=bf16', 3) == \
        ('2', 12.25, Region(2, 1, 4, 3), 'bf16')
    with pytest.raises(UserError, match="unknown model '3'"):
        viewer.parse_render_query('model=3&scale=2&x=0&y=0&w=1&h=1', 3)


def test_info_page_and_other_paths(server, files):
    srv, port = server
    status, _, body = get(port, '/info')
    info = json.loads(body)
    assert status == 200 and info['input'] == {'name': 'photo.png', 'height': 12, 'width': 16}
    assert [s['key'] for s in info['sources']] == ['0', 'bicubic']
    assert info['sources'][0]['name'] == 'tiny (LIIF)' and info['precision']['default'] == 'fp32'
    for path in ('/', '/viewer.js', '/tiles.js', '/viewer.css'):
        status, headers, body = get(port, path)
        assert status == 200 and body == (viewer.PAGE / viewer.STATIC[path]).read_bytes()
    assert get(port, '/input.png')[2] == b'png'
    for path in ('/../viewer.py', '/viewer_page/index.html', '/favicon.ico', '/render/x'):
        status, _, body = get(port, path)
        assert status == 404 and body.decode().startswith('error: no such page')


def test_only_this_machines_names_are_served(server):
    """A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) cannot read renders."""
    port = server[1]
    for host in (f'localhost:{port}', f'127.0.0.1:{port}', f'[::1]:{port}'):
        assert get(port, '/info', host=host)[0] == 200
    status, _, body = get(port, '/info', host=f'evil.example:{port}')
    assert status == 403 and body.decode().strip() == f"error: host 'evil.example:{port}' is not this viewer's address"


def test_listens_on_loopback_by_default(server):
    assert viewer.build_parser().parse_args(['--input', 'x']).host == '127.0.0.1'
    assert server[0].server_address[0] == '127.0.0.1'


def test_peer_closed():
    a, b = socket.socketpair()
    assert not viewer.peer_closed(a)
    b.close()
    assert viewer.peer_closed(a)
    a.close()


def test_a_render_the_page_gave_up_is_skipped(server, monkeypatch):
    """A request whose connection is closed while it waits for the render lock is never rendered."""
    srv, port = server
    calls = []
    monkeypatch.setattr(srv.sources[0], 'render', lambda *a, **k: calls.append(a))
    with srv.render_lock:
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(f'GET /render?model=0&scale=30&x=0&y=0&w=300&h=300 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n'.encode())
        time.sleep(0.3)  # the handler is now waiting for the lock
        s.close()
    time.sleep(0.5)
    assert calls == []


def start_viewer(files, *extra) -> tuple[subprocess.Popen, int]:
    """viewer.py in its own process on a free port; returns it and the port once it listens,
    checking that it listens on 127.0.0.1."""
    proc, url = browser.start_viewer(['--input', str(files['input']), '--model', str(files['ckpt']), *extra])
    assert url.startswith('http://127.0.0.1:'), url
    return proc, int(url.split('127.0.0.1:')[1].rstrip('/'))


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_cleanly_and_frees_the_port(files, sig):
    proc, port = start_viewer(files)
    try:
        status, _, body = get(port, '/render?model=0&scale=3&x=0&y=0&w=8&h=8')
        assert status == 200
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.strip().endswith('viewer: stopped') and 'Traceback' not in err
    with socket.socket() as s:  # the port is free again
        s.bind(('127.0.0.1', port))


def one_line_error(argv, capsys) -> str:
    """viewer.main(argv) through run_cli: exit 2 and one line `error: ...` (returned)."""
    return faults.one_line_error(lambda: viewer.main([str(a) for a in argv]), capsys)


def test_mistakes_are_one_line_before_listening(files, tmp_path, capsys):
    inp, ckpt = files['input'], files['ckpt']
    assert 'input not found' in one_line_error(['--input', tmp_path / 'nope.png'], capsys)
    assert 'checkpoint' in one_line_error(['--input', inp, '--model', tmp_path / 'nope.pth'], capsys)
    assert 'cannot read input' in one_line_error(['--input', ckpt, '--model', ckpt], capsys)
    assert one_line_error(['--input', inp, '--model', ckpt, '--port', '70000'], capsys) == \
        'error: --port must be from 0 to 65535, got 70000'
    assert '--window expects' in one_line_error(['--input', inp, '--model', ckpt, '--window', 'x'], capsys)
    assert 'invalid choice' in one_line_error(['--input', inp, '--precision', 'fp64'], capsys)
    with socket.socket() as busy:
        busy.bind(('127.0.0.1', 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert one_line_error(['--input', inp, '--model', ckpt, '--port', port], capsys) == \
            f'error: port {port} on 127.0.0.1 is in use (another viewer?); pass --port N, or --port 0 for any free port'


def test_input_budget_as_demo(files, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(viewer, 'MAX_INPUT_MEGAPIXELS', 1e-4)
    err = one_line_error(['--input', files['input'], '--model', files['ckpt']], capsys)
    assert 'over the 0.0001-megapixel budget; pass --force to read it anyway' in err
    assert os.path.exists(files['input'])
