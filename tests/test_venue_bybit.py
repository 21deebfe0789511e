"""Bybit v5 (rules from Bybit's docs): ``u`` chaining, the ``u = 1`` reset, trades, merged
tickers, control answers; a real recording's books carried in Bybit's shape; normalize and
backtest on a Bybit capture."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from flightdesk.core.errors import ConfigError, ParseError
from flightdesk.core.market.events import (
    BookMsg,
    Outbound,
    Resync,
    ResyncReason,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.storage.normalize import detect_venue, normalize
from flightdesk.plugins.venues.bybit import BybitProtocol
from flightdesk.plugins.venues.bybit.config import make_venue
from flightdesk.plugins.venues.bybit.feed import subscribe_frames
from flightdesk.plugins.venues.okx import OkxProtocol
from tests.fixtures.recorded import DATA, needs_recording, recv_frames
from tests.fixtures.servers import bybit_book, okx_to_bybit

OKX_FILE = DATA / "okx" / "OKX.ws.1.0"
needs_okx = needs_recording("okx", "OKX.ws.1.0")

BIDS = [["16493.50", "0.006"], ["16493.00", "0.100"]]
ASKS = [["16611.00", "0.029"], ["16612.00", "0.213"]]


def fresh(depth: int = 50) -> tuple[BybitProtocol, BookKeeper]:
    proto = BybitProtocol("bybit", depth)
    return proto, BookKeeper({"bybit": proto})


def feed(proto: BybitProtocol, keeper: BookKeeper, frames: list[str]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for i, frame in enumerate(frames):
        for ev in proto.parse(frame, i):
            counts[type(ev).__name__] += 1
            if type(ev) is BookMsg:
                keeper.apply(ev)
            elif type(ev) is Resync:
                keeper.resync(ev)
    return counts


def book(kind: str, u: int, bids=(), asks=(), symbol: str = "BTCUSDT", depth: int = 50) -> str:
    return bybit_book(kind, symbol, [list(b) for b in bids], [list(a) for a in asks], u,
                      1672304484978, depth)


# -- the book rules ---------------------------------------------------------------------------
def test_snapshot_then_consecutive_deltas_build_the_book():
    proto, keeper = fresh()
    feed(proto, keeper, [book("snapshot", 18521288, BIDS, ASKS),
                         book("delta", 18521289, [["16493.50", "0"]], [["16600.00", "1.5"]]),
                         book("delta", 18521290, [["16494.00", "0.2"]])])
    b = keeper.book("bybit", "BTCUSDT")
    assert [lv[0] for lv in b.bid_levels(5)] == ["16494.00", "16493.00"]
    assert [lv[0] for lv in b.ask_levels(5)] == ["16600.00", "16611.00", "16612.00"]
    assert b.last_id == 18521290 and keeper.counters["resyncs"] == 0
    assert b.ts_event == 1672304484978 * 1_000_000


def test_a_skipped_u_resyncs_that_symbol_by_resubscribing_its_topic():
    proto, keeper = fresh()
    feed(proto, keeper, [book("snapshot", 10, BIDS, ASKS),
                         book("snapshot", 3, BIDS, ASKS, symbol="ETHUSDT")])
    (gap,) = proto.parse(book("delta", 12, [["16493.00", "1"]]), 5)
    assert (type(gap), gap.symbol, gap.reason) == (Resync, "BTCUSDT", ResyncReason.GAP)
    assert gap.detail == "u 12 after 10"
    keeper.resync(gap)
    args = ["orderbook.50.BTCUSDT"]
    assert keeper.take_followups() == [
        Outbound("bybit", json.dumps({"op": "unsubscribe", "args": args})),
        Outbound("bybit", json.dumps({"op": "subscribe", "args": args}))]
    assert proto.parse(book("delta", 13, [["16493.00", "2"]]), 6) == []  # until a snapshot
    assert proto.stats.by_kind["delta_before_snapshot"] == 1
    assert len(keeper.book("bybit", "ETHUSDT")) == 4  # untouched
    assert proto.parse(book("delta", 4, [["1", "1"]], symbol="ETHUSDT"), 7)[0].last_id == 4
    (snap,) = proto.parse(book("snapshot", 20, BIDS, ASKS), 8)
    assert snap.snapshot and proto.parse(book("delta", 21), 9)[0].last_id == 21


def test_u_of_one_is_a_restart_that_overwrites_the_book_even_as_a_delta():
    proto, keeper = fresh()
    feed(proto, keeper, [book("snapshot", 500, BIDS, ASKS),
                         book("delta", 1, [["100.0", "1"]], [["101.0", "2"]]),
                         book("delta", 2, [["100.5", "1"]])])
    b = keeper.book("bybit", "BTCUSDT")
    assert [lv[0] for lv in b.bid_levels(5)] == ["100.5", "100.0"]
    assert [lv[0] for lv in b.ask_levels(5)] == ["101.0"]
    assert proto.stats.by_kind["reset"] == 1 and keeper.counters["resyncs"] == 0


def test_a_repeated_snapshot_with_the_same_u_is_accepted():
    proto, keeper = fresh(1)
    feed(proto, keeper, [book("snapshot", 7, BIDS[:1], ASKS[:1], depth=1),
                         book("snapshot", 7, BIDS[:1], ASKS[:1], depth=1),
                         book("delta", 8, [["16493.60", "1"]], depth=1)])
    b = keeper.book("bybit", "BTCUSDT")
    assert keeper.counters["resyncs"] == 0
    assert b.bid_levels(5) == [["16493.60", "1"]]  # depth 1: the old best falls out


def test_a_rejected_delta_does_not_advance_u_so_the_next_one_is_a_gap():
    proto, keeper = fresh()
    feed(proto, keeper, [book("snapshot", 10, BIDS, ASKS)])
    with pytest.raises(ParseError, match="bad book level"):
        proto.parse(book("delta", 11, [["NaN", "1"]]), 2)
    (gap,) = proto.parse(book("delta", 12, [["16493.00", "1"]]), 3)
    assert type(gap) is Resync and gap.detail == "u 12 after 10"


def test_deltas_before_any_snapshot_are_counted_not_applied():
    proto, keeper = fresh()
    assert proto.parse(book("delta", 5, BIDS), 1) == []
    assert proto.stats.by_kind["delta_before_snapshot"] == 1 and not keeper.books


# -- trades, tickers, control ------------------------------------------------------------------
def test_public_trades_carry_the_taker_side():
    frame = json.dumps({"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": 1672304486868,
                        "data": [{"T": 1672304486865, "s": "BTCUSDT", "S": "Buy", "v": "0.001",
                                  "p": "16578.50", "L": "PlusTick", "i": "20f43950-d8dd",
                                  "BT": False},
                                 {"T": 1672304486866, "s": "BTCUSDT", "S": "Sell",
                                  "v": "0.5", "p": "16578.00", "i": "20f43950-d8de"}]})
    a, b = BybitProtocol().parse(frame, 9)
    assert a == TradeMsg("bybit", "BTCUSDT", 1672304486865 * 10**6, 9, "20f43950-d8dd",
                         16578.5, 0.001, "buy")
    assert (b.side, b.qty, b.price) == ("sell", 0.5, 16578.0)


def test_linear_ticker_deltas_are_merged_and_spot_tickers_have_no_bbo():
    proto = BybitProtocol()
    snap = {"topic": "tickers.BTCUSDT", "type": "snapshot", "ts": 1673853746003, "cs": 2,
            "data": {"symbol": "BTCUSDT", "lastPrice": "21109.77", "bid1Price": "21109.77",
                     "bid1Size": "1.3", "ask1Price": "21109.80", "ask1Size": "0.1"}}
    delta = {"topic": "tickers.BTCUSDT", "type": "delta", "ts": 1673853746103, "cs": 3,
             "data": {"symbol": "BTCUSDT", "ask1Price": "21110.00", "ask1Size": "0.4"}}
    (t1,) = proto.parse(json.dumps(snap), 1)
    (t2,) = proto.parse(json.dumps(delta), 2)
    assert t1 == TickerMsg("bybit", "BTCUSDT", 1673853746003 * 10**6, 1, "21109.77", "1.3",
                           "21109.80", "0.1")
    assert (t2.bid_px, t2.bid_qty, t2.ask_px, t2.ask_qty) == ("21109.77", "1.3", "21110.00",
                                                              "0.4")
    spot = {"topic": "tickers.ETHUSDT", "type": "snapshot", "ts": 1673853746003,
            "data": {"symbol": "ETHUSDT", "lastPrice": "1500", "volume24h": "10"}}
    assert proto.parse(json.dumps(spot), 3) == []
    assert proto.stats.by_kind["ticker_without_bbo"] == 1
    proto.tickers_wanted = False
    assert proto.parse(json.dumps(snap, separators=(",", ":")), 4) == []
    assert proto.stats.by_kind["ticker_skipped"] == 1


def test_control_answers_become_statuses():
    proto = BybitProtocol()
    spot_pong = '{"success":true,"ret_msg":"pong","conn_id":"x","req_id":"","op":"ping"}'
    linear_pong = '{"req_id":"","op":"pong","args":["1675418560633"],"conn_id":"y"}'
    ack = '{"success":true,"ret_msg":"","conn_id":"x","req_id":"","op":"subscribe"}'
    refused = ('{"success":false,"ret_msg":"error:handler not found","conn_id":"x",'
               '"req_id":"","op":"subscribe"}')
    assert proto.parse(spot_pong, 1) == proto.parse(linear_pong, 1) == [Status("bybit", "pong")]
    assert proto.parse(ack, 1) == [Status("bybit", "subscribe")]
    assert proto.parse(refused, 1) == [Status("bybit", "error",
                                              "subscribe: error:handler not found")]
    kline = '{"topic":"kline.1.BTCUSDT","type":"snapshot","ts":1,"data":[]}'
    assert proto.parse(kline, 1) == [] and proto.stats.by_kind["unhandled_topic"] == 1


@pytest.mark.parametrize(("frame", "why"), [
    ("}{", "invalid JSON"),
    ("[1,2]", "expected a JSON object"),
    ('{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT",'
     '"b":[["NaN","1"]],"a":[],"u":5}}', "bad book level"),
    ('{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,"data":{"s":"BTCUSDT",'
     '"b":[],"a":[],"u":"5"}}', "u must be an integer"),
    ('{"topic":"orderbook.50.BTCUSDT","type":"partial","ts":1,"data":{}}', "not snapshot/delta"),
    ('{"topic":"orderbook.x.BTCUSDT","type":"delta","ts":1,"data":{}}', "bad book topic"),
    ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT",'
     '"S":"Hold","v":"1","p":"2","i":"a"}]}', "unknown trade side"),
    ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT",'
     '"S":"Buy","v":"1","p":"-2","i":"a"}]}', "bad trade price"),
    ('{"hello":1}', "neither 'topic' nor 'success'"),
])
def test_garbage_is_refused_with_what_was_wrong(frame, why):
    proto = BybitProtocol()
    with pytest.raises(ParseError, match=why):
        proto.parse(frame, 1)
    assert proto.stats.errors == 1


def test_config_builds_topics_and_refuses_bad_values():
    venue = make_venue("by", {"type": "bybit", "market": "linear", "symbols": ["btcusdt"],
                              "depth": 200, "channels": ["publicTrade", "tickers"]})
    assert venue.feed.url == "wss://stream.bybit.com/v5/public/linear"
    assert [json.loads(f)["args"] for f in venue.feed.subscribe()] == [
        ["orderbook.200.BTCUSDT", "publicTrade.BTCUSDT", "tickers.BTCUSDT"]]
    assert venue.protocol.depth == 200
    venue.close()
    many = subscribe_frames([f"publicTrade.S{i}" for i in range(23)])
    assert [len(json.loads(f)["args"]) for f in many] == [10, 10, 3]
    for bad, key in (({"depth": 25}, "depth"), ({"market": "option"}, "market"),
                     ({"channels": ["kline"]}, "channels"), ({"deph": 50}, "deph")):
        with pytest.raises(ConfigError, match=key):
            make_venue("by", {"type": "bybit", **bad})


# -- a real recording's books in Bybit's shape ------------------------------------------------
@needs_okx
def test_recorded_books_in_bybit_shape_equal_the_okx_rebuild_and_never_cross():
    okx_frames = [f for f, _ in recv_frames(OKX_FILE)]
    frames = okx_to_bybit(okx_frames)
    okx, okx_keeper = OkxProtocol(), None
    okx_keeper = BookKeeper({"okx": okx})
    for i, f in enumerate(okx_frames):
        for ev in okx.parse(f, i):
            if type(ev) is BookMsg:
                okx_keeper.apply(ev)
    proto, keeper = fresh(1000)
    last: dict[str, int] = {}
    gaps = 0
    for i, frame in enumerate(frames):
        for ev in proto.parse(frame, i):
            assert type(ev) is BookMsg
            if not ev.snapshot:
                gaps += ev.last_id != last[ev.symbol] + 1
            last[ev.symbol] = ev.last_id
            keeper.apply(ev)
            b = keeper.book("bybit", ev.symbol)
            if b.bids and b.asks:
                assert float(b.bid_levels(1)[0][0]) < float(b.ask_levels(1)[0][0])
    assert len(frames) == 3_679 and gaps == 0
    assert keeper.counters["resyncs"] == keeper.counters["crossed_books"] == 0
    assert len(keeper.books) == 10
    for (_, sym), b in keeper.books.items():
        ref = okx_keeper.book("okx", sym)
        assert [lv[:2] for lv in b.bid_levels(10_000)] == [lv[:2] for lv in
                                                           ref.bid_levels(10_000)]
        assert [lv[:2] for lv in b.ask_levels(10_000)] == [lv[:2] for lv in
                                                           ref.ask_levels(10_000)]


def capture_lines(frames: list[str], url: str, t0: float = 1_645_999_990.0) -> str:
    lines = [f"{url} <-> {t0}"]
    lines += [f"{t0 + 0.001 * (i + 1):.6f}: {f}" for i, f in enumerate(frames)]
    return "\n".join(lines) + "\n"


def trade_frames(n: int) -> list[str]:
    return [json.dumps({"topic": "publicTrade.BTC-USDT", "type": "snapshot",
                        "ts": 1_645_999_991_000 + i,
                        "data": [{"T": 1_645_999_991_000 + i, "s": "BTC-USDT",
                                  "S": "Buy" if i % 3 else "Sell", "v": "0.01",
                                  "p": f"{39000 + i % 7}.5", "i": f"t{i}"}]})
            for i in range(n)]


@needs_okx
def test_a_bybit_capture_normalizes_and_backtests(tmp_path):
    frames = okx_to_bybit([f for f, _ in recv_frames(OKX_FILE)])
    mixed = [f for pair in zip(frames, trade_frames(len(frames)), strict=True) for f in pair]
    cap = tmp_path / "BYBIT.ws.1.0"
    cap.write_text(capture_lines(mixed, "wss://stream.bybit.com/v5/public/linear"))
    assert detect_venue("wss://stream.bybit.com/v5/public/linear", "") == (
        "bybit", {"market": "linear"})
    assert detect_venue("", frames[0])[0] == "bybit"
    report = normalize([cap], tmp_path / "norm")
    quotes = pq.read_table(tmp_path / "norm" / "quotes")
    assert report.rows["quotes"] == quotes.num_rows == 3_679
    assert set(quotes.column("venue").to_pylist()) == {"bybit"}
    assert report.rows["trades"] == 3_679
    assert all(a < b for a, b in zip(quotes.column("bid_px").to_pylist(),
                                     quotes.column("ask_px").to_pylist(), strict=True)
               if not (math.isnan(a) or math.isnan(b)))
    out = tmp_path / "bt"
    proc = subprocess.run([sys.executable, "-m", "flightdesk", "backtest", str(cap),
                           "--strategy", "threshold", "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["events"] >= 2 * 3_679 - 10
