"""A read-only Flight SQL subset over the store, by hand (no protobuf dependency).

What an ADBC Flight SQL client does, and what it gets here:

1. ``GetFlightInfo(Any{CommandGetSqlInfo})``: the server's name, versions and abilities
   (no transactions), answered by the catalogue (:mod:`flightdesk.core.flight.sql_catalog`,
   which also answers GetCatalogs/GetDbSchemas/GetTables/GetTableTypes and the key commands);
2. ``DoAction("CreatePreparedStatement")``: the query is checked (one ``SELECT``/``WITH``
   statement reading only the store tables) and the answer's handle *is* the query, after
   a MAC that says this service checked it, so nothing is held per statement and
   ``ClosePreparedStatement`` has nothing to free;
3. ``GetFlightInfo(Any{CommandPreparedStatementQuery{1: handle}})`` (or, from clients that
   don't prepare, ``Any{CommandStatementQuery{1: query}}``): the query is checked again
   unless its MAC is this service's, run within its limits (time, rows, bytes: see
   ``sql_pool``), and its result kept under a fresh result handle (in a cache bounded in
   count and bytes); the answer's endpoint ticket is ``Any{TicketStatementQuery{1: handle}}``;
4. ``DoGet`` of that ticket streams the result (once);
5. ``DoAction("CloseSession")``.

Prepared statements are real rather than refused because the only refusal the client
falls back from is gRPC UNIMPLEMENTED, and pyarrow sends every UNIMPLEMENTED with the
handler's traceback attached; what is not supported (transactions, updates, parameters,
Substrait) is an :class:`~flightdesk.core.flight.hygiene.Unsupported` naming what was asked.

``Any`` is ``{1: type_url, 2: bytes}`` with type URLs
``type.googleapis.com/arrow.flight.protocol.sql.<Message>``. Only varint and
length-delimited fields occur in these messages, so a dozen lines of wire format suffice.
"""

from __future__ import annotations

import hmac
import re
import secrets
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

import pyarrow as pa

from flightdesk.core.errors import LimitError, TicketError
from flightdesk.core.flight.hygiene import Unsupported
from flightdesk.core.protowire import field_bytes, field_varint, fields

TYPE_PREFIX = "type.googleapis.com/arrow.flight.protocol.sql."
QUERYABLE = ("orders", "fills", "positions", "events", "performance_metrics")
_FIRST_WORD = re.compile(r"^\s*(?:(?:--[^\n]*\n)|(?:/\*.*?\*/)|\s)*(\w+)", re.S)


def decode(data: bytes) -> dict[int, list[bytes | int]]:
    """Fields of one protobuf message (see :mod:`flightdesk.core.protowire`)."""
    try:
        return fields(data)
    except ValueError as exc:
        raise TicketError(f"malformed protobuf: {exc}") from exc


def pack_any(message: str, body: bytes) -> bytes:
    return field_bytes(1, (TYPE_PREFIX + message).encode()) + field_bytes(2, body)


def unpack_any(data: bytes) -> tuple[str, dict[int, list[bytes | int]]] | None:
    """``(message name, its fields)`` for a Flight SQL ``Any``, else None (a JSON ticket);
    a Flight SQL message whose body does not decode is a :class:`TicketError`."""
    if not data[:1] == b"\x0a":  # field 1, length-delimited: JSON tickets start with '{'
        return None
    try:
        fields = decode(data)
        url = fields.get(1, [b""])[0]
        if not isinstance(url, bytes) or not url.startswith(TYPE_PREFIX.encode()):
            return None
        name = url[len(TYPE_PREFIX):].decode()
    except (TicketError, UnicodeDecodeError):
        return None
    body = fields.get(2, [b""])[0]
    try:
        return name, decode(body if isinstance(body, bytes) else b"")
    except TicketError as exc:
        raise TicketError(f"Flight SQL {name}: {exc}") from None


def _text(fields: dict[int, list[bytes | int]], number: int) -> bytes:
    value = fields.get(number, [b""])[0]
    return value if isinstance(value, bytes) else b""


# -- checking a query ------------------------------------------------------------------
CATALOG_SQL = ("SELECT m.name AS t, p.name AS c FROM sqlite_master m, pragma_table_info(m.name) p "
               "WHERE m.type = 'table' ORDER BY m.name, p.cid")


def check_select(sql: str, catalog: dict[str, list[str]], queryable: Iterable[str]) -> None:
    """Raise :class:`TicketError` unless ``sql`` is one read-only query over ``queryable``.

    The query is compiled (``EXPLAIN``, never run) by the stdlib's SQLite against an
    in-memory copy of the store's *catalog* (``table -> columns``), with an authorizer that
    allows reads of the queryable tables only. It never opens the store file: two SQLite
    libraries in one process (the stdlib's and the ADBC driver's) must not share a database
    file, or closing one connection drops the other's POSIX locks.
    """
    match = _FIRST_WORD.match(sql)
    word = match.group(1).upper() if match else ""
    if word not in ("SELECT", "WITH"):
        raise TicketError(f"only SELECT queries are allowed here; got {word or 'nothing'!r}")
    allowed = {fold(t) for t in queryable}  # table names: SQLite's rule, ASCII case folded
    denied: list[str] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action == sqlite3.SQLITE_READ and fold(arg1 or "") in allowed:
            return sqlite3.SQLITE_OK
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            denied.append(f"query reads table {arg1!r}; queryable tables are "
                          f"{', '.join(sorted(allowed))}")
        else:
            denied.append(f"query needs SQLite operation {action} ({arg1}); only read-only "
                          "SELECT queries are allowed")
        return sqlite3.SQLITE_DENY

    conn = sqlite3.connect(":memory:")
    try:
        for table, columns in catalog.items():
            cols = ", ".join(_quote(c) for c in columns)
            conn.execute(f"CREATE TABLE {_quote(table)} ({cols})")
        conn.set_authorizer(authorize)
        conn.execute(f"EXPLAIN {sql}").close()
    except (sqlite3.DatabaseError, sqlite3.ProgrammingError, sqlite3.Warning) as exc:
        if denied:
            raise TicketError(denied[0]) from exc
        if "bindings" in str(exc):  # a '?' or ':name' placeholder: nothing binds it here
            raise TicketError("query parameters ('?', ':name') are not supported here; "
                              "write the values into the query") from exc
        raise TicketError(f"bad query: {exc}") from exc
    finally:
        conn.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold(name: str) -> str:
    """``name`` as SQLite compares identifiers: ASCII letters case-insensitively."""
    return name.translate(_ASCII_LOWER)


def queryable_in(catalog: Iterable[str]) -> list[str]:
    """The store tables (as the store spells them) that queries may read."""
    wanted = {fold(t) for t in QUERYABLE}
    return [t for t in catalog if fold(t) in wanted]


# -- the service -----------------------------------------------------------------------
class ResultCache:
    """Results between their GetFlightInfo and their DoGet: at most ``count`` of them and
    ``max_bytes`` in all (the oldest go first); a result bigger than that is refused."""

    def __init__(self, count: int, max_bytes: int) -> None:
        self.count = count
        self.max_bytes = max_bytes
        self._results: OrderedDict[bytes, pa.Table] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.evicted = 0

    def put(self, handle: bytes, table: pa.Table) -> None:
        size = table.get_total_buffer_size()
        if size > self.max_bytes:
            raise LimitError(f"query result is {size / 1e6:.1f} MB, more than the results "
                             f"held for DoGet; limit [flight] sql_cache_mb "
                             f"({self.max_bytes / 1e6:g} MB); add a LIMIT",
                             limit="flight.sql_cache_mb")
        with self._lock:
            self._results[handle] = table
            self.bytes += size
            while len(self._results) > self.count or self.bytes > self.max_bytes:
                self._drop(next(iter(self._results)))
                self.evicted += 1

    def take(self, handle: bytes) -> pa.Table | None:
        with self._lock:
            return self._drop(handle)

    def _drop(self, handle: bytes) -> pa.Table | None:
        table = self._results.pop(handle, None)
        if table is not None:
            self.bytes -= table.get_total_buffer_size()
        return table

    def __len__(self) -> int:
        return len(self._results)


class SqlService:
    """Statement queries: checked, run at GetFlightInfo (``run_query``: bounded, see
    :mod:`flightdesk.core.flight.sql_pool`), held until their one DoGet."""

    def __init__(self, run: Callable[[str], pa.Table],
                 run_query: Callable[[str, Callable[[], bool]], pa.Table],
                 cache: ResultCache) -> None:
        self.run = run
        self.run_query = run_query
        self.cache = cache
        self.queries = 0
        self.rejected = 0
        self._key = secrets.token_bytes(16)  # signs prepared-statement handles (this run)

    def catalog(self) -> dict[str, list[str]]:
        """The store's tables and their columns (through the store's own driver)."""
        rows = self.run(CATALOG_SQL)
        out: dict[str, list[str]] = {}
        for table, column in zip(rows.column("t").to_pylist(), rows.column("c").to_pylist(),
                                 strict=True):
            if not table.startswith("sqlite_"):
                out.setdefault(table, []).append(column)
        return out

    def tables(self) -> list[str]:
        return queryable_in(self.catalog())

    def check(self, query: str) -> None:
        """Refuse (and count) a query that is not one read-only ``SELECT`` here."""
        try:
            catalog = self.catalog()
            check_select(query, catalog, queryable_in(catalog))
        except TicketError:
            self.rejected += 1
            raise

    def prepare(self, message: str, fields: dict[int, list[bytes | int]],
                cancelled: Callable[[], bool] = lambda: False
                ) -> tuple[pa.Schema, bytes, int]:
        """Run a ``CommandStatementQuery`` or ``CommandPreparedStatementQuery``: (result
        schema, ticket, rows); ``cancelled()`` says the caller went away (the query is
        then interrupted)."""
        if message not in STATEMENTS:
            raise Unsupported(f"Flight SQL {message} is not supported; this desk "
                                   "answers SELECT queries and catalogue requests")
        if message == "CommandStatementQuery" and _text(fields, 2):
            raise Unsupported(NO_TRANSACTIONS)
        query = self._statement(message, _text(fields, 1))
        table = self.run_query(query, cancelled)
        handle = uuid.uuid4().bytes
        self.cache.put(handle, table)
        self.queries += 1
        ticket = pack_any("TicketStatementQuery", field_bytes(1, handle))
        return table.schema, ticket, table.num_rows

    def _statement(self, message: str, text: bytes) -> str:
        """The query of a statement, checked unless it is a handle this service signed
        when it checked it (a handle from elsewhere, or forged, is checked as it stands)."""
        if message == "CommandPreparedStatementQuery" and len(text) >= _MAC_BYTES:
            mac, rest = text[:_MAC_BYTES], text[_MAC_BYTES:]
            if hmac.compare_digest(mac, self._sign(rest)):
                return rest.decode("utf-8", "replace")
            if mac.startswith(_MAC_TAG):
                text = rest  # another process's handle (the desk's, on its data plane)
        query = text.decode("utf-8", "replace")
        self.check(query)
        return query

    def _sign(self, query: bytes) -> bytes:
        return _MAC_TAG + hmac.digest(self._key, query, "sha256")[:_MAC_BYTES - len(_MAC_TAG)]

    def take(self, fields: dict[int, list[bytes | int]]) -> pa.Table:
        """The result behind a ``TicketStatementQuery`` (each result is read once)."""
        table = self.cache.take(_text(fields, 1))
        if table is None:
            raise TicketError("unknown or already-read Flight SQL statement handle; run the "
                              "query again")
        return table

    def action(self, kind: str, body: bytes) -> list[bytes]:
        """A Flight SQL action's results: prepared statements (whose handle is their
        query, see the module docstring) and ``CloseSession``; the others are refused."""
        if kind == "CreatePreparedStatement":
            request = unpack_any(body)
            if request is None or request[0] != "ActionCreatePreparedStatementRequest":
                raise TicketError("CreatePreparedStatement needs an "
                                  "ActionCreatePreparedStatementRequest")
            if _text(request[1], 2):
                raise Unsupported(NO_TRANSACTIONS)
            query = _text(request[1], 1)
            self.check(query.decode("utf-8", "replace"))
            handle = self._sign(query) + query
            return [pack_any("ActionCreatePreparedStatementResult", field_bytes(1, handle))]
        if kind == "ClosePreparedStatement":
            return []  # nothing is held for a prepared statement
        if kind == "CloseSession":
            return [field_varint(1, 1)]  # CloseSessionResult{status: CLOSED}
        raise Unsupported(f"Flight SQL action {kind} is not supported here; this "
                               "desk's SQL is read-only SELECT queries, without "
                               "transactions, sessions or Substrait plans")


STATEMENTS = ("CommandStatementQuery", "CommandPreparedStatementQuery")
_MAC_TAG = b"\x00fd"  # a prepared handle: tag + MAC (20 bytes in all), then the query
_MAC_BYTES = 20
NO_TRANSACTIONS = "Flight SQL transactions are not supported here (the desk's SQL is read-only)"
SQL_ACTIONS = ("CreatePreparedStatement", "ClosePreparedStatement",
               "CreatePreparedSubstraitPlan", "BeginTransaction", "EndTransaction",
               "BeginSavepoint", "EndSavepoint", "CancelQuery", "CloseSession",
               "SetSessionOptions", "GetSessionOptions")
