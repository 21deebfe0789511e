"""OKX v5 (recorded books-l2-tbt; seqId rules from the docs): checksums, chaining, fuzzing."""

from __future__ import annotations

import json
from collections import Counter
from functools import cache

import pytest
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
from flightdesk.plugins.venues.okx import OkxProtocol, checksum_string, okx_checksum
from tests.fixtures.recorded import DATA, needs_recording, recv_frames

BOOK_FILE = DATA / "okx" / "OKX.ws.1.0"
needs_data = needs_recording("okx", "OKX.ws.1.0")


def kind(ev: MarketEvent) -> str:
    if type(ev) is BookMsg:
        return "snapshot" if ev.snapshot else "update"
    return type(ev).__name__


def replay(proto: OkxProtocol, keeper: BookKeeper, frames) -> Counter[str]:
    counts: Counter[str] = Counter()
    for frame, ts in frames:
        for ev in proto.parse(frame, ts):
            counts[kind(ev)] += 1
            if type(ev) is BookMsg:
                keeper.apply(ev)
            elif type(ev) is Resync:
                keeper.resync(ev)
    return counts


def fresh() -> tuple[OkxProtocol, BookKeeper]:
    proto = OkxProtocol()
    return proto, BookKeeper({"okx": proto})


def state(keeper: BookKeeper) -> dict:
    return {key: (dict(b.bids), dict(b.asks)) for key, b in keeper.books.items()}


def book_frame(action: str, prev: int | None, seq: int | None, bids=(), asks=(),
               checksum: int = 0, inst: str = "BTC-USDT", channel: str = "books") -> str:
    data: dict = {"asks": [list(a) for a in asks], "bids": [list(b) for b in bids],
                  "ts": "1597026383085", "checksum": checksum}
    if seq is not None:
        data |= {"prevSeqId": prev, "seqId": seq}
    return json.dumps({"arg": {"channel": channel, "instId": inst}, "action": action,
                       "data": [data]})


# -- the recorded session -----------------------------------------------------------------
@needs_data
def test_recording_every_checksum_verifies():
    proto, keeper = fresh()
    counts = replay(proto, keeper, recv_frames(BOOK_FILE))
    assert counts["snapshot"] == 20
    assert counts["update"] == 3_659
    assert proto.stats.by_kind["checksum_ok"] == 3_679
    assert "checksum_failed" not in proto.stats.by_kind
    assert keeper.counters["checksum_failures"] == 0
    assert keeper.counters["resyncs"] == keeper.counters["crossed_books"] == 0
    assert counts["TradeMsg"] == 19 and counts["TickerMsg"] == 19
    assert proto.stats.by_kind["subscribe"] == 60
    assert proto.stats.errors == proto.stats.ignored == 0


@needs_data
def test_recorded_trade_and_ticker_fields():
    proto = OkxProtocol()
    events = [e for f, ts in recv_frames(BOOK_FILE) for e in proto.parse(f, ts)]
    trade = next(e for e in events if type(e) is TradeMsg)
    assert trade == TradeMsg("okx", "PROPS-ETH", 1_645_999_995_692_000_000, trade.ts_recv,
                             "47220", 0.00000166, 637.04056847, "sell")
    ticker = next(e for e in events if type(e) is TickerMsg)
    assert (ticker.symbol, ticker.bid_px, ticker.ask_px, ticker.ask_qty) == (
        "ETH-USD-220624-20000-C", "", "0.002", "20")  # one-sided option book


# -- checksum vectors (OKX docs) ------------------------------------------------------------
@pytest.mark.parametrize(("bids", "asks", "string", "crc"), [
    ([["3366.1", "7"], ["3366", "6"]], [["3366.8", "9"], ["3368", "8"]],
     "3366.1:7:3366.8:9:3366:6:3368:8", -1881014294),
    ([["3366.1", "7"]], [["3366.8", "9"], ["3368", "8"], ["3372", "8"]],
     "3366.1:7:3366.8:9:3368:8:3372:8", 831078360),
])
def test_doc_vectors_pinned(bids, asks, string, crc):
    assert checksum_string(bids, asks) == string
    book = L2Book()
    book.load_snapshot(bids, asks)
    assert okx_checksum(book) == crc


# -- seqId rules (docs example) -------------------------------------------------------------
DOC_BIDS = [["3366.1", "7", "0", "3"], ["3366", "6", "3", "4"]]
DOC_ASKS = [["3366.8", "9", "10", "3"], ["3368", "8", "3", "4"]]


def doc_sequence() -> list[str]:
    """snapshot (-1,10) -> update (10,15) -> no-change (15,15) -> reset (15,3) -> (3,5)."""
    return [book_frame("snapshot", -1, 10, DOC_BIDS, DOC_ASKS, checksum=-1881014294),
            book_frame("update", 10, 15, [["3366", "0", "0", "0"]]),
            book_frame("update", 15, 15),
            book_frame("update", 15, 3, [], [["3369", "2", "0", "1"]]),
            book_frame("update", 3, 5, [["3365.5", "1", "0", "1"]])]


def test_doc_seqid_sequence_has_no_resync():
    proto, keeper = fresh()
    events = [e for i, f in enumerate(doc_sequence()) for e in proto.parse(f, i)]
    assert [kind(e) for e in events] == ["snapshot"] + ["update"] * 4
    for ev in events:
        assert keeper.apply(ev) is not None
    assert [(e.first_id, e.last_id) for e in events] == [(-1, 10), (10, 15), (15, 15),
                                                         (15, 3), (3, 5)]
    assert events[0].checksum == -1881014294  # verified: the doc vector
    assert all(e.checksum is None for e in events[1:])  # checksum 0 = deprecated, absent
    assert keeper.counters["resyncs"] == 0
    book = keeper.book("okx", "BTC-USDT")
    assert [lv[0] for lv in book.bid_levels(5)] == ["3366.1", "3365.5"]
    assert [lv[0] for lv in book.ask_levels(5)] == ["3366.8", "3368", "3369"]


def test_broken_chain_resyncs_that_instrument_only():
    proto, keeper = fresh()
    other = book_frame("snapshot", -1, 7, DOC_BIDS, DOC_ASKS, inst="ETH-USDT",
                       channel="books-l2-tbt")
    replay(proto, keeper, [(f, i) for i, f in enumerate(doc_sequence() + [other])])
    (gap,) = proto.parse(book_frame("update", 6, 8, [["3366", "1", "0", "1"]]), 9)
    assert (type(gap), gap.symbol, gap.reason) == (Resync, "BTC-USDT", ResyncReason.GAP)
    assert "prevSeqId 6 != last seqId 5" in gap.detail
    keeper.resync(gap)
    args = [{"channel": "books", "instId": "BTC-USDT"}]
    assert keeper.take_followups() == [
        Outbound("okx", json.dumps({"op": "unsubscribe", "args": args})),
        Outbound("okx", json.dumps({"op": "subscribe", "args": args}))]
    assert proto.parse(book_frame("update", 8, 9, [["3366", "1", "0", "1"]]), 10) == []
    assert len(keeper.book("okx", "ETH-USDT")) == 4  # untouched
    assert proto.parse(book_frame("update", 7, 8, inst="ETH-USDT"), 11)[0].last_id == 8
    assert kind(proto.parse(doc_sequence()[0], 12)[0]) == "snapshot"  # accepted again


def test_a_rejected_update_does_not_advance_the_chain():
    proto, keeper = fresh()
    replay(proto, keeper, [(doc_sequence()[0], 0)])
    with pytest.raises(ParseError, match="bad book level"):
        proto.parse(book_frame("update", 10, 15, [["NaN", "1", "0", "1"]]), 1)
    (gap,) = proto.parse(book_frame("update", 15, 16, [["3366", "1", "0", "1"]]), 2)
    assert type(gap) is Resync and "prevSeqId 15 != last seqId 10" in gap.detail


def test_pong_and_events():
    proto = OkxProtocol()
    assert proto.parse("pong", 1) == [Status("okx", "pong")]
    err = '{"event":"error","code":"60012","msg":"Invalid request"}'
    assert proto.parse(err, 1) == [Status("okx", "error", "60012 Invalid request")]
    login = '{"event":"login","code":"0","msg":""}'
    assert proto.parse(login, 1)[0].kind == "login"
    candle = '{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[["1","2"]]}'
    assert proto.parse(candle, 1) == []
    assert proto.stats.by_kind["unhandled_channel"] == 1 and proto.stats.errors == 0


# -- corruption -> checksum failure -> resubscribe that instrument only ----------------------
@needs_data
def test_corrupted_level_resyncs_only_that_instrument_and_recovers():
    frames = recv_frames(BOOK_FILE)
    inst = "UNI-USD-SWAP"
    mine = [i for i, (f, _) in enumerate(frames)
            if f'"instId":"{inst}"}},"action":"update"' in f]
    k = next(i for i in mine[30:] if json.loads(frames[i][0])["data"][0]["bids"])
    j = mine[200]
    ref_proto, ref = fresh()
    for i, (frame, ts) in enumerate(frames):
        replay(ref_proto, ref, [(frame, ts)])
        if i == k:
            snap_k = state(ref)
        if i == j:
            book = ref.book("okx", inst)
            snap_j = (book.bid_levels(10_000), book.ask_levels(10_000), okx_checksum(book))
    proto, keeper = fresh()
    resyncs: list[Resync] = []
    keeper.listeners.append(resyncs.append)
    replay(proto, keeper, frames[:k])
    bad = json.loads(frames[k][0])
    level = bad["data"][0]["bids"][0]
    level[1] = str(float(level[1]) + 1)
    replay(proto, keeper, [(json.dumps(bad), frames[k][1])])
    assert [(r.symbol, r.reason) for r in resyncs] == [(inst, ResyncReason.CHECKSUM)]
    args = [{"channel": "books-l2-tbt", "instId": inst}]
    assert keeper.take_followups() == [
        Outbound("okx", json.dumps({"op": "unsubscribe", "args": args})),
        Outbound("okx", json.dumps({"op": "subscribe", "args": args}))]
    now = state(keeper)
    assert all(now[key] == snap_k[key] for key in snap_k if key[1] != inst)
    replay(proto, keeper, frames[k + 1:j + 1])
    snapshot = json.dumps({"arg": {"channel": "books-l2-tbt", "instId": inst},
                           "action": "snapshot", "data": [{
                               "bids": snap_j[0], "asks": snap_j[1], "ts": "1646003700000",
                               "checksum": snap_j[2]}]})
    replay(proto, keeper, [(snapshot, frames[j][1])] + frames[j + 1:])
    assert state(keeper) == state(ref)
    assert keeper.counters["checksum_failures"] == 1 and keeper.counters["resyncs"] == 1


# -- fuzzing ----------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_fuzz_arbitrary_input_raises_only_parse_error(data):
    try:
        OkxProtocol().parse(data, 0)
    except ParseError as exc:
        assert exc.venue == "okx"


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["asks", "bids", "ts", "seqId",
                                                       "prevSeqId", "checksum", "px"]),
                                      inner, max_size=5), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(JSON, st.sampled_from(["books", "books5", "trades", "tickers", "candle1m"]),
       st.sampled_from(["update", "snapshot", None]))
def test_fuzz_shapes(data, channel, action):
    proto, keeper = fresh()
    replay(proto, keeper, [(doc_sequence()[0], 0)])
    msg = {"arg": {"channel": channel, "instId": "BTC-USDT"}, "data": data}
    if action:
        msg["action"] = action
    _feed_checked(proto, keeper, json.dumps(msg))


@cache
def _sample_frames() -> tuple[str, list[str]]:
    frames = [f for f, _ in recv_frames(BOOK_FILE)]
    mine = [f for f in frames if '"instId":"ZEN-USDT"},"action"' in f]
    return mine[0], mine[1:60] + [f for f in frames if '"channel":"t' in f][:30] + frames[:5]


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


def _feed_checked(proto: OkxProtocol, keeper: BookKeeper, frame: str | bytes) -> None:
    try:
        events = proto.parse(frame, 1)
    except ParseError as exc:
        assert exc.venue == "okx"
        return
    for ev in events:
        if type(ev) is BookMsg:
            keeper.apply(ev)  # must never raise
