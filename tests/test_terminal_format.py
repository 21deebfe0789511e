"""The pieces behind the terminal surfaces: value formatting, heartbeat arithmetic, and
turning a busy port into one line (a real socket, a real Flight server)."""

from __future__ import annotations

import datetime as dt
import errno
import http.server
import json
import logging
import socket

import pyarrow as pa
import pyarrow.flight as fl
import pytest

from flightdesk.commands.formatting import Precision, decimals_of, iso_utc, money, plain
from flightdesk.commands.preflight import check_port, startup_error
from flightdesk.core.errors import ConfigError
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.heartbeat import Heartbeat, Sample
from flightdesk.core.runtime.telemetry import JsonFormatter

RULES = {"sim:BTCUSDT": {"tick_size": 0.01, "lot_step": 1e-06},
         "k:XBT/USD": {"tick_size": 0.5, "lot_step": 1e-08}}


@pytest.mark.parametrize(("step", "places"), [(0.01, 2), (0.25, 2), (0.5, 1), (1e-05, 5),
                                               (1e-08, 8), (5.0, 0), (10.0, 0), (0.0, -1)])
def test_decimals_of_a_step(step, places):
    assert decimals_of(step) == places


@pytest.mark.parametrize(("value", "text"), [(60000.895000000004, "60000.895"),
                                              (3000.0150000000003, "3000.015"),
                                              (0.1 + 0.2, "0.3"), (1e-06, "1e-06"),
                                              (float("nan"), "nan"), (-2.5, "-2.5")])
def test_plain_has_no_float_noise(value, text):
    assert plain(value) == text


def test_money_is_cents_and_small_amounts_keep_three_digits():
    assert [money(x) for x in (-1354.850491, 0.0, 0.5, -0.0001258299999)] == \
        ["-1354.85", "0.00", "0.50", "-0.000126"]


def test_iso_utc_is_the_utc_time_to_the_microsecond():
    ns = 1_796_686_845_214_416_913
    expected = dt.datetime.fromtimestamp(ns // 10**9, dt.timezone.utc).replace(
        microsecond=214416)
    assert iso_utc(ns) == expected.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert iso_utc(ns).endswith(".214416Z")


def test_prices_and_quantities_take_the_instrument_precision():
    p = Precision(RULES)
    assert p.cell("price", 60000.895000000004, "sim", "BTCUSDT") == "60000.90"
    assert p.cell("bid_px", 60000.0, "sim", "BTCUSDT") == "60000.00"
    assert p.cell("mid", 60000.005, "sim", "BTCUSDT") == "60000.005"
    assert p.cell("qty", 0.1 + 0.2, "sim", "BTCUSDT") == "0.300000"
    assert p.cell("price", 64000.5, "k", "XBT/USD") == "64000.5"
    # no rules for the instrument: the shortest noise-free text
    assert p.cell("price", 60000.895000000004, "other", "BTCUSDT") == "60000.895"
    assert p.cell("spread_bps", 0.0033333233340424205) == "0.00333332"
    assert p.cell("realized_pnl", -495.37153700450307) == "-495.37"
    assert p.cell("ts_event", 1_796_686_845_214_000_000).endswith("T23:40:45.214000Z")
    assert p.cell("seq", 12) == "12" and p.cell("limit_px", None) == ""


def sample(t: float, frames: int, drops: dict[int, int], **kw) -> Sample:
    base = {"quotes": 0, "trades": 0, "orders": 0, "fills": 0, "rejected": 0,
            "parse_errors": 0, "pnl": 0.0, "mode": "active", "killed": False}
    return Sample(t=t, frames=frames, drops=drops, **{**base, **kw})


def test_heartbeat_counts_the_interval_and_drops_per_subscriber():
    beat = Heartbeat(sample(0.0, 1000, {1: 5}, orders=3, fills=10))
    text, f = beat.step(sample(2.0, 1400, {1: 7, 2: 1}, orders=5, fills=14, quotes=180,
                               pnl=-12.345))
    assert (f["events_per_s"], f["orders"], f["fills"], f["quotes"], f["drops"]) == \
        (200.0, 2, 4, 180, 3)
    assert text == ("heartbeat (last 2.0s): 200 events/s, 180 quotes, 0 trades, 2 orders, "
                    "4 fills; pnl -12.35; drops 3; risk active")
    # subscriber 1 left: its drops are not taken back; 2 dropped 4 more
    text, f = beat.step(sample(4.0, 1400, {2: 5}, orders=5, fills=14, parse_errors=2,
                               mode="halted", killed=True))
    assert f["drops"] == 4 and f["totals"]["drops"] == 5 + 3 + 4
    assert text.endswith("drops 4; parse errors 2; risk halted, KILL SWITCH ON")


def test_json_log_lines_carry_the_heartbeat_fields():
    record = logging.LogRecord("flightdesk.heartbeat", logging.INFO, __file__, 1, "%s",
                               ("heartbeat ...",), None)
    record.fields = {"orders": 2}
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "heartbeat ..." and out["fields"] == {"orders": 2}


@pytest.fixture
def busy_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_check_port_refuses_a_listening_port_and_passes_a_free_one(busy_port):
    with pytest.raises(ConfigError, match=f"Flight port {busy_port} on 127.0.0.1 is already "
                                          "in use") as err:
        check_port("127.0.0.1", busy_port, "Flight", "--flight-port", "flight.port")
    assert err.value.key == "flight.port"
    check_port("127.0.0.1", 0, "Flight", "--flight-port", "flight.port")


def test_a_flight_server_that_cannot_bind_becomes_one_line(busy_port):
    config = load_config(overrides={"flight": {"port": busy_port}})
    with pytest.raises(pa.ArrowException) as failed:
        fl.FlightServerBase(f"grpc://127.0.0.1:{busy_port}")
    error = startup_error(failed.value, config)
    assert error is not None and str(error) == (
        f"Flight port {busy_port} on 127.0.0.1 is already in use (another desk?); pick "
        "another with --flight-port N, or --flight-port 0 for a free one")
    health = load_config(overrides={"telemetry": {"health": True, "health_port": busy_port}})
    with pytest.raises(OSError) as bind:  # what the health server's bind raises
        http.server.HTTPServer(("127.0.0.1", busy_port), http.server.BaseHTTPRequestHandler)
    assert bind.value.errno == errno.EADDRINUSE
    assert f"health (HTTP) port {busy_port}" in str(startup_error(bind.value, health))
    assert startup_error(ValueError("else"), config) is None
