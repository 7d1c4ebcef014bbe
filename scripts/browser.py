"""Headless Chromium for the viewer's browser test and screenshots: the system's Chromium (Debian's
`chromium` package), driven by Playwright; Playwright's own browser download is not used.

    from browser import chromium_path, launch, start_viewer   # scripts/ on sys.path
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
# No first-run work, no background connections (this machine's network is closed), no GPU.
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--disable-sync', '--no-first-run', '--disable-quic']


def chromium_path() -> Optional[str]:
    """The Chromium to drive: $CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium; None if none."""
    for candidate in (os.environ.get('CHROMIUM'), shutil.which('chromium'), '/usr/bin/chromium'):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def launch(playwright, executable: str, width: int = 960, height: int = 540):
    """(browser, page): a headless Chromium from a playwright.sync_api handle (Playwright gives it a
    new, empty profile, removed on close) and a page of width x height CSS pixels at one device
    pixel each. The page's CSP is bypassed for Playwright's own scripts only."""
    browser = playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)
    context = browser.new_context(bypass_csp=True, viewport={'width': width, 'height': height}, device_scale_factor=1)
    return browser, context.new_page()


def start_viewer(args: Sequence[str]) -> tuple[subprocess.Popen, str]:
    """viewer.py with `args` (plus --port 0) in its own process; returns it and its address once it
    listens. Raises RuntimeError with the viewer's error if it does not start."""
    proc = subprocess.Popen([sys.executable, str(REPO / 'viewer.py'), *args, '--port', '0'], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith('viewer: http://'):
        proc.kill()
        raise RuntimeError(f'viewer.py did not start: {line}{proc.stderr.read()}'.strip())
    return proc, line.split()[1]


def stop_viewer(proc: subprocess.Popen) -> int:
    """Ctrl-C the viewer and wait for it; its exit status."""
    proc.send_signal(2)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    return proc.returncode
