"""The dashboard in headless Chromium against a real ``flightdesk serve`` with tokens.

The browser reaches nothing but loopback (tests/browser.py fails and records any other
request); the desk is the default sim desk with a read token ``rt`` and a trade token
``tt``; ``flightdesk status`` (its own process, over Flight) is the judge of the kill switch.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from tests.browser import artifact_dir
from tests.fixtures.serve import start_serve, stop_serve

pytestmark = pytest.mark.e2e

TOKENS = {"FLIGHTDESK_FLIGHT__READ_TOKENS": '["rt"]', "FLIGHTDESK_FLIGHT__TRADE_TOKENS": '["tt"]',
          "FLIGHTDESK_VENUES__SIM__RATE": "300"}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    proc, uri, lines = start_serve(tmp_path_factory.mktemp("dashboard"), env=TOKENS)
    found = re.search(r"dashboard on (http://127\.0\.0\.1:\d+)/ ", "".join(lines))
    assert found, lines
    yield uri, found.group(1)
    stop_serve(proc)


def desk_status(uri):
    out = subprocess.run([sys.executable, "-m", "flightdesk", "status", "--json", "--url", uri,
                          "--token", "rt"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def enter_token(page, token):
    page.wait_for("!document.getElementById('token-form').hidden")
    page.eval(f"document.getElementById('token').value = {json.dumps(token)}")
    page.click("#token-save")
    page.wait_for("document.getElementById('token-form').hidden")


BID = "document.querySelector('#book tr[data-key=\"sim:BTCUSDT\"] .bid')?.textContent"


def test_dashboard_shows_live_quotes_and_fills_and_its_kill_switch_kills_the_desk(
        served, browser):
    uri, url = served
    page = browser.open(url + "/")
    try:
        enter_token(page, "rt")  # the desk has tokens: the page asks before showing data
        first = page.wait_for(BID, timeout=20)
        page.wait_for(f"{BID} && {BID} !== {json.dumps(first)}", timeout=20)  # live quotes
        page.wait_for("document.querySelectorAll('#fills tbody tr').length > 0", timeout=60)
        page.wait_for("document.querySelectorAll('#strategies tbody tr').length === 1")
        page.wait_for("(document.getElementById('price-chart').data || [])"
                      ".some(t => t.name === 'mid' && t.x.length > 5)", timeout=20)
        page.wait_for("(document.getElementById('pnl-chart').data || []).length > 0",
                      timeout=20)
        assert page.eval("document.getElementById('kill-state').textContent") == "off"
        page.screenshot(artifact_dir() / "dashboard.png")

        page.click("#kill")  # a read token: refused, and the page asks for a trade token
        page.wait_for("document.getElementById('token-why').textContent"
                      ".includes('needs a trade token')")
        assert desk_status(uri)["kill_switch"] is False
        enter_token(page, "tt")  # the kill switch goes through once it has one
        page.wait_for("document.getElementById('kill-state').textContent === 'ON'",
                      timeout=20)
        assert desk_status(uri)["kill_switch"] is True
        assert page.console_errors == []
        assert page.blocked_requests == []
        assert page.failed_requests == []
    finally:
        page.close()


def test_dashboard_files_are_the_desks_own_and_need_no_token(served, browser):
    """The page loads its script, style and plotly.js from the desk (no token, no CDN)."""
    _, url = served
    page = browser.open(url + "/")
    try:
        page.wait_for("typeof window.Plotly !== 'undefined'")
        scripts = page.eval("[...document.scripts].map(s => s.src)")
        assert scripts == [url + "/static/plotly.min.js", url + "/static/dashboard.js"]
        assert page.eval("document.querySelector('.no-charts').hidden") is True
        assert page.blocked_requests == [] and page.console_errors == []
    finally:
        page.close()
