"""Error hygiene on a real embedded desk: short messages for clients (an error id for the
unexpected, the traceback only in the desk's log), counts refused when out of range, SQL
table names matched as SQLite matches them."""

from __future__ import annotations

import json
import logging
import re

import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.sql import check_select
from flightdesk.core.flight.tickets import parse_request
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("errors"))
    client = fl.connect(eng.flight_uri)
    wait_for(lambda: eng.status()["books"], what="a synced book")
    yield eng, client
    client.close()
    eng.stop()


def ticket(**kw):
    return fl.Ticket(json.dumps(kw).encode())


def no_server_paths(message):
    """No file of the desk's (pyarrow's own ``pyarrow/_flight.pyx`` frame may appear)."""
    assert not re.search(r'File "/|\.py"|site-packages', message), message


def test_an_unexpected_error_gives_an_id_and_logs_the_traceback(desk, monkeypatch, caplog):
    eng, client = desk

    def broken(req):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(eng.desk, "snapshot", broken)
    with caplog.at_level(logging.ERROR, "flightdesk.core.flight.hygiene"):
        with pytest.raises(fl.FlightServerError) as err:
            client.do_get(ticket(stream="positions", mode="snapshot")).read_all()
    message = str(err.value)
    match = re.search(r"internal error \(id ([0-9a-f]{8})\); see the desk's log", message)
    assert match, message
    no_server_paths(message)
    assert "a bug" not in message
    record = next(r for r in caplog.records if match.group(1) in r.getMessage())
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_a_stream_failing_midway_gives_an_id_without_paths(desk, monkeypatch, caplog):
    eng, client = desk
    server = eng.desk.flight

    def broken(req, batch):
        raise KeyError("mid-stream bug")

    monkeypatch.setattr(server, "_filter", broken)
    with caplog.at_level(logging.ERROR, "flightdesk.core.flight.hygiene"):
        with pytest.raises(fl.FlightServerError, match=r"internal error \(id") as err:
            client.do_get(ticket(stream="quotes", mode="live")).read_chunk()
    no_server_paths(str(err.value))
    assert "mid-stream bug" not in str(err.value)
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_expected_errors_keep_their_message_without_a_traceback(desk):
    _, client = desk
    with pytest.raises(fl.FlightServerError, match="unknown stream 'quotez'") as err:
        client.do_get(ticket(stream="quotez")).read_all()
    assert "Traceback" not in str(err.value)
    with pytest.raises(fl.FlightServerError, match="unknown action") as err:
        list(client.do_action(fl.Action("nope", b"")))
    assert "Traceback" not in str(err.value)


def test_unsupported_flight_sql_is_a_plain_error_without_a_traceback(desk):
    # not UNIMPLEMENTED: pyarrow sends that only with a traceback (see flight.hygiene)
    _, client = desk
    with pytest.raises(fl.FlightServerError, match="BeginTransaction is not supported") as err:
        list(client.do_action(fl.Action("BeginTransaction", b"")))
    no_server_paths(str(err.value))
    assert "Traceback" not in str(err.value) and 'File "' not in str(err.value)


@pytest.mark.parametrize("key, value", [("depth", -5), ("depth", 0), ("depth", 10_001),
                                        ("limit", -1), ("limit", 0), ("depth", 1.5)])
def test_depth_and_limit_out_of_range_are_refused(key, value):
    with pytest.raises(TicketError, match=f"'{key}' must be"):
        parse_request(json.dumps({"stream": "book", "mode": "snapshot", key: value}).encode())


def test_depth_is_taken_as_asked_and_survives_flight_info(desk):
    _, client = desk
    req = parse_request(b'{"stream": "book", "mode": "snapshot", "depth": 1}')
    assert req.depth == 1 and parse_request(req.to_json()).depth == 1
    assert parse_request(b'{"stream": "book", "mode": "snapshot"}').depth == 10
    info = client.get_flight_info(fl.FlightDescriptor.for_command(req.to_json()))
    book = client.do_get(info.endpoints[0].ticket).read_all()
    per_side = book.group_by(["venue", "symbol", "side"]).aggregate([("seq", "count")])
    assert book.num_rows and set(per_side.column("seq_count").to_pylist()) == {1}


def test_sql_table_names_follow_sqlite_case_rules(desk):
    eng, _ = desk
    catalog = {"Fills": ["fill_id"], "orders": ["order_id"], "runs": ["config"]}
    check_select("SELECT fill_id FROM fills", catalog, ["Fills", "orders"])
    check_select("select order_id from ORDERS", catalog, ["Fills", "orders"])
    with pytest.raises(TicketError, match="reads table 'runs'"):
        check_select("SELECT config FROM RUNS", catalog, ["Fills", "orders"])
    wait_for(lambda: eng.orders().num_rows, what="an order")
    assert flightdesk.connect(eng.flight_uri).sql("SELECT count(*) AS n FROM ORDERS")[
        "n"][0].as_py() >= 1
