"""Kraken v1 (recorded) and v2 (doc examples): parsing, checksums, resync, fuzzing."""

from __future__ import annotations

import json
import zlib
from collections import Counter
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdesk.core.errors import ParseError
from flightdesk.core.market.book import L2Book
from flightdesk.core.market.events import (
    BookMsg,
    MarketEvent,
    Outbound,
    Resync,
    ResyncReason,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.plugins.venues.kraken import KrakenProtocol, checksum_string, kraken_checksum
from tests.fixtures.recorded import DATA, needs_recording, recv_frames

BOOK_FILE = DATA / "kraken" / "KRAKEN.ws.50.0"
needs_data = needs_recording("kraken", "KRAKEN.ws.50.0")

# Kraken docs (book-checksum-v2): the BTC/USD example book and its checksum string
DOC_ASKS = [("45285.2", "0.00100000"), ("45286.4", "1.54571953"), ("45286.6", "1.54571109"),
            ("45289.6", "1.54560911"), ("45290.2", "0.15890660"), ("45291.8", "1.54553491"),
            ("45294.7", "0.04454749"), ("45296.1", "0.35380000"), ("45297.5", "0.09945542"),
            ("45299.5", "0.18772827")]
DOC_BIDS = [("45283.5", "0.10000000"), ("45283.4", "1.54582015"), ("45282.1", "0.10000000"),
            ("45281.0", "0.10000000"), ("45280.3", "1.54592586"), ("45279.0", "0.07990000"),
            ("45277.6", "0.03310103"), ("45277.5", "0.30000000"), ("45277.3", "1.54602737"),
            ("45276.6", "0.15445238")]
DOC_STRING = (
    "4528521000004528641545719534528661545711094528961545609114529021589066045291815455349"
    "1452947445474945296135380000452975994554245299518772827452835100000004528341545820154"
    "5282110000000452810100000004528031545925864527907990000452776331010345277530000000452"
    "77315460273745276615445238")
DOC_CHECKSUM = 3310070434


def kind(ev: MarketEvent) -> str:
    if type(ev) is BookMsg:
        return "snapshot" if ev.snapshot else "update"
    return type(ev).__name__


def replay(proto: KrakenProtocol, keeper: BookKeeper, frames) -> Counter[str]:
    counts: Counter[str] = Counter()
    for frame, ts in frames:
        for ev in proto.parse(frame, ts):
            counts[kind(ev)] += 1
            if type(ev) is BookMsg:
                keeper.apply(ev)
    return counts


def fresh() -> tuple[KrakenProtocol, BookKeeper]:
    proto = KrakenProtocol()
    return proto, BookKeeper({"kraken": proto})


def state(keeper: BookKeeper) -> dict:
    return {key: (dict(b.bids), dict(b.asks)) for key, b in keeper.books.items()}


# -- recorded v1 sessions -----------------------------------------------------------------
@needs_data
def test_v1_book_recording_every_checksum_verifies():
    proto, keeper = fresh()
    counts = replay(proto, keeper, recv_frames(BOOK_FILE))
    assert counts["snapshot"] == 10
    assert counts["update"] == 4_269
    assert proto.stats.by_kind["checksum_ok"] == 4_269
    assert "checksum_failed" not in proto.stats.by_kind
    assert keeper.counters["checksum_failures"] == 0
    assert keeper.counters["resyncs"] == 0
    assert keeper.counters["book_messages"] == 4_279
    assert proto.depth == 1000 and set(proto.depths.values()) == {1000}
    assert len(proto.depths) == 10
    assert proto.stats.errors == 0 and proto.stats.ignored == 0


@needs_data
def test_v1_trades_recording():
    proto = KrakenProtocol()
    per_frame = [proto.parse(f, ts) for f, ts in recv_frames(DATA / "kraken/KRAKEN.ws.48.0")]
    trade_frames = [evs for evs in per_frame if any(type(e) is TradeMsg for e in evs)]
    trades = [e for evs in trade_frames for e in evs]
    assert len(trade_frames) == 8
    assert len(trades) == 10  # 6 messages with one trade, 2 with two
    first = trades[0]
    assert (first.symbol, first.price, first.qty, first.side) == ("XMR/USD", 354.11,
                                                                 0.89594024, "sell")
    assert first.ts_event == 1_618_678_142_557_535_000
    assert {t.side for t in trades} == {"buy", "sell"}


@needs_data
def test_v1_tickers_recording():
    proto = KrakenProtocol()
    frames = recv_frames(DATA / "kraken/KRAKEN.ws.49.0")
    events = [e for f, ts in frames for e in proto.parse(f, ts)]
    tickers = [e for e in events if type(e) is TickerMsg]
    assert len(tickers) == 18
    waves = tickers[0]
    assert (waves.symbol, waves.bid_px, waves.bid_qty, waves.ask_px, waves.ask_qty) == (
        "WAVES/EUR", "13.232900", "185.18432037", "13.253900", "35.72892241")
    assert Counter(e.kind for e in events if type(e) is Status) == {
        "heartbeat": 31, "subscriptionStatus": 10, "systemStatus": 1}


def test_v1_two_dict_update_and_republished_level():
    proto, keeper = fresh()
    asks = [[f"{101 + i}.00000", "1.00000000", "1618678123.000001"] for i in range(10)]
    bids = [[f"{99 - i}.00000", "2.00000000", "1618678123.000001"] for i in range(10)]
    keeper.apply(proto.parse(json.dumps([7, {"as": asks, "bs": bids}, "book-10", "P/Q"]), 1)[0])
    # ask 101 deleted, ask 111 republished ("r") to refill depth 10, bid 99 changed
    new_asks = asks[1:] + [["111.00000", "3.00000000", "1618678100.000000", "r"]]
    new_bids = [["99.00000", "5.00000000", "1618678124.000002"]] + bids[1:]
    crc = zlib.crc32(checksum_string(new_asks, new_bids).encode())
    frame = json.dumps([7, {"a": [["101.00000", "0.00000000", "1618678124.000001"],
                                  new_asks[-1]]},
                        {"b": [new_bids[0]], "c": str(crc)}, "book-10", "P/Q"])
    (upd,) = proto.parse(frame, 2)
    assert upd.ts_event == 1_618_678_124_000_002_000  # the newest level time
    assert keeper.apply(upd) is not None
    assert keeper.book("kraken", "P/Q").ask_levels(10)[-1] == new_asks[-1]
    assert proto.stats.by_kind["checksum_ok"] == 1


def test_unhandled_channel_is_ignored_not_an_error():
    proto = KrakenProtocol()
    assert proto.parse('[1,["1","2","3","4","5"],"spread","XBT/USD"]', 1) == []
    assert proto.parse('{"channel":"ohlc","type":"update","data":[]}', 1) == []
    assert proto.stats.by_kind["unhandled_channel"] == 2 and proto.stats.errors == 0


# -- checksum vectors ---------------------------------------------------------------------
def test_doc_vector_pinned():
    assert len(DOC_STRING) == 281
    assert zlib.crc32(DOC_STRING.encode()) == DOC_CHECKSUM
    assert checksum_string(DOC_ASKS, DOC_BIDS) == DOC_STRING
    book = L2Book()
    book.load_snapshot([list(lv) for lv in DOC_BIDS], [list(lv) for lv in DOC_ASKS])
    assert kraken_checksum(book) == DOC_CHECKSUM


# -- v2 (doc example frames; prices are JSON numbers) --------------------------------------
def v2_levels(levels) -> str:
    return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels)


def v2_book(kind_: str, bids, asks, checksum: int, ts: str = "") -> str:
    stamp = f',"timestamp":"{ts}"' if ts else ""
    return (f'{{"channel":"book","type":"{kind_}","data":[{{"symbol":"BTC/USD",'
            f'"bids":[{v2_levels(bids)}],"asks":[{v2_levels(asks)}],'
            f'"checksum":{checksum}{stamp}}}]}}')


def test_v2_snapshot_keeps_lexemes_and_verifies():
    proto, keeper = fresh()
    ack = ('{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,'
           '"symbol":"BTC/USD"},"success":true,"time_in":"2023-10-06T17:35:55.000000Z",'
           '"time_out":"2023-10-06T17:35:55.000001Z"}')
    assert proto.parse(ack, 1) == [Status("kraken", "subscribe", "ok", "BTC/USD")]
    assert proto.depth == 10
    (snap,) = proto.parse(v2_book("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM), 2)
    assert snap.bids[0] == ["45283.5", "0.10000000"]  # trailing zeros survive
    assert snap.bids[3] == ["45281.0", "0.10000000"]
    assert keeper.apply(snap) is not None
    assert proto.stats.by_kind["checksum_ok"] == 1


def test_v2_update_checksum_and_timestamp():
    proto, keeper = fresh()
    keeper.apply(proto.parse(v2_book("snapshot", DOC_BIDS, DOC_ASKS, DOC_CHECKSUM), 1)[0])
    bids = [("45283.5", "0.00000000"), ("45276.5", "2.50000000")]
    expected_bids = DOC_BIDS[1:] + [("45276.5", "2.50000000")]
    crc = zlib.crc32(checksum_string(DOC_ASKS, expected_bids).encode())
    (upd,) = proto.parse(v2_book("update", bids, [], crc, "2023-10-06T17:35:55.440295Z"), 2)
    assert upd.ts_event == 1_696_613_755_440_295_000
    assert keeper.apply(upd) is not None
    assert keeper.counters["checksum_failures"] == 0
    # a wrong checksum resyncs BTC/USD with a v2 unsubscribe + subscribe
    (bad,) = proto.parse(v2_book("update", [("45280.3", "1.0")], [], crc), 3)
    assert keeper.apply(bad) is None
    frames = [json.loads(o.frame) for o in keeper.take_followups()]
    params = {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}
    assert frames == [{"method": "unsubscribe", "params": params},
                      {"method": "subscribe", "params": params}]
    assert proto.parse(v2_book("update", [("45280.3", "1.0")], [], crc), 4) == []


def test_v2_trade_ticker_heartbeat():
    proto = KrakenProtocol()
    trade = ('{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
             '"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
             '"timestamp":"2023-09-25T07:49:37.708706Z"}]}')
    (t,) = proto.parse(trade, 1)
    assert (t.symbol, t.side, t.price, t.qty, t.trade_id) == ("MATIC/USD", "sell", 0.5117,
                                                              40.0, "4665906")
    ticker = ('{"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,'
              '"bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783,"last":0.10035}]}')
    (tk,) = proto.parse(ticker, 7)
    assert (tk.bid_px, tk.bid_qty, tk.ask_px, tk.ts_event) == ("0.10025", "740.0", "0.10036", 7)
    assert proto.parse('{"channel":"heartbeat"}', 1) == [Status("kraken", "heartbeat", "")]


def test_depth_follows_each_subscription():
    proto = KrakenProtocol()
    for chan_id, depth, pair in ((1, 10, "XBT/USD"), (2, 25, "ETH/USD")):
        proto.parse(json.dumps({"channelID": chan_id, "channelName": f"book-{depth}",
                                "event": "subscriptionStatus", "pair": pair,
                                "status": "subscribed",
                                "subscription": {"depth": depth, "name": "book"}}), 1)
    assert proto.depths == {"XBT/USD": 10, "ETH/USD": 25}
    assert proto.depth == 25  # the BookKeeper truncates to the largest ...
    book = L2Book()
    levels = [[f"{100 + i}.0", "1.0", "1.0"] for i in range(25)]
    book.load_snapshot([], levels)
    msg = BookMsg("kraken", "XBT/USD", 0, 0, [], [], checksum=0)
    proto.verify(book, msg)
    assert len(book.asks) == 10  # ... and verify trims the shallower pair to its own depth


# -- corruption -> checksum failure -> resubscribe that pair only --------------------------
@needs_data
def test_corrupted_level_resyncs_only_that_pair_and_recovers():
    frames = recv_frames(BOOK_FILE)
    sym = "XBT/CHF"
    ref_proto, ref = fresh()
    mine = [i for i, (f, _) in enumerate(frames) if f.endswith(f'"{sym}"]') and '"c":' in f]
    k, j = _first_top10_update(frames, mine[40:], sym), mine[120]
    snap_k = snap_j = None
    for i, (frame, ts) in enumerate(frames):
        replay(ref_proto, ref, [(frame, ts)])
        if i == k:
            snap_k = state(ref)
        if i == j:
            book = ref.book("kraken", sym)
            snap_j = (book.bid_levels(1000), book.ask_levels(1000))
    proto, keeper = fresh()
    resyncs: list[Resync] = []
    keeper.listeners.append(resyncs.append)
    replay(proto, keeper, frames[:k])
    replay(proto, keeper, [(_corrupt_first_qty(frames[k][0]), frames[k][1])])
    assert [(r.symbol, r.reason) for r in resyncs] == [(sym, ResyncReason.CHECKSUM)]
    sub = {"name": "book", "depth": 1000}
    assert keeper.take_followups() == [
        Outbound("kraken", json.dumps({"event": e, "pair": [sym], "subscription": sub}))
        for e in ("unsubscribe", "subscribe")]
    now = state(keeper)
    assert all(now[key] == snap_k[key] for key in snap_k if key[1] != sym)
    assert len(keeper.book("kraken", sym)) == 0
    ignored = proto.stats.ignored
    replay(proto, keeper, frames[k + 1:j + 1])
    assert proto.stats.ignored - ignored == len([i for i in mine if k < i <= j])
    new_snapshot = json.dumps([464, {"as": snap_j[1], "bs": snap_j[0]}, "book-1000", sym])
    replay(proto, keeper, [(new_snapshot, frames[j][1])] + frames[j + 1:])
    assert state(keeper) == state(ref)
    assert keeper.counters["checksum_failures"] == 1 and keeper.counters["resyncs"] == 1


def _first_top10_update(frames, candidates, sym) -> int:
    """The first candidate update whose first level lands in the top 10 (so it is checked)."""
    proto, keeper = fresh()
    done = 0
    for i in candidates:
        replay(proto, keeper, frames[done:i + 1])
        done = i + 1
        body = json.loads(frames[i][0])[1]
        side, levels = ("a", body["a"]) if "a" in body else ("b", body["b"])
        book = keeper.book("kraken", sym)
        top = book.ask_levels(10) if side == "a" else book.bid_levels(10)
        if float(levels[0][1]) != 0.0 and levels[0] in top:
            return i
    raise AssertionError("no update inside the top 10")


def _corrupt_first_qty(frame: str) -> str:
    msg = json.loads(frame)
    body = msg[1]
    level = (body.get("a") or body.get("b"))[0]
    level[1] = f"{float(level[1]) + 1.0:.8f}"
    return json.dumps(msg)


# -- fuzzing: only ParseError, and nothing that reaches the book can break it ----------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_arbitrary_input_raises_only_parse_error(data):
    try:
        KrakenProtocol().parse(data, 0)
    except ParseError:
        pass


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["a", "b", "c", "as", "bs", "r"]), inner,
                                      max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["book-10", "trade", "ticker", "spread"]))
def test_fuzz_v1_shapes(body, chan):
    proto, keeper = fresh()
    snap = [["1.0", "1.0", "1.0"]]
    keeper.apply(proto.parse(json.dumps([1, {"as": snap, "bs": []}, "book-10", "P"]), 0)[0])
    _feed_checked(proto, keeper, json.dumps([1, body, chan, "P"]))


@cache
def _sample_frames() -> tuple[str, str, list[str]]:
    frames = [f for f, _ in recv_frames(BOOK_FILE)]
    sym = "ETH/CHF"
    mine = [f for f in frames if f.endswith(f'"{sym}"]')]
    others = [f for f, _ in recv_frames(DATA / "kraken/KRAKEN.ws.48.0")][:20]
    return sym, mine[0], mine[1:60] + others + frames[:5]


@needs_data
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_real_frames(data):
    _, snapshot, frames = _sample_frames()
    proto, keeper = fresh()
    keeper.apply(proto.parse(snapshot, 0)[0])
    raw = bytearray(data.draw(st.sampled_from(frames)).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[at] = data.draw(st.sampled_from(b'0123456789.-eE"[]{},: x\xff'))
        elif op == "cut":
            del raw[at:at + data.draw(st.integers(1, 8))]
        else:
            raw[at:at] = data.draw(st.sampled_from([b'"', b",", b"[]", b"{}", b"0", b"-1", b"1e9"]))
        if not raw:
            raw = bytearray(b"x")
    _feed_checked(proto, keeper, bytes(raw))


def _feed_checked(proto: KrakenProtocol, keeper: BookKeeper, frame: str | bytes) -> None:
    try:
        events = proto.parse(frame, 1)
    except ParseError as exc:
        assert exc.venue == "kraken"
        return
    for ev in events:
        if type(ev) is BookMsg:
            keeper.apply(ev)  # must never raise
