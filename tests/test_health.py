"""HTTP /health, /ready and /metrics of a running desk (loopback, port 0)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Content-Type"), err.read()


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("health"),
                     telemetry={"health": True, "health_port": 0})
    yield eng
    eng.stop()


def test_health_is_alive_and_ready_once_books_are_synced(desk):
    url = desk.desk.health.url
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    code, ctype, body = get(url + "/health")
    assert code == 200 and ctype == "application/json"
    assert json.loads(body)["status"] == "alive"
    wait_for(lambda: get(url + "/ready")[0] == 200, what="ready")
    ready = json.loads(get(url + "/ready")[2])
    assert ready == {"ready": True, "feeds": {"sim": True},
                     "books": {"sim:BTCUSDT": True, "sim:ETHUSDT": True}, "store": True}


def test_not_ready_when_a_book_is_missing(desk):
    core = desk.desk.core
    book = desk.desk.call(lambda: core.books.books[("sim", "ETHUSDT")])
    state = desk.desk.call(lambda: (book.clear(), desk.desk.state.readiness())[1])
    assert state["ready"] is False and state["books"]["sim:ETHUSDT"] is False


def test_unknown_paths_and_metrics(desk):
    url = desk.desk.health.url
    code, _, body = get(url + "/nope")
    assert code == 404 and b"/health, /ready" in body
    code, ctype, body = get(url + "/metrics")
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        assert code == 404 and b"flightdesk[otel]" in body
    else:
        assert code == 200 and ctype.startswith("text/plain")


def test_health_is_off_by_default(embedded_desk):
    assert embedded_desk().desk.health is None
