"""Alpaca: doc-shaped frames, side inference, the auth/subscribe flow on loopback, fuzzing."""

from __future__ import annotations

import asyncio
import gzip
import json

import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from flightdesk.core.errors import ParseError
from flightdesk.core.market.events import BarMsg, BookMsg, Outbound, Status, TradeMsg
from flightdesk.core.storage.normalize import normalize
from flightdesk.plugins.venues.alpaca import AlpacaProtocol, make_venue
from flightdesk.plugins.venues.alpaca.parse import rfc3339_ns
from tests.fixtures.pump import Pump

# shapes as in Alpaca's market data stream documentation
QUOTE = ('{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,'
         '"t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"}')
TRADE = ('{"T":"t","S":"AMD","i":96921,"x":"D","p":87.68,"s":1,'
         '"t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}')
BAR = ('{"T":"b","S":"SPY","o":388.985,"h":389.13,"l":388.975,"c":389.12,"v":49378,'
       '"t":"2021-02-22T19:15:00Z","n":1201,"vw":389.08}')


def test_quote_is_a_one_level_book_with_the_venue_spelling():
    p = AlpacaProtocol(symbols=["AMD"])
    [book] = p.parse(f"[{QUOTE}]", 7)
    assert book == BookMsg("alpaca", "AMD", 1_614_009_105_335_689_322, 7, [["87.66", "1"]],
                           [["87.68", "4"]], snapshot=True)
    pump = Pump(p)
    pump.frame(f"[{QUOTE}]", 7)
    assert pump.book("AMD").top() == (87.66, 1.0, 87.68, 4.0)
    [empty] = p.parse('[{"T":"q","S":"AMD","bp":0,"bs":0,"ap":87.7,"as":2,'
                      '"t":"2021-02-22T15:51:46Z"}]', 8)
    assert empty.bids == [] and empty.asks == [["87.7", "2"]]


def test_trade_side_is_inferred_from_the_quote_then_the_tick():
    p = AlpacaProtocol()
    [t] = p.parse(f"[{TRADE}]", 1)  # no quote yet, no previous trade: "buy"
    assert t == TradeMsg("alpaca", "AMD", 1_614_009_104_208_000_000, 1, "96921", 87.68, 1.0,
                         "buy")
    p.parse(f"[{QUOTE}]", 2)  # bid 87.66 / ask 87.68
    sides = []
    for px in ("87.68", "87.66", "87.675", "87.665", "87.67", "87.67", "87.669"):
        frame = TRADE.replace('"p":87.68', f'"p":{px}')
        sides.append(p.parse(f"[{frame}]", 3)[0].side)
    # ask, bid, above mid, below mid, at mid (tick up from 87.665), same (repeat), tick down
    assert sides == ["buy", "sell", "buy", "sell", "buy", "buy", "sell"]


def test_bars_auth_flow_and_errors():
    p = AlpacaProtocol(symbols=["AAPL", "SPY"], channels=("trades", "quotes"))
    [bar] = p.parse(f"[{BAR}]", 1)
    assert bar == BarMsg("alpaca", "SPY", "1m", 1_614_021_300_000_000_000, 1, 388.985, 389.13,
                         388.975, 389.12, 49378.0, 1201)
    assert p.parse('[{"T":"success","msg":"connected"}]', 1) == [
        Status("alpaca", "success", "connected")]
    out = p.parse('[{"T":"success","msg":"authenticated"}]', 1)
    assert out[1] == Outbound("alpaca", json.dumps(
        {"action": "subscribe", "trades": ["AAPL", "SPY"], "quotes": ["AAPL", "SPY"]}))
    assert p.authenticated
    [err] = p.parse('[{"T":"error","code":402,"msg":"auth failed"}]', 1)
    assert err == Status("alpaca", "error", "402 auth failed")
    [sub] = p.parse('[{"T":"subscription","trades":["AAPL"],"quotes":[],"bars":[]}]', 1)
    assert json.loads(sub.detail) == {"bars": [], "quotes": [], "trades": ["AAPL"]}
    assert p.parse('[{"T":"c","S":"AAPL"}]', 1) == [] and p.stats.ignored == 1


@pytest.mark.parametrize("frame", [
    "", "{", "[1]", '"x"', b"\xff\xfe", '[{"T":"q","S":"A","bp":"NaN"}]',
    QUOTE.replace("87.66", "-1").join("[]"), QUOTE.replace("87.66", "NaN").join("[]"),
    QUOTE.replace("87.66", "1e999").join("[]"), TRADE.replace("87.68", "0").join("[]"),
    TRADE.replace('"s":1', '"s":-3').join("[]"), QUOTE.replace("Z", "").join("[]"),
    QUOTE.replace('"S":"AMD"', '"S":null').join("[]"),
    BAR.replace('"n":1201', '"n":1.5').join("[]"),
])
def test_garbage_raises_parse_error_naming_the_venue(frame):
    p = AlpacaProtocol()
    with pytest.raises(ParseError, match="alpaca"):
        p.parse(frame, 1)
    assert p.stats.errors == 1


def test_rfc3339():
    assert rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert rfc3339_ns("2021-02-22T19:15:00+00:00") == 1_614_021_300_000_000_000
    for bad in ("2021-02-22 19:15:00Z", "2021-02-22T19:15:00+01:00", "x" * 25):
        with pytest.raises((ParseError, ValueError)):
            rfc3339_ns(bad)


def test_normalize_a_host_capture_of_alpaca(tmp_path):
    path = tmp_path / "alpaca.jsonl.gz"
    url = "wss://stream.data.alpaca.markets/v2/iex"
    frames = ['[{"T":"success","msg":"connected"}]', f"[{QUOTE}]", f"[{TRADE}]",
              f"[{QUOTE.replace('87.66', '87.67')}]", f"[{BAR}]"]
    with gzip.open(path, "wt") as fh:
        for i, f in enumerate(frames):
            fh.write(json.dumps({"ts_recv": i, "conn": "a", "kind": "recv", "url": url,
                                 "data": f}) + "\n")
    report = normalize([path], tmp_path / "out", bar_intervals=["1m"])
    assert report.rows["quotes"] == 2 and report.rows["trades"] == 1
    quotes = ds.dataset(tmp_path / "out" / "quotes").to_table()
    assert quotes["bid_px"].to_pylist() == [87.66, 87.67]
    bars = ds.dataset(tmp_path / "out" / "bars").to_table().to_pylist()
    assert {(b["symbol"], b["interval"]) for b in bars} == {("SPY", "1m"), ("AMD", "1m")}


# -- the auth/subscribe flow against a loopback server --------------------------------------
class AlpacaServer:
    """A loopback Alpaca stream: greets, checks the keys, acks the subscription, streams."""

    def __init__(self, stream: list[str]) -> None:
        self.stream = stream
        self.received: list[dict] = []

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send('[{"T":"success","msg":"connected"}]')
        auth = json.loads(await ws.recv())
        self.received.append(auth)
        if auth != {"action": "auth", "key": "k", "secret": "s"}:
            await ws.send('[{"T":"error","code":402,"msg":"auth failed"}]')
            return
        await ws.send('[{"T":"success","msg":"authenticated"}]')
        sub = json.loads(await ws.recv())
        self.received.append(sub)
        await ws.send(json.dumps([{"T": "subscription", **{k: v for k, v in sub.items()
                                                           if k != "action"}}]))
        for frame in self.stream:
            await ws.send(frame)
        await ws.wait_closed()


def test_feed_authenticates_subscribes_and_streams():
    server = AlpacaServer([f"[{QUOTE}]", f"[{TRADE}]", "garbage", f"[{BAR}]"])

    async def main() -> Pump:
        async with serve(server.handler, "127.0.0.1", 0) as srv:
            port = srv.sockets[0].getsockname()[1]
            venue = make_venue("alpaca", {"ws_url": f"ws://127.0.0.1:{port}", "key_id": "k",
                                          "secret_key": "s", "symbols": ["AMD", "SPY"]})
            pump = Pump(venue.protocol, feed=venue.feed)  # outbound frames go to the feed
            bars = pump.bars
            errors: list[ParseError] = []

            def sink(name: str, frame: str | bytes, ts: int) -> None:
                try:
                    pump.frame(frame, ts)
                except ParseError as exc:  # what the engine does: count and go on
                    errors.append(exc)
                if bars:
                    done.set()

            done = asyncio.Event()
            task = asyncio.create_task(venue.feed.run(sink, lambda *a: None))
            try:
                async with asyncio.timeout(10):
                    await done.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert len(errors) == 1 and venue.feed.stats()["connects"] == 1
            return pump

    pump = asyncio.run(main())
    assert server.received == [{"action": "auth", "key": "k", "secret": "s"},
                               {"action": "subscribe", "trades": ["AMD", "SPY"],
                                "quotes": ["AMD", "SPY"], "bars": ["AMD", "SPY"]}]
    assert [s.kind for s in pump.statuses] == ["success", "success", "subscription"]
    assert pump.book("AMD").top() == (87.66, 1.0, 87.68, 4.0) and len(pump.trades) == 1


# -- fuzzing ------------------------------------------------------------------------------
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = [f"[{QUOTE}]", f"[{TRADE}]", f"[{BAR}]", '[{"T":"success","msg":"authenticated"}]']


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=200))
def test_fuzz_arbitrary_input_raises_only_parse_error(data):
    try:
        AlpacaProtocol(symbols=["X"]).parse(data, 1)
    except ParseError:
        pass


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_mutated_real_frames(frame, data):
    raw = bytearray(frame.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        events = AlpacaProtocol().parse(bytes(raw), 1)
    except ParseError:
        return
    for ev in events:
        for lv in getattr(ev, "bids", []) + getattr(ev, "asks", []):
            assert 0 < float(lv[0]) < float("inf") and 0 <= float(lv[1]) < float("inf")


@FUZZ
@given(st.dictionaries(st.sampled_from(["T", "S", "bp", "bs", "ap", "as", "p", "s", "t", "o",
                                        "h", "l", "c", "v", "n", "msg"]),
                       st.none() | st.booleans() | st.integers() | st.floats()
                       | st.text(max_size=30) | st.sampled_from(["q", "t", "b", "success"]),
                       max_size=12))
def test_fuzz_shapes(msg):
    try:
        AlpacaProtocol().parse(json.dumps([msg]), 1)
    except ParseError:
        pass
