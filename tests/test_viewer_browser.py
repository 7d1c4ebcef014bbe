"""The viewer in a real browser (Debian's Chromium, headless, driven by Playwright): the page loads,
zooms in steps from x1 past x30 with the wheel, pans by dragging, switches to the swipe view, and
each time every pane shows exactly the region API's pixels for what it displays. A screenshot is
kept under the test's tmp folder (its path is printed).

Without Playwright or Chromium the test is skipped, saying which is missing; with
VIEWER_BROWSER_REQUIRED=1 (set by .ci/run) it fails instead.
"""
import base64
import io
import os
import urllib.request

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from script_loader import load_script
from tiny import liif_spec, tiny_checkpoint

browser = load_script('scripts/browser.py', 'browser')
BACKGROUND = (0x20, 0x21, 0x24)  # the panes' colour where the image is not


def need(what: str) -> None:
    if os.environ.get('VIEWER_BROWSER_REQUIRED') == '1':
        pytest.fail(f'{what}, and VIEWER_BROWSER_REQUIRED=1')
    pytest.skip(what)


@pytest.fixture(scope='module')
def page(tmp_path_factory):
    """The viewer (a tiny LIIF and bicubic on a 48x64 photo, fp32) open in headless Chromium:
    (page, base address)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need('playwright is not installed (pip install -r requirements-test.txt)')
    executable = browser.chromium_path()
    if executable is None:
        need('no Chromium found (apt-get install chromium, or set CHROMIUM)')
    root = tmp_path_factory.mktemp('browser')
    ckpt = root / 'tiny.pth'
    tiny_checkpoint(ckpt, liif_spec(hidden=(16,)))
    inp = root / 'photo.png'
    Image.fromarray(skdata.coffee()).resize((64, 48), Image.BICUBIC).save(inp)
    proc, url = browser.start_viewer(['--input', str(inp), '--model', str(ckpt), '--precision', 'fp32'])
    try:
        with sync_playwright() as pw:
            chromium, pg = browser.launch(pw, executable)
            errors = []
            pg.on('pageerror', lambda e: errors.append(str(e)))
            pg.goto(url)
            wait_idle(pg)
            yield pg, url.rstrip('/')
            chromium.close()
            assert errors == []
    finally:
        assert browser.stop_viewer(proc) == 0


def wait_idle(pg) -> dict:
    """Wait until the view has settled and every request is answered; the view's state."""
    pg.wait_for_function('() => window.viewer && window.viewer.state().idle', timeout=120_000)
    return pg.evaluate('() => window.viewer.state()')


def pane_pixels(pg, i: int) -> np.ndarray:
    """Pane i's canvas as uint8 (H, W, 3)."""
    data_url = pg.evaluate(f'() => window.viewer.panePNG({i})')
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(',', 1)[1]))).convert('RGB'))


def region_api(base: str, key: str, state: dict, clip: dict) -> tuple[np.ndarray, tuple[int, int]]:
    """What the region API renders for the output pixels a pane's clip shows: (pixels, top-left
    of that region in canvas pixels)."""
    h, w = state['grid']
    x0, y0 = max(0, state['ox'] + clip['x']), max(0, state['oy'] + clip['y'])
    x1, y1 = min(w, state['ox'] + clip['x'] + clip['w']), min(h, state['oy'] + clip['y'] + clip['h'])
    url = (f"{base}/render?model={key}&scale={state['S']}&x={x0}&y={y0}&w={x1 - x0}&h={y1 - y0}"
           f"&precision={state['precision']}")
    with urllib.request.urlopen(url) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())).convert('RGB')), (y0 - state['oy'], x0 - state['ox'])


def assert_panes_show_the_regions(pg, base: str, state: dict) -> None:
    """Every layer of every pane shows, pixel for pixel (within one level), the region API's
    render of what it displays, and the background where the image is not."""
    assert float(state['ox']).is_integer() and float(state['oy']).is_integer()
    for i, pane in enumerate(state['panes']):
        shown = pane_pixels(pg, i).astype(int)
        for layer in pane['layers']:
            want, (top, left) = region_api(base, layer['key'], state, layer['clip'])
            got = shown[top:top + want.shape[0], left:left + want.shape[1]]
            assert got.shape == want.shape
            diff = np.abs(got - want.astype(int))
            # Tiles and one region compute the same pixels: bicubic bit for bit, a model from the same
            # coordinates bit for bit (a level may flip with the decoder's batch size).
            flips = 0 if layer['key'] == 'bicubic' else 1e-3
            assert diff.max() <= 1 and (diff > 0).mean() <= flips, (layer['key'], state['S'], diff.max())
            c = layer['clip']
            outside = np.ones(shown.shape[:2], bool)
            outside[top:top + want.shape[0], left:left + want.shape[1]] = False
            outside[:, :c['x']] = outside[:, c['x'] + c['w']:] = False
            assert (shown[outside] == BACKGROUND).all()
            scale = f"×{state['S']:.2f}"
            assert scale in layer['label'] and ' s (server ' in layer['label'] or 'cached' in layer['label'], layer['label']


def test_zoom_in_steps_from_x1_past_x30(page, tmp_path):
    pg, base = page
    pg.keyboard.press('1')  # one output pixel per input pixel
    state = wait_idle(pg)
    assert state['S'] == 1 and state['grid'] == [48, 64] and len(state['panes']) == 2
    assert [p['layers'][0]['key'] for p in state['panes']] == ['0', 'bicubic']
    assert_panes_show_the_regions(pg, base, state)
    cw, ch = state['canvas']
    seen = [1]
    while seen[-1] < 30:
        pg.mouse.move(cw / 2 + 17, ch / 2 + 60)  # over the left pane, off-centre
        pg.mouse.wheel(0, -500)                  # one step: x e^0.75 (2.1)
        state = wait_idle(pg)
        assert state['S'] > seen[-1]
        assert 'tiny (LIIF) · fp32 · ×' in state['panes'][0]['layers'][0]['label']
        assert_panes_show_the_regions(pg, base, state)
        seen.append(state['S'])
    assert len(seen) >= 5 and seen[-1] >= 30
    shot = tmp_path / 'viewer.png'
    pg.screenshot(path=str(shot))
    print(f'screenshot: {shot}')
    assert Image.open(shot).size == (960, 540)


def test_drag_pans_and_the_page_answers_while_rendering(page):
    pg, base = page
    before = wait_idle(pg)
    pg.mouse.move(300, 300)
    pg.mouse.down()
    pg.mouse.move(200, 250, steps=5)
    pg.mouse.up()
    state = wait_idle(pg)
    assert (state['ox'], state['oy']) == (before['ox'] + 100, before['oy'] + 50)
    assert_panes_show_the_regions(pg, base, state)
    # Zoom out, then, while those renders are in flight, zoom again: the page takes the input at
    # once (the view changes) and ends showing the final zoom exactly.
    pg.mouse.wheel(0, 433)  # to a scale not rendered before
    pg.wait_for_function('() => window.viewer.state().inflight > 0', timeout=30_000)
    s_busy = pg.evaluate('() => window.viewer.state().S')
    pg.mouse.wheel(0, 300)
    assert pg.evaluate('() => window.viewer.state().S') < s_busy
    state = wait_idle(pg)
    assert_panes_show_the_regions(pg, base, state)


def test_swipe_view_shows_two_sources_split_at_the_divider(page):
    pg, base = page
    pg.select_option('#mode', 'swipe')
    state = wait_idle(pg)
    (pane,) = state['panes']
    left, right = pane['layers']
    assert (left['key'], right['key']) == ('0', 'bicubic')
    assert left['clip']['w'] + right['clip']['w'] == state['canvas'][0] and right['clip']['x'] == left['clip']['w']
    assert_panes_show_the_regions(pg, base, state)
    pg.select_option('#mode', 'side')
    wait_idle(pg)
