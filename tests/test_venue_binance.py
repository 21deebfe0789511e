"""Binance venue: recorded sessions through the real parser with exact counts, sequencing
rules, garbage handling (fuzzed), config, and the feed against a loopback server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flightdesk.core.errors import ConfigError, ParseError
from flightdesk.core.market.events import (
    BookMsg,
    Resync,
    ResyncReason,
    SnapshotRequest,
    Status,
    TickerMsg,
    TradeMsg,
)
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.plugins.venues.binance import BinanceFeed, BinanceProtocol, make_venue
from flightdesk.plugins.venues.binance.parse import loads
from flightdesk.plugins.venues.binance.wire import fast_loads
from tests.fixtures.pump import Pump
from tests.fixtures.recorded import (
    data_file,
    is_snapshot_line,
    read_cryptofeed_http,
    read_cryptofeed_ws,
    read_hftbacktest,
    snapshot_body,
)
from tests.fixtures.servers import ReplayServer

SYM = "BTCUSDT"


@pytest.fixture(scope="module")
def btc() -> list[tuple[int, bytes]]:
    """The hftbacktest BTCUSDT session: (ts_recv_ns, frame); one line is the REST snapshot."""
    return list(read_hftbacktest(data_file("binance", "btcusdt_20240808.gz")))


def replay(pump: Pump, frames: list[tuple[int, bytes]]) -> Pump:
    for ts, frame in frames:
        if is_snapshot_line(frame):
            pump.snapshot(SYM, frame, ts)
        else:
            pump.frame(frame, ts)
    return pump


def ticker_agreement(pump: Pump) -> tuple[int, int]:
    """(bookTickers whose u equals an applied diff's u and agree with the book, disagree)."""
    agree = disagree = 0
    for t in pump.tickers:
        top = pump.tops.get((t.symbol, t.update_id))
        if top is not None:
            venue = (float(t.bid_px), float(t.bid_qty), float(t.ask_px), float(t.ask_qty))
            agree, disagree = (agree + 1, disagree) if top == venue else (agree, disagree + 1)
    return agree, disagree


# -- recorded sessions -------------------------------------------------------------------
def test_btcusdt_session_bridges_and_matches_every_book_ticker(btc):
    pump = replay(Pump(BinanceProtocol()), btc)
    stats = pump.protocol.stats
    assert stats.by_kind == {"depthUpdate": 3451, "bookTicker": 28040, "trade": 9757,
                             "snapshot": 1}
    assert (stats.frames, stats.errors, stats.ignored) == (41248, 0, 2)
    assert pump.requests == [SYM] and pump.resyncs == []
    assert len(pump.applied) == 3449  # 3,451 diffs less the 2 older than the snapshot
    snap_id = 50093239218
    first = pump.applied[0]
    assert first.first_id <= snap_id + 1 <= first.last_id
    chained = zip(pump.applied, pump.applied[1:], strict=False)
    assert all(b.first_id == a.last_id + 1 for a, b in chained)
    assert ticker_agreement(pump) == (564, 0)
    assert len(pump.trades) == 9757
    assert pump.trades[0] == TradeMsg("binance", SYM, 1723161255343 * 1_000_000,
                                      1723161254087896568, "3735683259", 61837.63, 0.02, "sell")
    assert sum(t.side == "buy" for t in pump.trades) == 4103  # "m":false in the file
    book = pump.book(SYM)
    assert (len(book.bids), len(book.asks)) == (1209, 2196)
    assert book.top() == (61685.99, 1.0087, 61686.0, 2.29327)
    assert pump.keeper.counters["book_messages"] == 3450


def test_book_tickers_nobody_consumes_are_skipped_undecoded_and_counted(btc):
    """A desk that does not record tickers (everything but ``normalize``) skips the
    bookTicker frames — two thirds of this session — before decoding them; books and
    trades are those of the full parse."""
    full = replay(Pump(BinanceProtocol()), btc)
    skipping = Pump(BinanceProtocol())
    skipping.protocol.tickers_wanted = False
    replay(skipping, btc)
    stats = skipping.protocol.stats
    assert stats.by_kind == {"depthUpdate": 3451, "bookTicker_skipped": 28040, "trade": 9757,
                             "snapshot": 1}
    assert skipping.tickers == [] and len(full.tickers) == 28040
    assert skipping.trades == full.trades
    assert [m.last_id for m in skipping.applied] == [m.last_id for m in full.applied]
    assert skipping.book(SYM).top() == full.book(SYM).top()


@pytest.mark.parametrize(("frame", "ticker"), [
    ('{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT"}}', True),
    (b'{"stream":"btcusdt@bookTicker","data":{"u":1}}', True),
    ('{"u":400900217,"s":"BNBUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66"}', True),
    ('{"e":"bookTicker","u":1,"s":"BTCUSDT"}', True),
    ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate"}}', False),
    (b'{"e":"trade","t":1}', False),
    ('{"result":null,"id":1}', False),
])
def test_book_ticker_frames_are_told_from_their_first_bytes(frame, ticker):
    protocol = BinanceProtocol()
    protocol.tickers_wanted = False
    if ticker:
        assert protocol.parse(frame, 0) == []
        assert protocol.stats.by_kind == {"bookTicker_skipped": 1}
    else:
        with contextlib.suppress(ParseError):  # a half frame: decoded, and refused
            protocol.parse(frame, 0)
        assert "bookTicker_skipped" not in protocol.stats.by_kind


def test_cryptofeed_session_every_symbol_bridges():
    ws = read_cryptofeed_ws(data_file("binance", "BINANCE.ws.1.0"))
    http = read_cryptofeed_http(data_file("binance", "BINANCE.http.0.0"))
    timeline = sorted([(ts, frame, None) for ts, frame in ws]
                      + [(ts, body, parse_qs(urlsplit(url).query)["symbol"][0])
                         for url, ts, body in http], key=lambda item: item[0])
    pump = Pump(BinanceProtocol())
    for ts, payload, symbol in timeline:
        if symbol is None:
            pump.frame(payload, ts)
        else:
            pump.snapshot(symbol, payload, ts)
    symbols = ["NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"]
    assert pump.requests == symbols and pump.resyncs == []
    assert {s: pump.protocol.state(s) for s in symbols} == dict.fromkeys(symbols, "synced")
    assert pump.protocol.stats.by_kind == {"depthUpdate": 177, "snapshot": 4, "bookTicker": 84,
                                           "aggTrade": 2, "kline": 2}
    applied = {s: sum(m.symbol == s for m in pump.applied) for s in symbols}
    assert applied == {"NKNUSDT": 149, "BLZETH": 9, "LRCBTC": 13, "RUNEEUR": 1}
    assert pump.protocol.stats.ignored == 177 - 172
    assert ticker_agreement(pump) == (26, 0)
    assert [(t.symbol, t.trade_id, t.side) for t in pump.trades] == [
        ("NKNUSDT", "15683430", "buy"), ("LRCBTC", "9213679", "buy")]


def test_gap_resyncs_and_a_fresh_snapshot_restores_the_uninterrupted_book(btc):
    ref, cut = Pump(BinanceProtocol()), Pump(BinanceProtocol())
    rest = next(frame for _, frame in btc if is_snapshot_line(frame))
    diffs = [i for i, (_, f) in enumerate(btc) if b"depthUpdate" in f]
    dropped = diffs[100]
    fresh, after = None, 0
    for i, (ts, frame) in enumerate(btc):
        for pump in (ref, cut):
            if pump is cut and i == dropped:
                continue
            (pump.snapshot(SYM, frame, ts) if is_snapshot_line(frame) else pump.frame(frame, ts))
        if i > dropped and b"depthUpdate" in frame:
            after += 1
            if after == 10:  # the venue's book as a REST call would return it now...
                fresh = snapshot_body(ref.keeper, "binance", SYM)
            if after == 20:  # ...a stale snapshot (older than the buffer) is refused...
                cut.snapshot(SYM, rest, ts)
                assert cut.requests == [SYM, SYM, SYM]
            if after == 30:  # ...and the fresh one, delivered late, bridges the buffer
                assert cut.protocol.state(SYM) == "buffering"
                cut.snapshot(SYM, fresh, ts)
    [gap] = cut.resyncs
    assert (gap.reason, gap.symbol) == (ResyncReason.GAP, SYM) and "U=" in gap.detail
    assert cut.keeper.counters["resyncs_gap"] == 1
    assert len(cut.applied) == len(ref.applied) - 1 - 10  # the lost diff, 10 in the snapshot
    assert cut.book(SYM).bids == ref.book(SYM).bids and cut.book(SYM).asks == ref.book(SYM).asks
    assert cut.book(SYM).last_id == ref.book(SYM).last_id


# -- sequencing rules ----------------------------------------------------------------------
def spot_diff(first: int, last: int, bids=(), asks=()) -> str:
    return json.dumps({"e": "depthUpdate", "E": 7, "s": "btcusdt", "U": first, "u": last,
                       "b": list(bids), "a": list(asks)})


def futures_diff(first: int, last: int, prev: int, asks=()) -> str:
    return json.dumps({"e": "depthUpdate", "E": 7, "T": 6, "s": SYM, "U": first, "u": last,
                       "pu": prev, "b": [], "a": list(asks)})


def book_ids(events) -> list[tuple[bool, int]]:
    return [(e.snapshot, e.last_id) for e in events if isinstance(e, BookMsg)]


def test_spot_rules_ignore_old_and_duplicate_diffs_and_flag_gaps():
    p = BinanceProtocol("bn")
    assert p.parse(spot_diff(5, 9), 1) == [SnapshotRequest("bn", SYM)]
    assert p.parse(spot_diff(10, 12), 1) == [] and p.state(SYM) == "buffering"
    out = p.parse_snapshot("btcusdt", '{"lastUpdateId":10,"bids":[["1.0","2"]],"asks":[]}', 3)
    assert book_ids(out) == [(True, 10), (False, 12)]
    assert out[0].ts_event == 3  # spot REST depth carries no event time
    assert p.parse(spot_diff(11, 12), 1) == []  # u <= local id: already applied
    assert book_ids(p.parse(spot_diff(13, 13), 1)) == [(False, 13)]
    [gap] = p.parse(spot_diff(15, 16), 2)
    assert gap == Resync("bn", SYM, 2, ResyncReason.GAP, "U=15 > local id 13 + 1")
    assert p.parse(spot_diff(17, 18), 1) == []  # buffered, no second request
    assert p.resync(SYM, ResyncReason.GAP) == [SnapshotRequest("bn", SYM)]
    out = p.parse_snapshot(SYM, '{"lastUpdateId":16,"bids":[],"asks":[]}', 3)
    assert book_ids(out) == [(True, 16), (False, 18)]
    assert p.parse_snapshot(SYM, '{"lastUpdateId":16,"bids":[],"asks":[]}', 3) == []  # late dup
    assert p.resync(SYM, ResyncReason.CROSSED) == [SnapshotRequest("bn", SYM)]
    assert p.state(SYM) == "buffering" and p.stats.ignored == 4


@pytest.mark.parametrize("market", ["usdm", "coinm"])
def test_futures_rules_chain_on_pu(market):
    p = BinanceProtocol("bf", market)
    assert p.parse(futures_diff(90, 95, 89), 1) == [SnapshotRequest("bf", SYM)]
    for frame in (futures_diff(96, 99, 95), futures_diff(100, 103, 99),
                  futures_diff(104, 106, 103, [["11.0", "431"]])):  # COIN-M: integer contracts
        assert p.parse(frame, 1) == []
    snap = '{"lastUpdateId":101,"E":5,"T":4,"bids":[["10.0","1"]],"asks":[["11.0","3"]]}'
    out = p.parse_snapshot(SYM, snap, 9)
    assert book_ids(out) == [(True, 101), (False, 103), (False, 106)]
    assert out[0].ts_event == 5_000_000
    assert book_ids(p.parse(futures_diff(107, 108, 106), 1)) == [(False, 108)]
    assert p.parse(futures_diff(100, 103, 99), 1) == []  # old
    [gap] = p.parse(futures_diff(110, 112, 109), 1)
    assert gap.reason is ResyncReason.GAP and gap.detail == "pu=109 != local id 108"
    assert p.resync(SYM, ResyncReason.GAP) == [SnapshotRequest("bf", SYM)]
    assert p.parse_snapshot(SYM, snap, 9) == [SnapshotRequest("bf", SYM)]  # older than buffer
    out = p.parse_snapshot(SYM, snap.replace("101", "111"), 9)
    assert book_ids(out) == [(True, 111), (False, 112)]  # first after snapshot: U <= 111 <= u


def test_first_futures_diff_after_snapshot_must_straddle_it():
    p = BinanceProtocol("bf", "usdm")
    p.parse_snapshot(SYM, '{"lastUpdateId":100,"bids":[],"asks":[]}', 1)
    [gap] = p.parse(futures_diff(102, 104, 101), 1)
    assert gap.reason is ResyncReason.GAP


# -- message kinds -------------------------------------------------------------------------
def test_raw_and_enveloped_frames_str_and_bytes_give_the_same_events(btc):
    p = BinanceProtocol()
    for _, frame in btc[2:5]:
        raw = json.dumps(json.loads(frame)["data"])
        events = [p.parse(f, 1) for f in (frame, frame.decode(), bytearray(frame),
                                          memoryview(frame), raw, f"  {raw}\n")]
        assert all(e == events[0] for e in events) and events[0]


def test_ticker_trade_aggtrade_kline_and_replies():
    p = BinanceProtocol("bn", "usdm")
    [t] = p.parse('{"e":"bookTicker","u":400,"E":2,"T":1,"s":"ethusdt","b":"25.35190000",'
                  '"B":"31.21000000","a":"25.36520000","A":"40.66000000"}', 9)
    assert t == TickerMsg("bn", "ETHUSDT", 2_000_000, 9, "25.35190000", "31.21000000",
                          "25.36520000", "40.66000000", 400)
    [a] = p.parse('{"e":"aggTrade","E":3,"s":"BNBBTC","a":12345,"p":"0.001","q":"100",'
                  '"f":100,"l":105,"T":2,"m":false}', 9)
    assert a == TradeMsg("bn", "BNBBTC", 3_000_000, 9, "12345", 0.001, 100.0, "buy")
    assert p.parse('{"e":"kline","E":1,"s":"BNBBTC","k":{"t":1}}', 9) == []
    assert p.parse('{"result":null,"id":1}', 9) == [Status("bn", "ack", "id=1 result=None")]
    [err] = p.parse('{"error":{"code":2,"msg":"Invalid request"},"id":3}', 9)
    assert err == Status("bn", "error", "id=3 code=2 msg='Invalid request'")
    assert p.parse('{"code":-1121,"msg":"Invalid symbol."}', 9)[0].kind == "error"
    assert p.parse('{"e":"24hrTicker","s":"X"}', 9) == [] and p.stats.ignored == 1
    assert p.stats.by_kind == {"bookTicker": 1, "aggTrade": 1, "kline": 1, "result": 1,
                               "error": 2, "other": 1}


GOOD_DIFF = spot_diff(11, 12, [["1.5", "2.0"]], [["1.6", "0.00000000"]])
GARBAGE = [
    b"", b"not json", b"\xff\xfe{}", b'{"e":"trade","s":"\xc3\x28"}', "[]", "123", '"data"',
    "null", '{"stream":"x","data":5}', '{"e":[1]}', "[" * 100_000,
    '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":"11","u":12,"b":[],"a":[]}',
    '{"e":"depthUpdate","E":"1","s":"BTCUSDT","U":11,"u":12,"b":[],"a":[]}',
    '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":13,"u":12,"b":[],"a":[]}',
    '{"e":"depthUpdate","E":1,"s":["BTCUSDT"],"U":11,"u":12,"b":[],"a":[]}',
    '{"e":"depthUpdate","E":1,"s":"","U":11,"u":12,"b":[],"a":[]}',
    '{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":11,"u":12,"a":[]}',
    GOOD_DIFF.replace('"1.5"', '"abc"'), GOOD_DIFF.replace('"1.5"', '"1.5.1"'),
    GOOD_DIFF.replace('"1.5"', '"NaN"'), GOOD_DIFF.replace('"1.5"', "1e999"),
    GOOD_DIFF.replace('["1.5", "2.0"]', '["1.5"]'), GOOD_DIFF.replace('["1.5", "2.0"]', '"12"'),
    GOOD_DIFF.replace('["1.5", "2.0"]', '{"1.5": "2.0", "1": "2"}'),
    GOOD_DIFF.replace('["1.5", "2.0"]', '[["1.5"], "2.0"]'),
    '{"u":1,"s":"X","b":61,"B":"1.0","a":"2.0","A":"1.0"}',
    '{"u":1,"s":"X","b":"1.0.0","B":"1.0","a":"2.0","A":"1.0"}',
    '{"e":"trade","E":1,"s":"X","t":1,"p":"1","q":"1","m":"true"}',
    '{"e":"trade","E":1,"s":"X","t":"1","p":"1","q":"1","m":true}',
    '{"e":"trade","E":1,"s":"X","t":1,"p":"inf","q":"1","m":true}',
    '{"e":"trade","E":1,"s":"X","t":1,"p":[1],"q":"1","m":true}',
]


def synced(name: str = "binance") -> BinanceProtocol:
    p = BinanceProtocol(name)
    p.parse_snapshot(SYM, '{"lastUpdateId":10,"bids":[["1.0","1.0"]],"asks":[["2.0","1.0"]]}', 1)
    return p


@pytest.mark.parametrize("frame", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_raises_parse_error_naming_the_venue(frame):
    p = synced("bn")
    with pytest.raises(ParseError) as info:
        p.parse(frame, 1)
    assert info.value.venue == "bn" and str(info.value).startswith("bn: bad frame: ")
    assert (p.stats.frames, p.stats.errors) == (1, 1) and p.stats.last_error
    assert p.state(SYM) == "synced" and p.parse(GOOD_DIFF, 2)  # the garbage changed nothing


def test_validate_numbers_off_still_checks_types():
    p = BinanceProtocol(validate_numbers=False)
    p.parse_snapshot(SYM, '{"lastUpdateId":10,"bids":[],"asks":[]}', 1)
    [msg] = p.parse(GOOD_DIFF.replace('"1.5"', '"abc"'), 1)  # the book would choke on it
    assert msg.bids == [["abc", "2.0"]]
    with pytest.raises(ParseError):
        p.parse(GOOD_DIFF.replace('"b": [["1.5", "2.0"]]', '"b": "x"'), 1)


@pytest.mark.parametrize("body", ["", "{}", '{"lastUpdateId":"1","bids":[],"asks":[]}',
                                  '{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}'])
def test_garbage_snapshot_raises_parse_error(body):
    with pytest.raises(ParseError, match="binance: bad snapshot"):
        BinanceProtocol().parse_snapshot(SYM, body, 1)


# -- fuzzing -------------------------------------------------------------------------------
SAMPLES = [GOOD_DIFF,
           '{"stream":"x@bookTicker","data":{"u":9,"s":"BTCUSDT","b":"1.00","B":"2.00",'
           '"a":"1.10","A":"3.00"}}',
           '{"e":"trade","E":1,"s":"BTCUSDT","t":5,"p":"1.5","q":"0.1","T":1,"m":true}',
           '{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"1.5","q":"0.1","T":1,"m":false}',
           '{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":1}}', '{"result":null,"id":1}']
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def parse_and_apply(frame: str | bytes) -> None:
    """Parse ``frame`` on a synced protocol: ParseError or events the book can apply."""
    p = synced()
    try:
        events = p.parse(frame, 1)
    except ParseError:
        return
    keeper = BookKeeper({"binance": p})
    for ev in events:
        if isinstance(ev, BookMsg):
            keeper.apply(ev)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes(blob):
    parse_and_apply(blob)


@FUZZ
@given(st.sampled_from(SAMPLES), st.data())
def test_fuzz_byte_mutations_of_real_frames(frame, data):
    raw = bytearray(frame.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        if op == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "delete":
            del raw[at:at + data.draw(st.integers(1, 8))]
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        else:
            del raw[at:]
    parse_and_apply(bytes(raw))


@FUZZ
@given(st.sampled_from(SAMPLES), JSON, st.data())
def test_fuzz_wrong_types_in_real_frames(frame, value, data):
    msg = json.loads(frame)
    target = msg.get("data", msg)
    key = data.draw(st.sampled_from(sorted(target)))
    if key in ("b", "a") and isinstance(target[key], list) and target[key]:
        level = target[key][0]
        level[data.draw(st.integers(0, len(level) - 1))] = value
    else:
        target[key] = value
    parse_and_apply(json.dumps(msg))


@FUZZ
@given(JSON, st.data())
def test_fuzz_snapshot_bodies(value, data):
    body = {"lastUpdateId": 10, "bids": [["1.0", "1.0"]], "asks": [["2.0", "1.0"]]}
    key = data.draw(st.sampled_from(sorted(body)))
    if key != "lastUpdateId" and data.draw(st.booleans()):
        body[key][0][data.draw(st.integers(0, 1))] = value
    else:
        body[key] = value
    p = BinanceProtocol()
    try:
        events = p.parse_snapshot(SYM, json.dumps(body), 1)
    except ParseError:
        return
    keeper = BookKeeper({"binance": p})
    for ev in events:
        if isinstance(ev, BookMsg):
            keeper.apply(ev)


@FUZZ
@given(JSON)
def test_loads_agrees_with_json_loads(value):
    text = json.dumps(value)
    assert json.dumps(loads(text)) == json.dumps(json.loads(text))


@FUZZ
@given(st.text(max_size=40))
def test_loads_fails_like_json_loads(text):
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            loads(text)
    else:
        assert json.dumps(loads(text)) == json.dumps(expected)


@pytest.mark.parametrize("text", [
    '{"a": NaN, "b": -Infinity}', '[123456789012345678901234567890]', '"\\ud800"',
    '[1e400, -0.0, 5e-324]', '{"a": 1, "a": 2}', " [1] ", "[" * 2000 + "]" * 2000,
    '{"p": "61837.63000000", "q": 0.1}'])
def test_fast_loads_gives_json_loads_answers_where_orjson_refuses(text):
    """fast_loads tries orjson first: what orjson refuses must still decode as json.loads
    does (an integer past 64 bits is the one documented difference: a float)."""
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            fast_loads(text)
        return
    if "1234567890123456789012" in text:
        assert fast_loads(text) == [float(expected[0])]
        return
    for frame in (text, text.encode()):
        assert json.dumps(fast_loads(frame)) == json.dumps(expected)


@FUZZ
@given(JSON)
def test_fast_loads_agrees_with_json_loads_within_64_bits(value):
    text = json.dumps(value)
    if any(type(v) is int and not -2**63 <= v < 2**64 for v in _scalars(value)):
        return
    assert json.dumps(fast_loads(text)) == json.dumps(json.loads(text))


def _scalars(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    else:
        yield value


def test_a_depth_id_past_64_bits_is_a_parse_error_naming_it():
    frame = ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
             '"U":123456789012345678901234,"u":123456789012345678901235,"b":[],"a":[]}}')
    with pytest.raises(ParseError, match="U and u must be integers"):
        BinanceProtocol().parse(frame, 0)


# -- config --------------------------------------------------------------------------------
def test_make_venue_builds_the_combined_stream_url():
    v = make_venue("bn", {"type": "binance", "symbols": ["btcusdt", "ETHBTC"],
                          "ws_url": "ws://127.0.0.1:9", "rest_url": "http://127.0.0.1:9/"})
    assert v.feed.url == ("ws://127.0.0.1:9/stream?streams=btcusdt@depth@100ms/btcusdt@trade/"
                          "btcusdt@bookTicker/ethbtc@depth@100ms/ethbtc@trade/ethbtc@bookTicker")
    assert v.feed.snapshot_url(SYM) == "http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=1000"
    assert v.symbols == [SYM, "ETHBTC"] and v.protocol.name == "bn"
    given_url = "ws://127.0.0.1:9/stream?streams=btcusdt@trade"
    assert make_venue("bn", {"ws_url": given_url}).feed.url == given_url
    fut = make_venue("f", {"market": "usdm", "rest_url": "http://127.0.0.1:9"})
    assert fut.protocol.market == "usdm" and "/fapi/v1/depth?" in fut.feed.snapshot_url(SYM)


@pytest.mark.parametrize(("cfg", "match"), [
    ({"symbls": ["X"]}, "venues.bn.symbls'; did you mean 'symbols'"),
    ({"market": "margin"}, "market must be one of spot, usdm, coinm"),
    ({"market": "usdm", "depth_limit": 5000}, r"depth_limit must be in 1\.\.1000"),
    ({"symbols": []}, "symbols is empty"),
])
def test_make_venue_rejects_bad_config(cfg, match):
    with pytest.raises(ConfigError, match=match):
        make_venue("bn", cfg)


# -- feed against a loopback server ----------------------------------------------------------
def stream_frames(btc) -> list[str]:
    return [frame.decode() for _, frame in btc if not is_snapshot_line(frame)]


async def run_feed(server: ReplayServer, reference: Pump,
                   **feed_kw) -> tuple[Pump, BinanceFeed, list[str]]:
    """Run feed + protocol + BookKeeper against ``server`` until the reference book is built.

    Returns the pump, the feed and the venues ``on_reconnect`` was called with.
    """
    feed = BinanceFeed(server.ws_url, server.rest_url, [SYM], backoff_initial=0.01, seed=1,
                       **feed_kw)
    pump = Pump(BinanceProtocol(), on_request=feed.request_snapshot)
    target = reference.book(SYM).last_id
    done = asyncio.Event()
    reconnects: list[str] = []

    def check() -> None:
        if pump.book(SYM).last_id == target and pump.protocol.state(SYM) == "synced":
            done.set()

    def sink(venue: str, frame: str | bytes, ts: int) -> None:
        pump.frame(frame, ts)
        check()

    def snapshot_sink(venue: str, symbol: str, body: str | bytes, ts: int) -> None:
        pump.snapshot(symbol, body, ts)
        check()

    def on_reconnect(venue: str) -> None:  # what the engine does: resync every symbol
        reconnects.append(venue)
        pump.resync(Resync(venue, SYM, time.time_ns(), ResyncReason.RECONNECT, "reconnect"))

    feed.on_reconnect = on_reconnect
    task = asyncio.create_task(feed.run(sink, snapshot_sink))
    try:
        async with asyncio.timeout(20):
            await done.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not feed.connected
    return pump, feed, reconnects


def test_feed_rebuilds_the_recorded_book(btc):
    reference = replay(Pump(BinanceProtocol()), btc)
    rest = next(frame for _, frame in btc if is_snapshot_line(frame)).decode()

    async def main() -> tuple[Pump, BinanceFeed, list[str], ReplayServer]:
        async with ReplayServer(stream_frames(btc), lambda: rest, http_failures=1) as server:
            return *(await run_feed(server, reference)), server

    pump, feed, reconnects, server = asyncio.run(main())
    assert pump.book(SYM).bids == reference.book(SYM).bids
    assert pump.book(SYM).asks == reference.book(SYM).asks
    assert pump.requests == [SYM] and pump.resyncs == [] and reconnects == []
    assert server.http_requests == 2  # a 503, then the snapshot
    assert len(pump.trades) == 9757 and len(pump.tickers) == 28040
    stats = feed.stats()
    assert (stats["connects"], stats["reconnects"], stats["frames"]) == (1, 0, 41248)
    assert (stats["snapshots"], stats["snapshot_errors"]) == (1, 1)
    assert stats["bytes"] == sum(len(f) for f in stream_frames(btc))


def test_feed_reconnects_after_a_drop_and_resyncs(btc):
    """The first connection dies after 3,000 frames and the next 200 are lost."""
    lines = [i for i, (_, f) in enumerate(btc) if not is_snapshot_line(f)][:8000]
    frames = [btc[i][1].decode() for i in lines]
    reference = replay(Pump(BinanceProtocol()), btc[:lines[-1] + 1])

    def venue_snapshot() -> str:  # the venue's book after the frames sent so far
        sent = replay(Pump(BinanceProtocol()), btc[:lines[server.cursor - 1] + 1])
        return snapshot_body(sent.keeper, "binance", SYM)

    async def main() -> tuple[Pump, BinanceFeed, list[str]]:
        async with server:
            return await run_feed(server, reference)

    server = ReplayServer(frames, venue_snapshot, drop_at=3000, lost=200)
    pump, feed, reconnects = asyncio.run(main())
    assert reconnects == ["binance"] and server.connections == 2
    stats = feed.stats()
    assert (stats["connects"], stats["reconnects"], stats["frames"]) == (2, 1, 8000 - 200)
    assert sum(b'depthUpdate' in btc[i][1] for i in lines[3000:3200]) == 11  # diffs lost
    assert pump.keeper.counters["resyncs_reconnect"] == 1 and pump.resyncs[0].reason == "reconnect"
    assert pump.book(SYM).bids == reference.book(SYM).bids
    assert pump.book(SYM).asks == reference.book(SYM).asks


def test_silent_connection_is_dropped_and_replaced(btc):
    async def main() -> dict:
        async with ReplayServer(stream_frames(btc), lambda: "{}", silent_after=5) as server:
            feed = BinanceFeed(server.ws_url, server.rest_url, [SYM], silence_timeout=0.2,
                               backoff_initial=0.01)
            reconnected = asyncio.Event()
            feed.on_reconnect = lambda venue: reconnected.set()
            task = asyncio.create_task(feed.run(lambda *a: None, lambda *a: None))
            try:
                async with asyncio.timeout(10):
                    await reconnected.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            return feed.stats()

    stats = asyncio.run(main())
    assert stats["silence_timeouts"] >= 1 and stats["reconnects"] >= 1
    assert stats["frames"] == 5


def test_snapshot_requested_before_run_is_fetched_once_running(btc):
    async def main() -> list[tuple[str, str, bytes]]:
        async with ReplayServer([], lambda: '{"lastUpdateId":1,"bids":[],"asks":[]}') as server:
            feed = BinanceFeed(server.ws_url, server.rest_url, [SYM], depth_limit=5)
            feed.request_snapshot("btcusdt")
            feed.request_snapshot("BTCUSDT")  # the same symbol: one fetch
            got: list[tuple[str, str, bytes]] = []
            fetched = asyncio.Event()

            def snapshot_sink(venue: str, symbol: str, body: str | bytes, ts: int) -> None:
                got.append((venue, symbol, body))
                fetched.set()

            task = asyncio.create_task(feed.run(lambda *a: None, snapshot_sink))
            try:
                async with asyncio.timeout(10):
                    await fetched.wait()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            assert server.http_requests == 1
            return got

    assert asyncio.run(main()) == [("binance", SYM, b'{"lastUpdateId":1,"bids":[],"asks":[]}')]


def test_buffer_limit_drops_the_oldest_diffs():
    p = BinanceProtocol(buffer_limit=3)
    for first in range(1, 6):
        p.parse(spot_diff(first, first), 1)
    assert p.stats.ignored == 2
    out = p.parse_snapshot(SYM, '{"lastUpdateId":1,"bids":[],"asks":[]}', 1)
    assert out == [SnapshotRequest("binance", SYM)]  # 1 < U=3 of the oldest buffered diff
    assert book_ids(p.parse_snapshot(SYM, '{"lastUpdateId":3,"bids":[],"asks":[]}', 1)) == [
        (True, 3), (False, 4), (False, 5)]
