"""`donkey serve` end to end in a real headless browser (Debian's chromium via Playwright).

The server runs as `python -m donkey serve` on a free loopback port with the bundled model;
the browser uploads the bundled sample, clicks Animate, waits for the result and downloads it.
Every request the page makes is checked to stay on 127.0.0.1.
Set DONKEY_SERVE_SCREENSHOT=path to also save a screenshot of the page with its result.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest

from donkey.data.media import read_frames
from tests.conftest import ROOT

SAMPLE = ROOT / "donkey" / "assets" / "sample"


def _bundled_size() -> int:
    from donkey.model.checkpoint import load_checkpoint
    from donkey.runtime.loader import DEFAULT_MODEL

    return load_checkpoint(DEFAULT_MODEL).model_config.image_size


_BROWSERS = (
    "/usr/lib/chromium/chromium",  # Debian's binary (the /usr/bin/chromium wrapper is a script)
    "chromium",
    "chromium-browser",
    "google-chrome",
)


def _find_browser() -> str | None:
    for name in _BROWSERS:
        found = (
            shutil.which(name)
            if not os.path.isabs(name)
            else (name if os.access(name, os.X_OK) else None)
        )
        if found:
            return found
    return None


def _needs_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return pytest.mark.skip(
            reason="Playwright for Python is not installed (pip install -e '.[dev]')"
        )
    try:
        import gradio  # noqa: F401
    except ImportError:
        return pytest.mark.skip(reason="Gradio is not installed (pip install 'donkey[web]')")
    if _find_browser() is None:
        return pytest.mark.skip(
            reason="no chromium found (apt-get install -y chromium; `make test` does it as root)"
        )
    return pytest.mark.slow


pytestmark = _needs_browser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with open(log, "w") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "donkey", "serve", "--port", str(port)],
            cwd=ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 240
    try:
        while "serving " not in log.read_text():
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start in 240 s:\n{log.read_text()}")
            time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    url, _ = server
    outside: list[str] = []

    def only_loopback(route):
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=_find_browser(),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", only_loopback)
        page.goto(url, wait_until="domcontentloaded")
        page.wait_for_selector("#animate", timeout=60_000)
        yield page, outside
        browser.close()


def _fetch(page, src: str, target: Path) -> Path:
    """Downloads what the page links to, through the browser's own session."""
    response = page.request.get(src)
    assert response.ok, f"{src}: HTTP {response.status}"
    target.write_bytes(response.body())
    return target


def test_upload_animate_download(browser_page, tmp_path):
    page, outside = browser_page
    page.set_input_files("#source-upload input[type=file]", str(SAMPLE / "source.png"))
    page.set_input_files("#driving-upload input[type=file]", str(SAMPLE / "driving.gif"))
    # Previews are what the model will see: the bundled model's size.
    size = _bundled_size()
    page.wait_for_selector("#source-view img", timeout=60_000)
    page.wait_for_selector("#driving-view img", timeout=60_000)

    started = time.perf_counter()
    page.click("#animate")
    link = page.wait_for_selector("#result-file a[href]", timeout=180_000)
    page.wait_for_selector("#result-view img", timeout=30_000)
    print(f"click -> result in the page: {time.perf_counter() - started:.2f} s")

    result = read_frames(_fetch(page, link.get_attribute("href"), tmp_path / "result.gif"))
    driving = read_frames(SAMPLE / "driving.gif")
    assert result.frames.shape == (len(driving.frames), size, size, 3)
    assert abs(result.fps - driving.fps) < 0.5
    # Motion transfer moves pixels: the frames are not all the same.
    assert np.abs(result.frames[1:].astype(int) - result.frames[0]).mean() > 1.0

    shown = page.get_attribute("#result-view img", "src")
    preview = read_frames(_fetch(page, shown, tmp_path / "preview.gif"))
    assert preview.frames.shape == (len(driving.frames), size, 3 * size, 3)
    status = page.inner_text("#status")
    assert f"{len(driving.frames)} frames at {size}x{size} px" in status

    screenshot = os.environ.get("DONKEY_SERVE_SCREENSHOT")
    if screenshot:
        page.mouse.move(0, 0)
        page.screenshot(path=screenshot, full_page=True)
    assert outside == [], f"the page tried to reach beyond 127.0.0.1: {outside}"


def test_bad_upload_shows_one_line(browser_page, tmp_path):
    page, outside = browser_page
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector("#animate", timeout=60_000)
    broken = tmp_path / "broken clip.gif"
    broken.write_bytes(b"GIF89a this is not really a gif")
    page.set_input_files("#driving-upload input[type=file]", str(broken))
    toast = page.wait_for_selector(".toast-body", timeout=60_000)
    text = toast.inner_text()
    assert "broken clip.gif: " in text
    assert "corrupt" in text or "truncated" in text or "cannot" in text
    assert "Traceback" not in page.content()
    assert "/tmp" not in text  # the upload's file name, not the server's path to it
    assert outside == []


def test_bundled_examples(browser_page, tmp_path):
    page, outside = browser_page
    page.reload(wait_until="domcontentloaded")
    page.wait_for_selector("#animate", timeout=60_000)
    page.get_by_text("winged-hopper", exact=True).click()
    page.get_by_text("hop", exact=True).click()
    page.wait_for_selector("#source-view img", timeout=60_000)
    page.wait_for_selector("#driving-view img", timeout=60_000)
    page.get_by_label("mp4").check()
    page.click("#animate")
    link = page.wait_for_selector("#result-file a[href]", timeout=180_000)
    result = read_frames(_fetch(page, link.get_attribute("href"), tmp_path / "result.mp4"))
    size = _bundled_size()
    assert result.frames.shape == (20, size, size, 3)  # driving-hop.gif has 20 frames
    assert outside == []
