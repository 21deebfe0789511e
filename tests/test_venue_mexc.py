"""MEXC: protobuf and legacy JSON sessions, version bridging, gaps, garbage, fuzzing."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdesk.core.errors import ConfigError, ParseError
from flightdesk.core.market.events import Resync, ResyncReason, SnapshotRequest, Status, TradeMsg
from flightdesk.core.runtime.config import load_config
from flightdesk.plugins.venues.mexc import MexcProtocol, make_venue
from flightdesk.plugins.venues.mexc.proto import encode, fields, text
from tests.fixtures.pump import Pump
from tests.fixtures.recorded import Session, deals_push, depth_push, ticker_push

SYM = "BTCUSDT"


def levels(side: dict) -> dict:
    return {lv[0]: lv[1] for lv in side.values()}


def run(session: Session, snapshot_index: int, skip: frozenset[int] = frozenset()) -> Pump:
    """Feed the session; answer the first snapshot request with the book after
    ``snapshot_index`` pushes, and later requests with the book at that moment."""
    pump = Pump(MexcProtocol())
    for i, frame in enumerate(session.frames):
        if i in skip:
            continue
        before = len(pump.requests)
        pump.frame(frame, i)
        while len(pump.requests) > before:
            at = snapshot_index if before == 0 else i + 1
            before = len(pump.requests)
            pump.snapshot(SYM, session.snapshot_at(at), i)
    return pump


@pytest.mark.parametrize("legacy", [False, True])
def test_session_bridges_the_snapshot_and_ends_on_the_venue_book(legacy):
    session = Session(legacy=legacy)
    pump = run(session, snapshot_index=0)  # snapshot older than the first push: bridged
    bids, asks = session.final()
    book = pump.book(SYM)
    assert (levels(book.bids), levels(book.asks)) == (bids, asks)
    assert pump.requests == [SYM] and pump.resyncs == []
    assert len(pump.applied) == 300
    assert book.last_id == session.books[-1][0]
    assert pump.keeper.counters["crossed_books"] == 0


def test_snapshot_inside_the_buffer_drops_older_pushes():
    session = Session()
    proto = MexcProtocol()
    for i, frame in enumerate(session.frames[:20]):
        out = proto.parse(frame, i)
        assert out == ([SnapshotRequest("mexc", SYM)] if i == 0 else [])
    out = proto.parse_snapshot(SYM, session.snapshot_at(12), 0)
    assert [m.last_id for m in out] == [session.books[i][0] for i in range(12, 21)]
    assert proto.state(SYM) == "synced"


def test_snapshot_newer_than_the_stream_can_bridge_is_requested_again():
    session = Session()
    proto = MexcProtocol()
    proto.parse(session.frames[5], 0)  # pushes 0..4 never arrived
    out = proto.parse_snapshot(SYM, session.snapshot_at(2), 0)
    assert out == [SnapshotRequest("mexc", SYM)] and proto.state(SYM) == "buffering"
    assert proto.stats.by_kind["snapshot_too_old"] == 1
    out = proto.parse_snapshot(SYM, session.snapshot_at(5), 0)
    assert [m.last_id for m in out] == [session.books[5][0], session.books[6][0]]


def test_gap_resyncs_and_recovers_to_the_uninterrupted_book():
    session = Session(seed=3)
    pump = run(session, snapshot_index=0, skip=frozenset({100}))
    assert [r.reason for r in pump.resyncs] == [ResyncReason.GAP]
    assert pump.keeper.counters["resyncs_gap"] == 1 and pump.requests == [SYM, SYM]
    bids, asks = session.final()
    assert (levels(pump.book(SYM).bids), levels(pump.book(SYM).asks)) == (bids, asks)


def test_outdated_and_duplicate_pushes_are_ignored():
    session = Session()
    pump = run(session, snapshot_index=0)
    pump.frame(session.frames[10], 0)
    assert pump.protocol.stats.by_kind["outdated"] == 1 and pump.resyncs == []


def test_deals_tickers_replies_and_legacy_channels():
    p = MexcProtocol()
    [t1, t2] = p.parse(deals_push(SYM, [("100.5", "0.2", 1, 1_700_000_000_123, "a1"),
                                        ("100.4", "1", 2, 1_700_000_000_124, "a2")]), 9)
    assert t1 == TradeMsg("mexc", SYM, 1_700_000_000_123_000_000, 9, "a1", 100.5, 0.2, "buy")
    assert t2.side == "sell"
    [tk] = p.parse(ticker_push(SYM, "100.1", "3", "100.2", "4"), 9)
    assert (tk.bid_px, tk.bid_qty, tk.ask_px, tk.ask_qty) == ("100.1", "3", "100.2", "4")
    legacy = {"c": "spot@public.deals.v3.api@ETHUSDT", "s": "ETHUSDT", "t": 5,
              "d": {"deals": [{"p": "2000.1", "v": "0.5", "S": 2, "t": 1_661_927_587_825}],
                    "e": "spot@public.deals.v3.api"}}
    [lt] = p.parse(json.dumps(legacy), 9)
    assert (lt.symbol, lt.price, lt.qty, lt.side, lt.ts_event) == (
        "ETHUSDT", 2000.1, 0.5, "sell", 1_661_927_587_825_000_000)
    bt = {"c": "spot@public.bookTicker.v3.api@ETHUSDT", "s": "ETHUSDT", "t": 5,
          "d": {"A": "1.5", "B": "2.5", "a": "2000.2", "b": "2000.1"}}
    assert p.parse(json.dumps(bt), 9)[0].ask_qty == "1.5"
    assert p.parse('{"id":0,"code":0,"msg":"spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT"}',
                   9) == [Status("mexc", "ack", "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT")]
    assert p.parse(b'{"id":0,"code":0,"msg":"PONG"}', 9)[0].kind == "pong"
    assert p.parse('{"c":"spot@public.kline.v3.api@BTCUSDT@Min1","d":{}}', 9) == []


@pytest.mark.parametrize("frame", [
    b"", b"\xff\xff\xff", b"\x0a\x10short", "not json", "[1, 2]", '{"c": 1, "d": {}}',
    depth_push(SYM, [["NaN", "1"]], [], 1, 1), depth_push(SYM, [["-5", "1"]], [], 1, 1),
    depth_push(SYM, [["5", "-1"]], [], 1, 1), depth_push(SYM, [["inf", "1"]], [], 1, 1),
    depth_push(SYM, [], [], 9, 3), depth_push(SYM, [], [], "x", 3),
    deals_push(SYM, [("1", "1", 7, 1, "z")]),
    '{"c":"spot@public.increase.depth.v3.api@X","d":{"bids":[{"p":"nan","v":"1"}],"r":"5"}}',
    '{"c":"spot@public.increase.depth.v3.api@X","d":{"bids":[],"r":"-5"}}',
])
def test_garbage_raises_parse_error_naming_the_venue(frame):
    p = MexcProtocol()
    with pytest.raises(ParseError, match="mexc") as info:
        p.parse(frame, 1)
    assert info.value.venue == "mexc" and p.stats.errors == 1


@pytest.mark.parametrize("body", ["", "{}", '{"lastUpdateId":"1","bids":[],"asks":[]}',
                                  '{"lastUpdateId":1,"bids":[["nan","1"]],"asks":[]}'])
def test_bad_snapshots(body):
    with pytest.raises(ParseError, match="bad snapshot"):
        MexcProtocol().parse_snapshot(SYM, body, 1)


def test_proto_reader_round_trip_and_limits():
    msg = encode((1, "chan"), (5, 300), (313, encode((4, "17"))))
    got = fields(msg)
    assert text(got, 1) == "chan" and got[5] == [300] and text(fields(got[313][0]), 4) == "17"
    for bad in (b"\x0a\x05ab", b"\x08", b"\x80" * 11, b"\x00\x01", b"\x0b"):
        with pytest.raises(ValueError):
            fields(bad)


def test_make_venue_and_config_errors():
    venue = make_venue("mx", {"symbols": ["btcusdt", "ethusdt"], "channels": ["depth"],
                              "ws_url": "ws://127.0.0.1:9/ws", "rest_url": "http://127.0.0.1:9"})
    frames = venue.feed.subscribe()
    assert json.loads(frames[0]) == {"method": "SUBSCRIPTION", "params": [
        "spot@public.aggre.depth.v3.api.pb@100ms@BTCUSDT",
        "spot@public.aggre.depth.v3.api.pb@100ms@ETHUSDT"]}
    assert venue.feed.snapshot_url("BTCUSDT") == (
        "http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=1000")
    legacy = make_venue("mx", {"api": "legacy", "channels": ["depth", "deals"]})
    assert json.loads(legacy.feed.subscribe()[0])["params"] == [
        "spot@public.increase.depth.v3.api@BTCUSDT", "spot@public.deals.v3.api@BTCUSDT"]
    for cfg, match in (({"api": "v9"}, "api must be one of"), ({"speed": "1s"}, "speed"),
                       ({"symbols": []}, "symbols is empty"), ({"depht_limit": 5}, "depth_limit"),
                       ({"symbols": [f"S{i}" for i in range(16)]}, "30 per connection")):
        with pytest.raises(ConfigError, match=match):
            make_venue("mx", cfg)


def test_registered_and_configurable_from_toml_tables():
    from flightdesk.core.runtime.desk import Desk

    cfg = load_config(overrides={"venues": {"mx": {"type": "mexc", "symbols": ["BTCUSDT"]}},
                                 "flight": {"enabled": False}})
    desk = Desk(cfg)
    assert desk.rt.venue_tables["mx"]["api"] == "protobuf"
    desk.store.close()
    desk.bus.close()


# -- fuzzing ------------------------------------------------------------------------------
SAMPLES = [*Session(steps=5).frames, *Session(steps=5, legacy=True).frames,
           deals_push(SYM, [("1.5", "2", 1, 5, "x")]), ticker_push(SYM, "1", "2", "3", "4")]
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300) | st.text(max_size=200))
def test_fuzz_arbitrary_input_raises_only_parse_error(data):
    p = MexcProtocol()
    try:
        p.parse(data, 1)
    except ParseError:
        pass


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_mutated_real_frames(frame, data):
    raw = bytearray(frame.encode() if isinstance(frame, str) else frame)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    p = MexcProtocol()
    p.parse_snapshot(SYM, '{"lastUpdateId":1,"bids":[],"asks":[]}', 0)
    try:
        events = p.parse(bytes(raw), 1)
    except ParseError:
        return
    for ev in events:  # whatever survives is well-formed
        if type(ev) is Resync:
            assert ev.reason is ResyncReason.GAP
        levels_ = getattr(ev, "bids", []) + getattr(ev, "asks", [])
        assert all(0 < float(lv[0]) < float("inf") and float(lv[1]) >= 0 for lv in levels_)


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c,
                                                                        max_size=4),
                    max_leaves=12),
       st.sampled_from(["public.increase.depth.v3.api", "public.deals.v3.api",
                        "public.bookTicker.v3.api"]))
def test_fuzz_json_shapes(d, channel):
    frame = json.dumps({"c": f"spot@{channel}@BTCUSDT", "d": d, "s": "BTCUSDT", "t": 1})
    try:
        MexcProtocol().parse(frame, 1)
    except ParseError:
        pass


@FUZZ
@given(st.text(max_size=200), st.text(max_size=200), st.binary(max_size=20))
def test_fast_level_reader_agrees_with_the_general_one(price, qty, tail):
    from flightdesk.plugins.venues.mexc.proto import pair

    for raw in (encode((1, price), (2, qty)), encode((2, qty), (1, price)),
                encode((1, price), (2, qty)) + tail):
        try:
            want = (text(fields(raw), 1), text(fields(raw), 2))
        except (ValueError, UnicodeDecodeError):
            with pytest.raises((ValueError, UnicodeDecodeError)):
                pair(raw)
            continue
        assert pair(raw) == want
