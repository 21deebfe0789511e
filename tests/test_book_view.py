"""The live book capped at N levels and conflated to an interval (``depth``/``interval_ms``):
driven by the recorded Binance session through the engine's own ``book`` rows, a client
applying what the view sends holds exactly the desk's top N after every emission; over
Flight, the SDK's ``stream("book", depth=, interval_ms=)`` on a running desk."""

from __future__ import annotations

import json

import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.book_view import BookView
from flightdesk.core.flight.tickets import parse_request
from flightdesk.core.market.book_rows import BookRows, apply_rows
from flightdesk.core.market.events import BookMsg, Resync
from flightdesk.plugins.venues.binance.parse import BinanceProtocol
from tests.fixtures.flight import start_desk
from tests.fixtures.pump import Pump
from tests.fixtures.recorded import data_file, read_hftbacktest


def top(levels: dict, n: int, bids: bool) -> dict:
    keys = sorted(levels, reverse=bids)[:n]
    return {k: levels[k] for k in keys}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def recorded_batches(limit: int = 1500):
    """(desk book rows batch, the desk's full book after it) per recorded book message."""
    pump = Pump(BinanceProtocol())
    rows = BookRows(snapshot_s=3600.0)
    path = data_file("binance", "btcusdt_20240808.gz")
    for ts, frame in read_hftbacktest(path):
        before = len(pump.applied)
        if b'"stream"' not in frame[:20]:
            events = pump.protocol.parse_snapshot("BTCUSDT", frame, ts)
        else:
            events = pump.protocol.parse(frame, ts)
        pump.route(events)
        if any(type(e) is Resync for e in events):
            rows.request_snapshots()
        for msg in pump.applied[before:]:
            rows.add(msg, pump.keeper.book(msg.venue, msg.symbol))
        batch = rows.take()
        if batch is not None:
            book = pump.keeper.book("binance", "BTCUSDT")
            yield batch, ({float(p): float(lv[1]) for p, lv in book.bids.items()},
                          {float(p): float(lv[1]) for p, lv in book.asks.items()})
            limit -= 1
            if limit == 0:
                return


@pytest.mark.parametrize("depth", [1, 5, 20])
def test_a_client_of_the_view_holds_exactly_the_desk_s_top_n(depth):
    view = BookView(depth)
    client: dict = {}
    upstream = sent = 0
    for batch, (bids, asks) in recorded_batches():
        upstream += batch.num_rows
        view.feed(batch)
        out = view.emit()
        if out is not None:
            sent += out.num_rows
            assert out.column("seq").to_pylist() == list(range(view.seq - out.num_rows + 1,
                                                               view.seq + 1))
            apply_rows(client, out)
        got = client[("binance", "BTCUSDT")]
        assert got["bid"] == top(bids, depth, True) and got["ask"] == top(asks, depth, False)
    assert sent < upstream / 2  # deeper levels cost the client nothing


def test_conflated_view_sends_at_most_once_per_interval_and_converges():
    clock = Clock()
    view = BookView(5, interval_ms=100, clock=clock)
    client: dict = {}
    emissions, last = 0, None
    batches = list(recorded_batches(600))
    for i, (batch, _) in enumerate(batches):
        clock.t = i * 0.01  # a batch every 10 ms: at most one emission per 10 of them
        view.feed(batch)
        out = view.emit()
        if out is not None:
            emissions += 1
            assert last is None or clock.t - last >= 0.1 - 1e-9
            last = clock.t
            apply_rows(client, out)
    clock.t += 1.0
    out = view.emit()
    if out is not None:
        apply_rows(client, out)
    bids, asks = batches[-1][1]
    assert client[("binance", "BTCUSDT")] == {"bid": top(bids, 5, True),
                                               "ask": top(asks, 5, False)}
    assert emissions <= len(batches) // 10 + 1


def test_an_upstream_snapshot_run_resends_the_top_as_a_snapshot():
    view = BookView(2)
    rows = BookRows(snapshot_s=3600.0)
    from flightdesk.core.market.book import L2Book

    book = L2Book()
    for msg in (BookMsg("v", "X", 1, 1, [["100", "1"], ["99", "1"], ["98", "1"]],
                        [["101", "1"]], snapshot=True),
                BookMsg("v", "X", 2, 2, [["100", "0"]], [])):
        book.load_snapshot(msg.bids, msg.asks) if msg.snapshot else book.apply_bids(msg.bids)
        rows.add(msg, book)
        view.feed(rows.take())
        out = view.emit().to_pylist()
        if msg.snapshot:
            assert [(r["side"], r["price"], r["is_snapshot"]) for r in out] == [
                ("bid", 100.0, True), ("bid", 99.0, True), ("ask", 101.0, True)]
        else:  # 100 left; 98 entered the top 2 from below
            assert sorted((r["price"], r["qty"]) for r in out) == [(98.0, 1.0), (100.0, 0.0)]


def test_tickets_check_the_view_keys():
    req = parse_request(b'{"stream": "book", "mode": "live", "depth": 3, "interval_ms": 50}')
    assert (req.view_depth, req.interval_ms) == (3, 50)
    assert parse_request(b'{"stream": "book", "mode": "live"}').view_depth is None
    for bad, why in ((b'{"stream": "quotes", "mode": "live", "interval_ms": 5}', "live book"),
                     (b'{"stream": "book", "mode": "live", "interval_ms": 0}', "from 1 to"),
                     (b'{"stream": "book", "mode": "live", "interval_ms": 600000}', "60,000")):
        with pytest.raises(TicketError, match=why):
            parse_request(bad)


def test_sdk_stream_book_depth_and_interval_on_a_running_desk(tmp_path):
    eng = start_desk(tmp_path, rate=400.0)
    try:
        with flightdesk.connect(eng.flight_uri) as desk:
            live = desk.stream("book", symbols=["BTCUSDT"], depth=3, interval_ms=200)
            books: dict = {}
            batches = 0
            for batch in live:
                apply_rows(books, batch)
                batches += 1
                if batches == 8:
                    break
            live.close()
        book = books[("sim", "BTCUSDT")]
        assert 1 <= len(book["bid"]) <= 3 and 1 <= len(book["ask"]) <= 3
        assert max(book["bid"]) < min(book["ask"])
        with pytest.raises(fl.FlightServerError, match="applies to the live book stream"):
            fl.connect(eng.flight_uri).do_get(fl.Ticket(json.dumps(
                {"stream": "quotes", "mode": "live", "interval_ms": 10}).encode())).read_all()
    finally:
        eng.stop()
