"""The HTTP API of a running desk (loopback, port 0) against the same data over Flight.

The desk has tokens (read ``rt``, trade ``tt``) and writes the Parquet history, so every
read is compared with what a pyarrow Flight client gets; the HTTP client is the stdlib's.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core.errors import ConfigError
from flightdesk.core.flight.auth import TokenTable, check_bind
from flightdesk.core.http.server import bind
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

READ, TRADE = "rt", "tt"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("http"), 500.0,
                     telemetry={"health": True, "health_port": 0, "events_max_clients": 4},
                     flight={"read_tokens": [READ], "trade_tokens": [TRADE]},
                     store={"history": True})
    yield eng
    eng.stop()


@pytest.fixture(scope="module")
def flight(desk):
    client = fl.connect(desk.flight_uri)
    yield client
    client.close()


OPTS = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {READ}".encode())])


def call(desk, method, path, token=READ, body=None):
    """(status, headers, JSON body or raw bytes) of one request."""
    data = None if body is None else (body if isinstance(body, bytes) else
                                      json.dumps(body).encode())
    req = urllib.request.Request(desk.desk.health.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            status, headers, raw = err.code, err.headers, err.read()
    if headers.get("Content-Type", "").startswith("application/json"):
        return status, headers, json.loads(raw)
    return status, headers, raw


def get(desk, path, token=READ):
    status, _, body = call(desk, "GET", path, token)
    assert status == 200, (path, body)
    return body


def flight_rows(client, **ticket):
    reader = client.do_get(fl.Ticket(json.dumps(ticket).encode()), OPTS)
    return reader.read_all().to_pylist()


def action(client, name, body=None, token=TRADE):
    opts = fl.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
    raw = json.dumps(body).encode() if body is not None else b""
    return json.loads(next(client.do_action(fl.Action(name, raw), opts)).body.to_pybytes())


def nan_as_none(rows):
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in rows]


@contextlib.contextmanager
def quiet(desk):
    """Kill switch on (no new orders or fills), off again afterwards."""
    assert call(desk, "POST", "/kill", TRADE, {"on": True})[0] == 200
    desk.desk.store.flush()
    try:
        yield
    finally:
        assert call(desk, "POST", "/kill", TRADE, {"on": False})[0] == 200


@pytest.fixture(scope="module")
def history_end(desk):
    """A time before which the trades history is written and will not change."""
    rows = wait_for(lambda: get(desk, "/trades/BTCUSDT?limit=1")["trades"
                                                                 ] if _has_history(desk) else
                    None, timeout=30, what="trades in the history")
    return rows[0]["ts_event"]


def _has_history(desk):
    return (desk.desk.history_root / "trades").is_dir() and (
        desk.desk.history_root / "bars").is_dir()


# -- reads against Flight ---------------------------------------------------------------------
def test_trades_are_the_flight_history_newest_first(desk, flight, history_end):
    body = get(desk, f"/trades/BTCUSDT?limit=50&end={history_end}")
    want = flight_rows(flight, stream="trades", mode="history", symbols=["BTCUSDT"],
                       order="newest", limit=50, end=history_end)
    assert body["trades"] == want and len(want) == 50
    ts = [r["ts_event"] for r in body["trades"]]
    assert ts == sorted(ts, reverse=True) and ts[0] < history_end
    venue = get(desk, f"/trades/BTCUSDT?limit=5&venue=nowhere&end={history_end}")
    assert venue["trades"] == []


def test_ohlcv_is_the_flight_bars_history_of_one_interval(desk, flight, history_end):
    body = get(desk, f"/ohlcv/BTCUSDT?interval=1s&limit=5&end={history_end}")
    bars = [r for r in flight_rows(flight, stream="bars", mode="history", symbols=["BTCUSDT"],
                                   order="newest", end=history_end) if r["interval"] == "1s"]
    assert body["bars"] == bars[:5][::-1] and len(body["bars"]) == 5
    assert all(b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"]
               for b in body["bars"])


def test_symbols_are_the_venue_quotes_snapshot(desk, flight):
    body = get(desk, "/symbols/sim")
    snap = flight_rows(flight, stream="quotes", mode="snapshot")
    assert body["symbols"] == sorted(r["symbol"] for r in snap if r["venue"] == "sim")
    assert body["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert set(body["quotes"][0]) == set(snap[0])
    assert all(q["bid_px"] < q["ask_px"] for q in body["quotes"])
    status, _, err = call(desk, "GET", "/symbols/nowhere")
    assert status == 404 and err["error"] == "no venue 'nowhere'; venues are sim"


def test_positions_orders_fills_and_summary_match_flight(desk, flight):
    wait_for(lambda: get(desk, "/fills?limit=1")["fills"], what="a fill")
    with quiet(desk):
        pos = get(desk, "/positions")
        snap = flight_rows(flight, stream="positions", mode="snapshot")
        stable = ("strategy", "venue", "symbol", "qty", "avg_price", "realized_pnl", "fees")
        assert ([{k: p[k] for k in stable} for p in pos["positions"]]
                == [{k: p[k] for k in stable} for p in snap])
        threshold = [p for p in snap if p["strategy"] == "threshold"]
        assert pos["pnl"]["threshold"]["realized_pnl"] == pytest.approx(
            sum(p["realized_pnl"] for p in threshold))

        fills = get(desk, "/fills?limit=20")["fills"]
        assert fills == flight_rows(flight, stream="fills", mode="history", order="newest",
                                    limit=20)
        orders = get(desk, "/orders?limit=20")
        assert orders["recent"] == nan_as_none(flight_rows(
            flight, stream="orders", mode="history", order="newest", limit=20))
        assert orders["open"] == nan_as_none(flight_rows(flight, stream="orders",
                                                         mode="snapshot")) == []

        summary = get(desk, "/summary")
        every_fill = flight_rows(flight, stream="fills", mode="history")
        assert summary["counts"]["fills"] == len(every_fill) > 0
        assert summary["venues"]["sim"]["fills"] == len(every_fill)
        assert summary["venues"]["sim"]["fees"] == pytest.approx(sum(f["fee"]
                                                                     for f in every_fill))
        assert summary["time_span"]["last_ts"] >= max(f["ts"] for f in every_fill)
        assert summary["venues"]["sim"]["instruments"] == ["BTCUSDT", "ETHUSDT"]
        assert summary["kill_switch"] is True


def test_status_and_strategies_are_the_flight_actions(desk, flight):
    status = get(desk, "/status")
    over_flight = action(flight, "status", token=READ)
    assert status["run_id"] == over_flight["run_id"]
    assert set(over_flight) <= set(status)
    assert status["risk_limits"]["max_position"] == desk.config["risk"]["max_position"]
    names = [(s["name"], s["type"], s["enabled"]) for s in get(desk, "/strategies")]
    assert names == [(s["name"], s["type"], s["enabled"])
                     for s in action(flight, "strategies", token=READ)]


# -- control ------------------------------------------------------------------------------------
def test_kill_and_strategy_switches_change_what_flight_reports(desk, flight):
    status, _, out = call(desk, "POST", "/kill", TRADE, {"on": True})
    assert status == 200 and out["kill_switch"] is True
    assert action(flight, "status", token=READ)["kill_switch"] is True
    assert call(desk, "POST", "/kill", TRADE, {"on": False})[2]["kill_switch"] is False
    assert action(flight, "status", token=READ)["kill_switch"] is False

    assert call(desk, "POST", "/strategies/threshold", TRADE, {"enabled": False})[0] == 200
    assert action(flight, "strategies", token=READ)[0]["enabled"] is False
    assert call(desk, "POST", "/strategies/threshold", TRADE, {"enabled": True})[0] == 200
    assert action(flight, "strategies", token=READ)[0]["enabled"] is True


@pytest.mark.parametrize(("path", "body", "status", "says"), [
    ("/strategies/nope", {"enabled": False}, 400, "no strategy 'nope'; strategies are threshold"),
    ("/strategies/threshold", {}, 400, 'needs a body {"enabled": true|false}'),
    ("/kill", {"on": "yes"}, 400, 'action body "on" must be true or false'),
    ("/kill", b"[1]", 400, "the body must be a JSON object, got list"),
    ("/kill", b"{", 400, "the body is not JSON"),
    ("/orders/nope/cancel", {}, 404, "order 'nope' is not open"),
])
def test_bad_control_calls_say_what_was_wrong(desk, path, body, status, says):
    got, _, out = call(desk, "POST", path, TRADE, body)
    assert got == status and says in out["error"]


# -- auth ---------------------------------------------------------------------------------------
def test_missing_or_unknown_tokens_are_refused_and_roles_checked(desk):
    status, headers, out = call(desk, "GET", "/positions", token="")
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert "needs a bearer token" in out["error"]
    assert call(desk, "GET", "/positions", token="wrong")[0] == 401
    assert call(desk, "GET", "/metrics", token="")[0] == 401
    status, _, out = call(desk, "POST", "/kill", READ, {"on": True})
    assert status == 403 and out["error"] == (
        "POST /kill needs a trade token; this token has the read role")
    assert call(desk, "GET", "/positions", TRADE)[0] == 200  # trade implies read
    for public in ("/health", "/openapi.json", "/", "/static/dashboard.js"):
        assert call(desk, "GET", public, token="")[0] == 200, public


def test_unauthenticated_desk_serves_http_on_loopback_only(tmp_path):
    open_desk = {"desk": {"data_dir": str(tmp_path / "open")}, "flight": {"port": 0},
                 "telemetry": {"health": True, "health_host": "0.0.0.0", "health_port": 0}}
    with pytest.raises(RuntimeError, match="telemetry.health_host is '0.0.0.0' but no token"):
        flightdesk.Engine(open_desk).start()
    check_bind("0.0.0.0", TokenTable(["r"], []), key="telemetry.health_host")
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    with pytest.raises(ConfigError, match=f"HTTP port {port} on 127.0.0.1 is already in use"
                                          ".*--http-port 0"):
        bind("127.0.0.1", port)
    taken.close()


# -- parameters and description ---------------------------------------------------------------
@pytest.mark.parametrize(("path", "status", "says"), [
    ("/trades/BTCUSDT?limit=0", 400, "parameter 'limit' must be from 1 to 10000"),
    ("/trades/BTCUSDT?limit=10001", 400, "([telemetry] http_max_rows), got 10001"),
    ("/trades/BTCUSDT?limit=ten", 400, "parameter 'limit' must be an integer, got 'ten'"),
    ("/trades/BTCUSDT?limt=5", 400, "has no parameter 'limt'; did you mean 'limit'?"),
    ("/ohlcv/BTCUSDT?interval=7x", 400, "bad bar interval '7x'"),
    ("/events?streams=quotes,nope", 400, "/events has no stream 'nope'"),
    ("/nope", 404, "no such path '/nope'"),
])
def test_bad_parameters_say_what_was_wrong(desk, path, status, says):
    got, _, out = call(desk, "GET", path)
    assert got == status and says in out["error"], out


def test_openapi_describes_every_route_with_its_security(desk):
    doc = get(desk, "/openapi.json", token="")
    paths = doc["paths"]
    for path in ("/symbols/{venue}", "/trades/{symbol}", "/ohlcv/{symbol}", "/summary",
                 "/positions", "/orders", "/fills", "/status", "/events", "/health", "/ready",
                 "/metrics"):
        assert "get" in paths[path], path
    for path in ("/kill", "/cancel-all", "/flatten", "/strategies/{name}"):
        assert paths[path]["post"]["security"] == [{"bearer": []}], path
    assert "security" not in paths["/health"]["get"]
    limit = next(p for p in paths["/trades/{symbol}"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["default"] == 100 and limit["in"] == "query"


# -- /events --------------------------------------------------------------------------------------
class Events:
    """A reading /events client (http.client), its events parsed in a thread."""

    def __init__(self, desk, query="", token=READ):
        host, port = desk.desk.health.host, desk.desk.health.port
        self.conn = http.client.HTTPConnection(host, port, timeout=20)
        self.conn.request("GET", "/events" + query, headers={"Authorization":
                                                              f"Bearer {token}"})
        self.resp = self.conn.getresponse()
        self.events: list[tuple[str, object]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        name = None
        with contextlib.suppress(OSError, ValueError, AttributeError, http.client.HTTPException):
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    self.events.append((name, json.loads(line[6:])))

    def named(self, name):
        return [data for n, data in list(self.events) if n == name]

    def close(self):
        self.conn.close()


def test_events_stream_quotes_that_change_and_the_risk_mode(desk):
    ev = Events(desk, "?streams=quotes,risk&symbols=BTCUSDT&interval_ms=100")
    try:
        assert ev.resp.status == 200
        assert ev.resp.getheader("Content-Type").startswith("text/event-stream")
        wait_for(lambda: len(ev.named("quotes")) >= 5, what="5 quotes events")
        rows = [r for batch in ev.named("quotes") for r in batch]
        assert {r["symbol"] for r in rows} == {"BTCUSDT"}
        assert len({(r["bid_px"], r["ask_px"], r["seq"]) for r in rows}) > 1  # they change
        assert all(len(batch) == 1 for batch in ev.named("quotes"))  # latest per instrument
        risk = wait_for(lambda: ev.named("risk"), what="a risk event")[0]
        assert risk["kill_switch"] is False and risk["risk_mode"]["mode"] == "active"
        hello = ev.named("hello")[0]
        assert hello["streams"] == ["quotes", "risk"]
    finally:
        ev.close()


def test_events_need_a_token_and_are_bounded(desk):
    assert call(desk, "GET", "/events", token="")[0] == 401
    wait_for(lambda: get(desk, "/status")["http"]["events"]["open"] == 0, what="no stream")
    open_ = [Events(desk, "?streams=risk") for _ in range(4)]
    try:
        wait_for(lambda: all(e.named("hello") for e in open_), what="4 streams open")
        status, _, out = call(desk, "GET", "/events?streams=risk")
        assert status == 429 and "too many concurrent streams (4)" in out["error"]
    finally:
        for e in open_:
            e.close()
    wait_for(lambda: call(desk, "GET", "/events?streams=bogus")[0] == 400
             and get(desk, "/status")["http"]["events"]["open"] == 0, what="streams closed")


def stalled_client(desk, query):
    """A raw socket that asks for /events and never reads (a tiny receive buffer)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((desk.desk.health.host, desk.desk.health.port))
    sock.sendall(f"GET /events{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {READ}"
                 "\r\n\r\n".encode())
    return sock


def test_a_stalled_events_client_gets_counted_drops_and_slows_nothing(desk):
    sock = stalled_client(desk, "?streams=quotes&interval_ms=0")
    peer = f"http 127.0.0.1:{sock.getsockname()[1]}"
    reader = Events(desk, "?streams=quotes&interval_ms=0")
    try:
        def stalled():
            subs = [s for s in get(desk, "/status")["subscribers"] if s.get("peer") == peer]
            return subs and subs[0]["drops"] > 0 and subs[0]

        sub = wait_for(stalled, timeout=30, what="drops on the stalled client")
        assert sub["stream"] == "quotes" and sub["maxlen"] == 256  # [telemetry] events_buffer
        seen = len(reader.named("quotes"))
        wait_for(lambda: len(reader.named("quotes")) > seen + 20, what="quotes keep flowing")
        rows = [r for batch in reader.named("quotes") for r in batch]
        seqs = [r["seq"] for r in rows]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # the reader lost nothing
        assert reader.named("drops") == []
        assert call(desk, "GET", "/health", token="")[0] == 200
    finally:
        sock.close()
        reader.close()
    wait_for(lambda: not [s for s in get(desk, "/status")["subscribers"]
                          if s.get("peer") == peer], what="the stalled client unsubscribed")


def test_https_with_the_flight_certificate_and_a_stalled_client_cannot_delay_stop(
        tmp_path, certs):
    eng = start_desk(tmp_path, 500.0, telemetry={"health": True, "health_port": 0,
                                                 "events_buffer": 4},
                     desk={"shutdown_timeout_s": 3.0},
                     flight={"tls_cert": str(certs["server"]), "tls_key": str(certs["server_key"])})
    try:
        url = eng.desk.health.url
        assert url.startswith("https://127.0.0.1:")
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        with urllib.request.urlopen(url + "/health", context=ctx, timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "alive"
        with pytest.raises((OSError, http.client.HTTPException)):  # no plain HTTP there
            urllib.request.urlopen(url.replace("https", "http") + "/health", timeout=5)
        raw = socket.create_connection((eng.desk.health.host, eng.desk.health.port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        sock.sendall(b"GET /events?streams=quotes&interval_ms=0 HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: any(str(s.get("peer", "")).startswith("http ") and s["drops"]
                             for s in eng.status()["subscribers"]), what="a stalled stream")
        t0 = time.monotonic()
        eng.stop()
        stopped = time.monotonic() - t0
        sock.close()
        assert stopped < 3.0 + 2.0 and not eng._thread.is_alive()
    finally:
        if eng._thread.is_alive():
            eng.stop()
