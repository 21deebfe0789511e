"""The Flight SQL catalogue, as database tools browse it: ADBC's Go driver (adbc_get_objects,
adbc_get_table_schema, adbc_get_info) and hand-built commands on a plain Flight client,
against a running desk with tokens and a store holding orders and fills."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import adbc_driver_flightsql.dbapi as flightsql
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_flightsql import DatabaseOptions

import flightdesk
from flightdesk.core.flight.sql import QUERYABLE, pack_any, unpack_any
from flightdesk.core.flight.sql_catalog import FOREIGN_KEYS, PRIMARY_KEYS, TABLES, like, like_tokens
from flightdesk.core.protowire import encode, field_bytes
from tests.fixtures.flight import start_desk
from tests.fixtures.waiting import wait_for

READ = fl.FlightCallOptions(headers=[(b"authorization", b"Bearer r3ad")])
STORE_TABLES = sorted(QUERYABLE)


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    eng = start_desk(tmp_path_factory.mktemp("catalog"), rate=1000.0,
                     flight={"trade_tokens": ["t0ken"], "read_tokens": ["r3ad"]})
    wait_for(lambda: eng.fills().num_rows > 0, what="some fills")
    client = fl.connect(eng.flight_uri)
    yield eng, client
    client.close()
    eng.stop()


def connect(eng, token="r3ad"):
    kwargs = {DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    return flightsql.connect(eng.flight_uri, db_kwargs=kwargs, autocommit=True)


def ask(client, message, *items, options=READ):
    """A catalogue command's answer through GetFlightInfo + DoGet of its endpoint."""
    command = pack_any(message, encode(*items))
    info = client.get_flight_info(fl.FlightDescriptor.for_command(command), options)
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.schema == info.schema
    return table


def objects(conn, **filters):
    return conn.adbc_get_objects(**filters).read_all().to_pylist()


def clean(message):
    """Nothing of the server's insides in a message a client gets."""
    assert "Traceback" not in message and 'File "' not in message, message
    assert not re.search(r"\.pyx?\b", message), message


def test_adbc_get_objects_lists_every_store_table_and_its_columns(desk):
    eng, _ = desk
    with connect(eng) as conn, conn.cursor() as cur:
        (catalog,) = objects(conn, depth="all")
        assert catalog["catalog_name"] == ""  # SQLite has no catalogs
        (schema,) = catalog["catalog_db_schemas"]
        assert schema["db_schema_name"] == "main"
        tables = {t["table_name"]: t for t in schema["db_schema_tables"]}
        assert sorted(tables) == STORE_TABLES  # runs, flightdesk_meta, ... stay hidden
        for name, table in tables.items():
            assert table["table_type"] == "TABLE"
            cur.execute(f"SELECT * FROM main.{name} LIMIT 1")  # the name a tool would write
            columns = [c["column_name"] for c in table["table_columns"]]
            assert columns == [d[0] for d in cur.description], name
        types = {c["column_name"]: c["xdbc_type_name"] for c in tables["fills"]["table_columns"]}
        assert types["price"] == "REAL" and types["fill_id"] == "TEXT" and types["ts"] == "INTEGER"


def test_table_schemas_carry_the_types_a_select_returns(desk):
    eng, _ = desk
    with connect(eng) as conn, conn.cursor() as cur:
        for name in ("orders", "fills"):
            schema = conn.adbc_get_table_schema(name)
            cur.execute(f"SELECT * FROM {name}")
            result = cur.fetch_arrow_table().schema
            assert schema.names == result.names
            # (a column that is NULL in every row comes back int64 whatever it holds)
            for field in schema:
                if not field.nullable:
                    assert result.field(field.name).type == field.type, (name, field)
            assert schema.field("qty").type == pa.float64() and not schema.field("qty").nullable
            assert schema.field("seq").nullable and schema.field("seq").type == pa.int64()
            assert schema.field("ts").metadata[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"INTEGER"


def test_get_objects_filters_reach_the_server(desk):
    eng, _ = desk
    with connect(eng) as conn:
        def names(**filters):
            return sorted(t["table_name"] for c in objects(conn, depth="tables", **filters)
                          for s in c["catalog_db_schemas"] or [] for t in s["db_schema_tables"])

        assert names(table_name_filter="p%") == ["performance_metrics", "positions"]
        assert names(table_name_filter="_RDERS") == ["orders"]  # names fold case, as SQLite
        assert names(table_types_filter=["VIEW"]) == []
        assert names(db_schema_filter="nope") == []
        assert names(db_schema_filter="ma%", table_name_filter="fills") == ["fills"]
        assert conn.adbc_get_table_types() == ["TABLE"]


def test_get_tables_honours_each_filter_field(desk):
    _, client = desk

    def tables(*items):
        return ask(client, "CommandGetTables", *items).column("table_name").to_pylist()

    assert tables() == STORE_TABLES
    assert tables((1, "")) == STORE_TABLES  # "" = the tables without a catalog: all of them
    assert tables((1, "elsewhere")) == []
    assert tables((2, "m_in")) == STORE_TABLES and tables((2, "x%")) == []
    assert tables((3, "performance\\_metrics")) == ["performance_metrics"]  # escaped _
    assert tables((3, "performance\\%")) == []
    assert tables((4, "TABLE"), (4, "VIEW")) == STORE_TABLES
    assert tables((4, "SYSTEM TABLE")) == []
    with_schema = ask(client, "CommandGetTables", (3, "fills"), (5, 1))
    assert with_schema.column_names == [*TABLES.names, "table_schema"]
    schema = pa.ipc.read_schema(pa.py_buffer(with_schema.column("table_schema")[0].as_py()))
    assert schema.field("fill_id").type == pa.string() and schema.field("fee").type == pa.float64()


def test_catalogs_schemas_and_keys_answer_their_documented_schemas(desk):
    _, client = desk
    assert ask(client, "CommandGetCatalogs").num_rows == 0
    schemas = ask(client, "CommandGetDbSchemas")
    assert schemas.to_pylist() == [{"catalog_name": None, "db_schema_name": "main"}]
    assert ask(client, "CommandGetDbSchemas", (2, "x%")).num_rows == 0
    keys = ask(client, "CommandGetPrimaryKeys", (3, "orders"))
    assert keys.schema == PRIMARY_KEYS and keys.num_rows == 0  # the store declares none
    for message in ("CommandGetExportedKeys", "CommandGetImportedKeys"):
        answer = ask(client, message, (3, "fills"))
        assert answer.schema == FOREIGN_KEYS and answer.num_rows == 0
    cross = ask(client, "CommandGetCrossReference", (3, "orders"), (6, "fills"))
    assert cross.schema == FOREIGN_KEYS and cross.num_rows == 0


def test_sql_info_says_what_the_server_is(desk):
    eng, client = desk
    with connect(eng) as conn:
        info = conn.adbc_get_info()
    assert info["vendor_name"] == "flightdesk"
    assert info["vendor_version"] == flightdesk.__version__
    assert info["vendor_arrow_version"] == pa.__version__
    packed = field_bytes(1, bytes([3, 8, 0xAC, 0x02]))  # read_only, transactions, 300 (none)
    rows = ask(client, "CommandGetSqlInfo").to_pylist()
    asked = client.do_get(fl.Ticket(pack_any("CommandGetSqlInfo", packed)), READ).read_all()
    asked = asked.to_pylist()
    assert asked == [{"info_name": 3, "value": True}, {"info_name": 8, "value": 0}]
    assert {r["info_name"]: r["value"] for r in rows}[504] == '"'


def test_prepared_statements_are_checked_and_hold_nothing(desk):
    _, client = desk
    request = pack_any("ActionCreatePreparedStatementRequest",
                       field_bytes(1, b"SELECT count(*) AS n FROM fills"))
    (result,) = client.do_action(fl.Action("CreatePreparedStatement", request), READ)
    name, fields = unpack_any(result.body.to_pybytes())
    assert name == "ActionCreatePreparedStatementResult"
    command = pack_any("CommandPreparedStatementQuery", field_bytes(1, fields[1][0]))
    info = client.get_flight_info(fl.FlightDescriptor.for_command(command), READ)
    assert client.do_get(info.endpoints[0].ticket, READ).read_all()["n"][0].as_py() > 0
    assert list(client.do_action(fl.Action("ClosePreparedStatement", b""), READ)) == []
    # a handle is only the client's word: a forged one is checked like any query, and so
    # is a real handle's MAC before another query
    signed = fields[1][0][:20]
    for forged in (b"DELETE FROM fills", signed + b"DELETE FROM fills"):
        command = pack_any("CommandPreparedStatementQuery", field_bytes(1, forged))
        with pytest.raises(fl.FlightServerError, match="only SELECT queries") as err:
            client.get_flight_info(fl.FlightDescriptor.for_command(command), READ)
        clean(str(err.value))


@pytest.mark.parametrize(("message", "items", "error"), [
    ("CommandGetTables", [(3, "fills\\")], "ends with the escape character"),
    ("CommandGetTables", [(3, "x" * 300)], "at most 256"),
    ("CommandGetTables", [(4, 7)], "table_types \\(field 4\\) must be strings"),
    ("CommandGetDbSchemas", [(2, 5)], "db_schema_filter_pattern \\(field 2\\) must be a string"),
    ("CommandGetPrimaryKeys", [], "needs a table"),
    ("CommandGetXdbcTypeInfo", [], "CommandGetXdbcTypeInfo is not supported"),
])
def test_a_bad_catalogue_request_gets_a_clear_error(desk, message, items, error):
    eng, client = desk
    command = pack_any(message, encode(*items))
    with pytest.raises(fl.FlightServerError, match=error) as err:
        client.get_flight_info(fl.FlightDescriptor.for_command(command), READ)
    clean(str(err.value))
    with pytest.raises(fl.FlightServerError, match=f"{error}|is not a ticket") as err:
        client.do_get(fl.Ticket(command), READ).read_all()  # the command as a DoGet ticket
    clean(str(err.value))
    assert ask(client, "CommandGetTableTypes").num_rows == 1  # still serving


def test_a_malformed_command_body_is_named(desk):
    _, client = desk
    broken = field_bytes(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandGetTables") \
        + field_bytes(2, b"\x1a\x09fil")  # field 3 says 9 bytes, 3 follow
    with pytest.raises(fl.FlightServerError, match="Flight SQL CommandGetTables: .*runs past"):
        client.get_flight_info(fl.FlightDescriptor.for_command(broken), READ)


def test_the_catalogue_needs_a_token(desk):
    eng, client = desk
    with pytest.raises(fl.FlightUnauthenticatedError):
        ask(client, "CommandGetTables", options=fl.FlightCallOptions())
    with connect(eng, token="wrong") as conn:
        with pytest.raises(Exception, match="(?i)unauthenticated|unknown bearer token"):
            objects(conn, depth="tables")
    assert ask(client, "CommandGetTables").num_rows == len(STORE_TABLES)
    assert eng.status()["flight_server"]["sql"]["catalogue"] > 0  # counted in status


def test_no_client_message_carries_a_traceback_or_a_server_path(desk, monkeypatch, caplog):
    eng, client = desk
    server = eng.desk.flight
    messages = []

    def failing(call):
        with pytest.raises(Exception) as err:  # noqa: B017 - Flight and ADBC errors alike
            call()
        messages.append(str(err.value))

    def bug(*args):
        raise ZeroDivisionError("a bug")

    descriptor = fl.FlightDescriptor.for_command(pack_any("CommandGetTables", b""))
    with connect(eng) as conn, conn.cursor() as cur:
        failing(lambda: cur.execute("SELECT nope FROM orders"))  # via the Go driver: Prepare
        failing(lambda: cur.execute("SELECT * FROM orders WHERE qty > ?", (1,)))
    failing(lambda: list(client.do_action(fl.Action("BeginTransaction", b""), READ)))
    failing(lambda: client.do_get(fl.Ticket(pack_any("CommandStatementQuery", b"")),
                                  READ).read_all())
    put, _ = client.do_put(descriptor, pa.schema([("x", pa.int64())]), READ)
    failing(put.close)
    with caplog.at_level(logging.ERROR, "flightdesk.core.flight.hygiene"):
        monkeypatch.setattr(server.catalogue, "schema", bug)  # GetFlightInfo
        failing(lambda: client.get_flight_info(descriptor, READ))
        monkeypatch.setattr(server.catalogue, "table", bug)  # DoGet, before the stream
        failing(lambda: client.do_get(fl.Ticket(descriptor.command), READ).read_all())
        monkeypatch.setattr(server.sql, "action", bug)  # DoAction
        failing(lambda: list(client.do_action(fl.Action("CloseSession", b""), READ)))
        monkeypatch.setattr(server, "_filter", bug)  # inside a DoGet generator, mid-stream
        failing(lambda: client.do_get(fl.Ticket(b'{"stream": "quotes"}'), READ).read_all())
    assert len(messages) == 9
    for message in messages:
        clean(message)
    ids = [m for m in messages if "internal error (id" in m]
    assert len(ids) == 4 and not any("a bug" in m for m in messages)
    logged = [r.getMessage() for r in caplog.records if r.exc_info]
    for message in ids:
        error_id = re.search(r"id ([0-9a-f]{8})", message).group(1)
        assert any(error_id in line for line in logged)
    assert "not supported" in messages[2] and "parameters" in messages[1]


def test_like_matches_as_sql_does():
    assert like(like_tokens("%", "p"), "") and like(like_tokens("o%s", "p"), "orders")
    assert like(like_tokens("_ills", "p"), "FILLS") and not like(like_tokens("_ills", "p"), "ills")
    assert like(like_tokens("a\\%b", "p"), "a%b") and not like(like_tokens("a\\%b", "p"), "axb")
    assert like(like_tokens("%%%_%", "p"), "x") and not like(like_tokens("%_%_", "p"), "x")


def test_the_adbc_example_runs_against_a_desk(desk):
    eng, _ = desk
    env = {**os.environ, "FLIGHTDESK_URL": eng.flight_uri, "FLIGHTDESK_TOKEN": "r3ad"}
    out = subprocess.run([sys.executable, "docs/adbc_example.py"], capture_output=True,
                         text=True, timeout=60, env=env, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert f"connected to flightdesk {flightdesk.__version__}" in out.stdout
    assert "main.fills: fill_id TEXT, order_id TEXT, ts INTEGER" in out.stdout
    assert "fills as Arrow: fill_id string" in out.stdout
    assert re.search(r"^   \('\w+', '(buy|sell)', \d+, [\d.]+\)$", out.stdout, re.M), out.stdout
