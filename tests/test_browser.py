"""The headless-Chromium driver the page tests use: it sees what a user would see, and it
keeps pages off the network (only loopback and local files load)."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.browser import BrowserError, artifact_dir

PAGE = """<!doctype html><html><head><title>t</title></head><body>
<button id="go" onclick="document.body.dataset.clicked = 'yes'">go</button>
<img src="http://example.com/pixel.png"><img src="/local.png">
<script>console.error("deliberate", 42);
window.later = new Promise(r => setTimeout(() => r(7), 50));</script></body></html>"""

#: a 1x1 PNG
PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
         "RU5ErkJggg==")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving PAGE and one small local PNG."""
    root = tmp_path_factory.mktemp("site")
    (root / "index.html").write_text(PAGE)
    (root / "local.png").write_bytes(base64.b64decode(PIXEL))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_a_page_on_loopback_loads_and_outside_requests_are_blocked_and_recorded(browser, site):
    page = browser.open(f"{site}/index.html")
    page.wait_for("document.images[0].complete && document.images[1].complete")
    assert page.eval("document.images[1].naturalWidth") == 1  # the loopback image loaded
    assert page.blocked_requests == ["http://example.com/pixel.png"]
    assert any("example.com/pixel.png" in f for f in page.failed_requests)
    assert "deliberate 42" in page.console_errors
    assert page.eval("window.later") == 7  # promises are awaited
    page.close()


def test_click_is_a_real_mouse_click_and_screenshots_are_png(browser, site):
    page = browser.open(f"{site}/index.html")
    assert page.eval("document.body.dataset.clicked") is None
    page.click("#go")
    assert page.wait_for("document.body.dataset.clicked") == "yes"
    shot = page.screenshot(artifact_dir() / "test_browser.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(BrowserError, match="no element matches '#missing'"):
        page.click("#missing")
    with pytest.raises(BrowserError, match="threw: ReferenceError"):
        page.eval("notDefinedAnywhere + 1")
    page.close()


def test_uncaught_exceptions_are_console_errors(browser, tmp_path):
    html = tmp_path / "x.html"
    html.write_text("<script>setTimeout(() => { throw new TypeError('late failure') }, 0);"
                    "setTimeout(() => { window.done = true }, 20)</script>")
    page = browser.open(html.as_uri())
    page.wait_for("window.done")
    assert any("TypeError: late failure" in e for e in page.console_errors), page.console_errors
    page.close()
