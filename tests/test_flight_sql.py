"""Flight SQL, read-only, with the ADBC Flight SQL driver (an independent Go client)."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flightsql
import pytest
from adbc_driver_flightsql import DatabaseOptions

from flightdesk.core.errors import TicketError
from flightdesk.core.flight.sql import decode, pack_any, unpack_any
from flightdesk.core.protowire import encode_varint as varint
from flightdesk.core.protowire import field_bytes
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("sql"), rate=1000.0,
                     flight={"trade_tokens": ["t0ken"], "read_tokens": ["r3ad"]})
    wait_for(lambda: eng.orders().num_rows > 0, what="some orders")
    yield eng
    eng.stop()


def connect(eng, token="r3ad"):
    kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    return flightsql.connect(eng.flight_uri, db_kwargs=kwargs, autocommit=True)


def query(eng, sql, token="r3ad"):
    with connect(eng, token) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def test_adbc_selects_orders_with_a_read_token(desk):
    table = query(desk, "SELECT order_id, status FROM orders ORDER BY rowid LIMIT 3")
    assert table.column_names == ["order_id", "status"]
    assert table.num_rows == 3
    stored = desk.orders().slice(0, 3)
    assert table["order_id"].to_pylist() == stored["order_id"].to_pylist()


def test_aggregates_joins_and_ctes_over_store_tables(desk):
    table = query(desk, "WITH o AS (SELECT * FROM orders) SELECT status, count(*) AS n "
                        "FROM o GROUP BY status ORDER BY status")
    assert table.num_rows >= 1 and min(table["n"].to_pylist()) > 0
    assert set(table["status"].to_pylist()) <= {
        "new", "accepted", "triggered", "rejected", "filled", "partially_filled", "cancelled",
        "expired"}
    joined = query(desk, "SELECT f.fill_id, o.strategy FROM fills f JOIN orders o "
                         "ON f.order_id = o.order_id LIMIT 5")
    assert joined.column_names == ["fill_id", "strategy"]


@pytest.mark.parametrize(("sql", "message"), [
    ("DELETE FROM orders", "only SELECT queries are allowed here; got 'DELETE'"),
    ("  -- sneaky\n DROP TABLE fills", "only SELECT queries are allowed here; got 'DROP'"),
    ("SELECT * FROM sqlite_master", "query reads table 'sqlite_master'; queryable tables "
                                    "are events, fills, orders"),
    ("SELECT * FROM runs", "query reads table 'runs'"),
    ("SELECT 1; DELETE FROM orders", "one statement at a time"),
    ("SELECT nope FROM orders", "bad query: no such column: nope"),
])
def test_anything_but_a_select_over_store_tables_is_refused(desk, sql, message):
    with pytest.raises(Exception, match=message):
        query(desk, sql)
    assert query(desk, "SELECT count(*) AS n FROM fills").num_rows == 1  # still serving


def test_sql_without_a_token_is_refused(desk):
    with pytest.raises(Exception, match="(?i)unauthenticated|bearer token"):
        query(desk, "SELECT 1 FROM orders", token="wrong")


def test_protobuf_helpers_round_trip():
    assert varint(300) == b"\xac\x02"
    message = field_bytes(1, b"SELECT 1") + field_bytes(2, b"\x00" * 200)
    assert decode(message) == {1: [b"SELECT 1"], 2: [b"\x00" * 200]}
    name, fields = unpack_any(pack_any("CommandStatementQuery", message))
    assert name == "CommandStatementQuery" and fields[1] == [b"SELECT 1"]
    assert unpack_any(b'{"stream": "quotes"}') is None
    with pytest.raises(TicketError, match="runs past the end"):  # a length beyond the data
        decode(field_bytes(1, b"SELECT 1")[:-1])
