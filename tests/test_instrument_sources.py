"""Where instrument rules come from: exchangeInfo and assets parsers, the start-up fetch
from a loopback HTTP server, the cache when the venue is gone, and the config table."""

import asyncio
import http.server
import json
import logging
import stat
import threading
from pathlib import Path

import pytest

from flightdesk.core.errors import ConfigError, ParseError
from flightdesk.core.market.instruments import Instrument, InstrumentRegistry
from flightdesk.core.runtime.compose import build_runtime
from flightdesk.core.runtime.config import load_config
from flightdesk.core.runtime.instrument_loader import CACHE_NAME, load_instruments
from flightdesk.plugins.venues.alpaca.instruments import parse_assets
from flightdesk.plugins.venues.binance.config import make_venue
from flightdesk.plugins.venues.binance.instruments import parse_exchange_info

DATA = Path(__file__).parent / "data"
SPOT = (DATA / "binance_exchange_info.json").read_bytes()
USDM = (DATA / "binance_usdm_exchange_info.json").read_bytes()


def test_spot_exchange_info_filters():
    got = {i.symbol: i for i in parse_exchange_info("bn", SPOT)}
    assert got["BTCUSDT"] == Instrument("bn", "BTCUSDT", tick_size=0.01, lot_step=0.00001,
                                        min_qty=0.00001, min_notional=5.0, max_qty=83.5)
    assert got["ETHUSDT"].lot_step == 0.0001 and got["ETHUSDT"].max_qty == 1500.0
    assert got["LRCBTC"].min_notional == 0.0001  # the older MIN_NOTIONAL.minNotional
    assert got["LRCBTC"].lot_step == 1.0 and got["LRCBTC"].tick_size == 1e-8


def test_usdm_exchange_info_min_notional_and_market_lot():
    (btc,) = parse_exchange_info("bf", USDM)
    assert (btc.tick_size, btc.lot_step, btc.min_qty, btc.min_notional, btc.max_qty) == (
        0.1, 0.001, 0.001, 100.0, 120.0)


def test_exchange_info_keeps_only_the_symbols_asked_for():
    assert [i.symbol for i in parse_exchange_info("bn", SPOT, ["ethusdt"])] == ["ETHUSDT"]


@pytest.mark.parametrize(("body", "message"), [
    (b"<html>", "not JSON"),
    (b'{"code": -1121, "msg": "Invalid symbol."}', "no 'symbols' list"),
    (b'{"symbols": [{"symbol": "X"}]}', "X has no 'filters'"),
    (b'{"symbols": [{"symbol": "X", "filters": [{"filterType": "LOT_SIZE", "stepSize": "abc",'
     b' "minQty": "1", "maxQty": "2"}]}]}', "X LOT_SIZE.stepSize must be a number"),
    (b'{"symbols": [{"symbol": "X", "filters": [{"filterType": "PRICE_FILTER", '
     b'"tickSize": "-0.01"}]}]}', "X PRICE_FILTER.tickSize must be a number >= 0"),
])
def test_bad_exchange_info_names_what_was_wrong(body, message):
    with pytest.raises(ParseError, match=message) as err:
        parse_exchange_info("bn", body)
    assert err.value.args[0].startswith("bn: ")


def test_alpaca_assets():
    body = json.dumps([
        {"symbol": "BTC/USD", "class": "crypto", "tradable": True, "min_order_size": "0.0001",
         "min_trade_increment": "0.000000001", "price_increment": "1"},
        {"symbol": "AAPL", "class": "us_equity", "tradable": True, "fractionable": True},
    ])
    btc, aapl = parse_assets("alp", body)
    assert (btc.min_qty, btc.lot_step, btc.tick_size) == (0.0001, 1e-9, 1.0)
    assert aapl.rules() == {}  # an equity without the fields: no rules
    (one,) = parse_assets("alp", json.dumps({"symbol": "ETH/USD", "price_increment": 0.1}))
    assert one.tick_size == 0.1
    with pytest.raises(ParseError, match="BTC/USD min_order_size must be a number"):
        parse_assets("alp", json.dumps([{"symbol": "BTC/USD", "min_order_size": "lots"}]))


class InfoServer:
    """A stdlib HTTP server on 127.0.0.1:0 answering GET /api/v3/exchangeInfo."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        outer = self
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                outer.hits += 1
                ok = self.path == "/api/v3/exchangeInfo"
                self.send_response(status if ok else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body if ok else b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "InfoServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def venue(rest_url: str):
    return make_venue("bn", {"symbols": ["BTCUSDT", "ETHUSDT"], "rest_url": rest_url,
                             "ws_url": "ws://127.0.0.1:9/stream"})


def load(registry: InstrumentRegistry, rest_url: str, data_dir: Path) -> None:
    asyncio.run(load_instruments(registry, [venue(rest_url)], data_dir, timeout=2.0))


def test_fetch_at_start_up_then_the_cache_when_the_venue_is_gone(tmp_path, caplog):
    with InfoServer(SPOT) as server:
        fetched = InstrumentRegistry()
        load(fetched, server.url, tmp_path)
        url = server.url
    assert server.hits == 1
    assert fetched.get("bn", "BTCUSDT").min_notional == 5.0
    assert fetched.get("bn", "LRCBTC") is None  # not one of the venue's symbols
    assert fetched.summary()["bn"] == {"source": "venue", "instruments": 2}
    cache = tmp_path / CACHE_NAME
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # the server is gone: a restart warns, names the venue, and keeps the cached rules
    restarted = InstrumentRegistry()
    with caplog.at_level(logging.WARNING):
        load(restarted, url, tmp_path)
    assert restarted.get("bn", "BTCUSDT") == fetched.get("bn", "BTCUSDT")
    assert restarted.summary()["bn"]["source"] == "cache"
    assert "GET " in restarted.fetch_errors["bn"]
    assert any("venue bn" in r.getMessage() and "the cache" in r.getMessage()
               for r in caplog.records)
    assert json.loads(cache.read_text())["venues"]["bn"]["instruments"]["BTCUSDT"][
        "tick_size"] == 0.01  # a failed fetch did not erase the cache


def test_config_overrides_what_the_venue_says(tmp_path):
    registry = InstrumentRegistry({"bn": {"BTCUSDT": {"min_notional": 10.0}}})
    with InfoServer(SPOT) as server:
        load(registry, server.url, tmp_path)
    btc = registry.get("bn", "BTCUSDT")
    assert (btc.min_notional, btc.tick_size, btc.lot_step) == (10.0, 0.01, 0.00001)
    assert registry.summary()["bn"]["source"] == "venue+config"


def test_a_bad_answer_is_a_warning_and_falls_back_to_the_config(tmp_path, caplog):
    registry = InstrumentRegistry({"bn": {"BTCUSDT": {"lot_step": 0.001}}})
    with InfoServer(b"<html>maintenance</html>") as server, caplog.at_level(logging.WARNING):
        load(registry, server.url, tmp_path)
    assert "exchangeInfo is not JSON" in registry.fetch_errors["bn"]
    assert registry.get("bn", "BTCUSDT").lot_step == 0.001
    assert not (tmp_path / CACHE_NAME).exists()
    assert any("venue bn" in r.getMessage() and "config" in r.getMessage()
               for r in caplog.records)


def test_an_unreadable_cache_is_ignored_with_a_warning(tmp_path, caplog):
    (tmp_path / CACHE_NAME).write_text("{not json")
    registry = InstrumentRegistry()
    with caplog.at_level(logging.WARNING):
        load(registry, "http://127.0.0.1:9", tmp_path)  # nothing listens on port 9
    assert len(registry) == 0
    assert any("instrument cache" in r.getMessage() for r in caplog.records)


def runtime(instruments):
    return build_runtime(load_config(overrides={
        "venues": {"sim": {"type": "sim", "instruments": instruments}}}))


def test_config_instruments_reach_the_trader():
    rt = runtime({"btcusdt": {"tick_size": 0.01, "lot_step": 0.00001, "min_qty": 0.00001,
                              "min_notional": 5}})
    assert rt.trader.instruments.get("sim", "BTCUSDT") == Instrument(
        "sim", "BTCUSDT", tick_size=0.01, lot_step=0.00001, min_qty=0.00001, min_notional=5.0)
    assert "instruments" not in rt.venue_tables["sim"]  # the venue plugin never sees it


@pytest.mark.parametrize(("table", "key", "message"), [
    ({"BTCUSDT": {"tick_size": -0.01}}, "venues.sim.instruments.BTCUSDT.tick_size",
     "tick_size must be > 0"),
    ({"BTCUSDT": {"min_notional": float("nan")}}, "venues.sim.instruments.BTCUSDT.min_notional",
     r"min_notional must be > 0 \(a finite number\), got nan"),
    ({"BTCUSDT": {"lot_step": "0.001"}}, "venues.sim.instruments.BTCUSDT.lot_step",
     "lot_step must be > 0"),
    ({"BTCUSDT": {"lotstep": 0.001}}, "venues.sim.instruments.BTCUSDT.lotstep",
     "did you mean 'lot_step'"),
    ({"BTCUSDT": 0.01}, "venues.sim.instruments.BTCUSDT", "must be a table"),
    ("BTCUSDT", "venues.sim.instruments", "must be a table"),
])
def test_config_errors_name_the_key(table, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        runtime(table)
    assert err.value.key == key


def test_every_bad_instrument_key_is_reported_at_once():
    with pytest.raises(ConfigError) as err:
        runtime({"BTCUSDT": {"tick_size": 0, "max_qty": float("inf")}})
    assert sorted(p.key.rsplit(".", 1)[1] for p in err.value.problems) == ["max_qty",
                                                                            "tick_size"]

