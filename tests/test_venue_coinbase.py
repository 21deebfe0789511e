"""Coinbase legacy feed (recorded) and Advanced Trade (doc examples): books, trades, gaps."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdesk.core.errors import ParseError
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
from flightdesk.plugins.venues.coinbase import CoinbaseProtocol
from tests.fixtures.recorded import DATA, needs_recording, recv_frames

BOOK_FILE = DATA / "coinbase" / "COINBASE.ws.28.0"
needs_data = needs_recording("coinbase", "COINBASE.ws.28.0")


def kind(ev: MarketEvent) -> str:
    if type(ev) is BookMsg:
        return "snapshot" if ev.snapshot else "update"
    return type(ev).__name__


def replay(proto: CoinbaseProtocol, keeper: BookKeeper, frames) -> Counter[str]:
    counts: Counter[str] = Counter()
    for frame, ts in frames:
        for ev in proto.parse(frame, ts):
            counts[kind(ev)] += 1
            if type(ev) is BookMsg:
                keeper.apply(ev)
            elif type(ev) is Resync:
                keeper.resync(ev)
    return counts


def fresh(api: str = "advanced") -> tuple[CoinbaseProtocol, BookKeeper]:
    proto = CoinbaseProtocol(api=api)
    return proto, BookKeeper({"coinbase": proto})


def state(keeper: BookKeeper) -> dict:
    return {key: (dict(b.bids), dict(b.asks)) for key, b in keeper.books.items()}


# -- the recorded legacy session ------------------------------------------------------------
@needs_data
def test_legacy_recording_books_never_cross():
    proto, keeper = fresh()
    counts = replay(proto, keeper, recv_frames(BOOK_FILE))
    assert counts["snapshot"] == 10
    assert counts["update"] == 9_719
    assert keeper.counters["book_messages"] == 9_729
    assert keeper.counters["crossed_books"] == 0
    assert keeper.counters["resyncs"] == 0
    assert counts["TickerMsg"] == 107
    assert counts["Status"] == 3  # subscriptions
    assert proto.stats.errors == proto.stats.ignored == 0


@needs_data
def test_legacy_match_sequence_jumps_are_not_gaps():
    proto, keeper = fresh()
    frames = recv_frames(BOOK_FILE)
    matches = [json.loads(f) for f, _ in frames if '"type":"match"' in f or '"last_match"' in f]
    last: dict[str, int] = {}
    jumps = 0
    for m in matches:
        if m["product_id"] in last and m["sequence"] != last[m["product_id"]] + 1:
            jumps += 1
        last[m["product_id"]] = m["sequence"]
    assert (len(matches), jumps) == (107, 97)  # 97 match + 10 last_match
    counts = replay(proto, keeper, frames)
    assert counts["TradeMsg"] == len(matches)
    assert counts["Resync"] == keeper.counters["resyncs"] == 0


@needs_data
def test_legacy_trade_aggressor_and_ticker():
    proto = CoinbaseProtocol()
    events = [e for f, ts in recv_frames(BOOK_FILE)[:40] for e in proto.parse(f, ts)]
    band = next(e for e in events if type(e) is TradeMsg)
    # last_match: maker side "sell" -> the taker bought
    assert (band.symbol, band.trade_id, band.price, band.qty, band.side) == (
        "BAND-GBP", "881613", 14.7775, 0.04, "buy")
    assert band.ts_event == 1_618_677_810_244_075_000
    ticker = next(e for e in events if type(e) is TickerMsg)
    assert (ticker.bid_px, ticker.ask_px, ticker.bid_qty, ticker.update_id) == (
        "14.7550", "14.8060", "", 333938798)  # 2021 tickers carried no sizes


# -- corruption -> crossed book -> resubscribe that product only -----------------------------
@needs_data
def test_crossed_book_resyncs_only_that_product_and_recovers():
    frames = recv_frames(BOOK_FILE)
    product = "SKL-USD"
    mine = [i for i, (f, _) in enumerate(frames)
            if f'"type":"l2update","product_id":"{product}"' in f]
    k, j = mine[100], mine[600]
    ref_proto, ref = fresh()
    for i, (frame, ts) in enumerate(frames):
        replay(ref_proto, ref, [(frame, ts)])
        if i == k:
            snap_k = state(ref)
        if i == j:
            book = ref.book("coinbase", product)
            snap_j = (book.bid_levels(100_000), book.ask_levels(100_000))
    proto, keeper = fresh(api="legacy")
    resyncs: list[Resync] = []
    keeper.listeners.append(resyncs.append)
    replay(proto, keeper, frames[:k])
    bad = json.loads(frames[k][0])
    bad["changes"] = [["buy", "99999", "1"]]  # a bid far above the best ask
    replay(proto, keeper, [(json.dumps(bad), frames[k][1])])
    assert [(r.symbol, r.reason) for r in resyncs] == [(product, ResyncReason.CROSSED)]
    assert keeper.take_followups() == [
        Outbound("coinbase", json.dumps({"type": t, "product_ids": [product],
                                         "channels": ["level2"]}))
        for t in ("unsubscribe", "subscribe")]
    now = state(keeper)
    assert all(now[key] == snap_k[key] for key in snap_k if key[1] != product)
    replay(proto, keeper, frames[k + 1:j + 1])
    snapshot = json.dumps({"type": "snapshot", "product_id": product,
                           "bids": snap_j[0], "asks": snap_j[1]})
    replay(proto, keeper, [(snapshot, frames[j][1])] + frames[j + 1:])
    assert state(keeper) == state(ref)
    assert keeper.counters["crossed_books"] == 1 and keeper.counters["resyncs"] == 1


# -- Advanced Trade (frames shaped like the docs' examples) ----------------------------------
T0 = "2023-02-09T20:32:50.714964855Z"


def adv(channel: str, seq: int, events: list, ts: str = T0) -> str:
    return json.dumps({"channel": channel, "client_id": "", "timestamp": ts,
                       "sequence_num": seq, "events": events})


def l2(kind_: str, product: str, *updates: tuple[str, str, str]) -> dict:
    return {"type": kind_, "product_id": product, "updates": [
        {"side": s, "event_time": "1970-01-01T00:00:00Z", "price_level": p, "new_quantity": q}
        for s, p, q in updates]}


def advanced_session() -> list[str]:
    """Two products, l2_data + heartbeats + market_trades on one contiguous sequence."""
    return [
        adv("subscriptions", 0, [{"subscriptions": {"level2": ["BTC-USD", "ETH-USD"]}}]),
        adv("l2_data", 1, [l2("snapshot", "BTC-USD", ("bid", "21921.73", "0.06317902"),
                              ("bid", "21921.3", "0.02"), ("offer", "21921.74", "0.5"))]),
        adv("l2_data", 2, [l2("snapshot", "ETH-USD", ("bid", "1260.01", "3"),
                              ("offer", "1260.5", "1.5"))]),
        adv("heartbeats", 3, [{"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC",
                               "heartbeat_counter": 3049}]),
        adv("l2_data", 4, [l2("update", "BTC-USD", ("bid", "21921.73", "0"),
                              ("offer", "21922", "0.1"))]),
        adv("market_trades", 5, [{"type": "update", "trades": [
            {"trade_id": "000000000", "product_id": "ETH-USD", "price": "1260.01",
             "size": "0.3", "side": "BUY", "time": "2019-08-14T20:42:27.265Z"}]}]),
        adv("l2_data", 6, [l2("update", "ETH-USD", ("offer", "1260.5", "0"),
                              ("offer", "1261", "2"))]),
    ]


def test_advanced_session_in_sequence():
    proto, keeper = fresh()
    events = [e for i, f in enumerate(advanced_session()) for e in proto.parse(f, i)]
    assert [kind(e) for e in events] == ["Status", "snapshot", "snapshot", "Status", "update",
                                         "TradeMsg", "update"]
    for ev in events:
        if type(ev) is BookMsg:
            assert keeper.apply(ev) is not None
    assert keeper.book("coinbase", "BTC-USD").top() == (21921.3, 0.02, 21921.74, 0.5)
    assert keeper.book("coinbase", "ETH-USD").top() == (1260.01, 3.0, 1261.0, 2.0)
    expected = datetime(2023, 2, 9, 20, 32, 50, tzinfo=timezone.utc).timestamp()
    assert events[1].ts_event == int(expected) * 1_000_000_000 + 714_964_855
    assert events[1].last_id == 1
    trade = events[5]
    assert (trade.symbol, trade.side, trade.price, trade.trade_id) == ("ETH-USD", "buy",
                                                                       1260.01, "000000000")
    assert events[3] == Status("coinbase", "heartbeats", "3049")
    assert keeper.counters["resyncs"] == 0


def test_advanced_gap_resyncs_every_product_on_the_connection():
    proto, keeper = fresh()
    replay(proto, keeper, [(f, i) for i, f in enumerate(advanced_session())])
    # a lower (out-of-order) number is ignored, not a gap
    assert proto.parse(adv("heartbeats", 5, [{"heartbeat_counter": 1}]), 7) == []
    # 7 and 8 lost: the next l2_data update is dropped and both books are resynced
    events = proto.parse(adv("l2_data", 9, [l2("update", "BTC-USD", ("bid", "1", "1"))]), 8)
    assert [(type(e), e.symbol, e.reason) for e in events] == [
        (Resync, "BTC-USD", ResyncReason.GAP), (Resync, "ETH-USD", ResyncReason.GAP)]
    assert "2 message(s) lost" in events[0].detail
    for ev in events:
        keeper.resync(ev)
    assert keeper.take_followups() == [
        Outbound("coinbase", json.dumps({"type": t, "product_ids": [p], "channel": "level2"}))
        for p in ("BTC-USD", "ETH-USD") for t in ("unsubscribe", "subscribe")]
    assert proto.parse(adv("l2_data", 10, [l2("update", "ETH-USD", ("bid", "1", "1"))]), 9) == []
    again = proto.parse(adv("l2_data", 11, [l2("snapshot", "ETH-USD", ("bid", "1", "1"))]), 10)
    assert [kind(e) for e in again] == ["snapshot"]
    assert kind(proto.parse(adv("l2_data", 12, [l2("update", "ETH-USD",
                                                    ("bid", "2", "1"))]), 11)[0]) == "update"


def test_unhandled_channel_still_advances_the_connection_sequence():
    proto, keeper = fresh()
    frames = advanced_session()
    frames.append(adv("candles", 7, [{"type": "update", "candles": []}]))
    frames.append(adv("l2_data", 8, [l2("update", "BTC-USD", ("bid", "21921", "1"))]))
    counts = replay(proto, keeper, [(f, i) for i, f in enumerate(frames)])
    assert counts["Resync"] == 0 and counts["update"] == 3
    assert proto.stats.by_kind["unhandled_channel"] == 1


def test_reset_connection_restarts_the_sequence():
    proto, keeper = fresh()
    replay(proto, keeper, [(f, i) for i, f in enumerate(advanced_session())])
    proto.reset_connection()
    assert [kind(e) for e in proto.parse(advanced_session()[1], 20)] == ["snapshot"]


# -- fuzzing ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_arbitrary_input_raises_only_parse_error(data):
    try:
        CoinbaseProtocol().parse(data, 0)
    except ParseError as exc:
        assert exc.venue == "coinbase"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["type", "product_id", "updates", "side",
                                                       "price_level", "new_quantity", "trades"]),
                                      inner, max_size=5), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["l2update", "snapshot", "match", "ticker", "l2_data",
                              "market_trades", "ticker_batch", "heartbeats"]))
def test_fuzz_shapes(body, name):
    proto, keeper = fresh()
    legacy = '{"type":"snapshot","product_id":"P","bids":[["1","1"]],"asks":[]}'
    replay(proto, keeper, [(advanced_session()[1], 0), (legacy, 0)])
    if name in ("l2_data", "market_trades", "ticker_batch", "heartbeats"):
        frame = adv(name, 2, [body] if not isinstance(body, list) else body)
    else:
        frame = json.dumps({"type": name, "product_id": "P", "changes": body, "bids": body,
                            "time": T0})
    _feed_checked(proto, keeper, frame)


@cache
def _sample_frames() -> tuple[str, list[str]]:
    frames = [f for f, _ in recv_frames(BOOK_FILE)]
    snapshot = next(f for f in frames if '"type":"snapshot","product_id":"BAND-GBP"' in f)
    mine = [f for f in frames if '"product_id":"BAND-GBP"' in f]
    return snapshot, mine[:80] + frames[:5] + advanced_session()


@needs_data
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_real_frames(data):
    snapshot, frames = _sample_frames()
    proto, keeper = fresh()
    replay(proto, keeper, [(snapshot, 0)])
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


def _feed_checked(proto: CoinbaseProtocol, keeper: BookKeeper, frame: str | bytes) -> None:
    try:
        events = proto.parse(frame, 1)
    except ParseError as exc:
        assert exc.venue == "coinbase"
        return
    for ev in events:
        if type(ev) is BookMsg:
            keeper.apply(ev)  # must never raise
