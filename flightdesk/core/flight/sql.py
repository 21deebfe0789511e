"""A read-only Flight SQL subset over the store, by hand (no protobuf dependency).

What an ADBC Flight SQL client does, and what it gets here:

1. ``GetFlightInfo(Any{CommandGetSqlInfo})`` -> UNIMPLEMENTED (the driver tolerates it);
2. ``DoAction("CreatePreparedStatement")`` -> UNIMPLEMENTED, so it falls back to
3. ``GetFlightInfo(Any{CommandStatementQuery{1: query}})``: the query is checked (one
   ``SELECT``/``WITH`` statement reading only the store tables), run within its limits
   (time, rows, bytes: see ``sql_pool``), and its result kept under a fresh handle (in a
   cache bounded in count and bytes); the answer's endpoint ticket is
   ``Any{TicketStatementQuery{1: handle}}``;
4. ``DoGet`` of that ticket streams the result (once);
5. ``DoAction("CloseSession")``.

``Any`` is ``{1: type_url, 2: bytes}`` with type URLs
``type.googleapis.com/arrow.flight.protocol.sql.<Message>``. Only varint and
length-delimited fields occur in these messages, so a dozen lines of wire format suffice.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable

import pyarrow as pa

from flightdesk.core.errors import LimitError, TicketError
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
    """``(message name, its fields)`` for a Flight SQL ``Any``, else None."""
    if not data[:1] == b"\x0a":  # field 1, length-delimited: JSON tickets start with '{'
        return None
    try:
        fields = decode(data)
        url = fields.get(1, [b""])[0]
        if not isinstance(url, bytes) or not url.startswith(TYPE_PREFIX.encode()):
            return None
        body = fields.get(2, [b""])[0]
        return url[len(TYPE_PREFIX):].decode(), decode(body if isinstance(body, bytes) else b"")
    except (TicketError, UnicodeDecodeError):
        return None


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

    def prepare(self, message: str, fields: dict[int, list[bytes | int]],
                cancelled: Callable[[], bool] = lambda: False
                ) -> tuple[pa.Schema, bytes, int]:
        """Run a ``CommandStatementQuery``: (result schema, ticket, rows); ``cancelled()``
        says the caller went away (the query is then interrupted)."""
        if message != "CommandStatementQuery":
            raise NotImplementedError(f"Flight SQL {message} is not supported; this desk "
                                      "answers plain statement queries (SELECT)")
        query = _text(fields, 1).decode("utf-8", "replace")
        try:
            catalog = self.catalog()
            check_select(query, catalog, queryable_in(catalog))
        except TicketError:
            self.rejected += 1
            raise
        table = self.run_query(query, cancelled)
        handle = uuid.uuid4().bytes
        self.cache.put(handle, table)
        self.queries += 1
        ticket = pack_any("TicketStatementQuery", field_bytes(1, handle))
        return table.schema, ticket, table.num_rows

    def take(self, fields: dict[int, list[bytes | int]]) -> pa.Table:
        """The result behind a ``TicketStatementQuery`` (each result is read once)."""
        table = self.cache.take(_text(fields, 1))
        if table is None:
            raise TicketError("unknown or already-read Flight SQL statement handle; run the "
                              "query again")
        return table

    @staticmethod
    def action(kind: str) -> list[bytes]:
        """Flight SQL actions: only ``CloseSession`` succeeds (nothing to close)."""
        if kind == "CloseSession":
            return [field_varint(1, 1)]  # CloseSessionResult{status: CLOSED}
        raise NotImplementedError(f"Flight SQL action {kind} is not supported here; use "
                                  "plain statement queries")


SQL_ACTIONS = ("CreatePreparedStatement", "ClosePreparedStatement",
               "CreatePreparedSubstraitPlan", "BeginTransaction", "EndTransaction",
               "BeginSavepoint", "EndSavepoint", "CancelQuery", "CloseSession",
               "SetSessionOptions", "GetSessionOptions")
