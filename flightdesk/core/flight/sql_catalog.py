"""The Flight SQL catalogue: what a database tool browses before it queries.

DBeaver, DataGrip (through the Flight SQL JDBC driver) and ADBC's ``adbc_get_objects``
list a server's catalogs, schemas, tables and columns with ``GetFlightInfo`` of
``CommandGetCatalogs`` / ``CommandGetDbSchemas`` / ``CommandGetTables`` /
``CommandGetTableTypes`` and the key commands, then ``DoGet`` of the endpoint's ticket.
Here the ticket is the command itself, and ``DoGet`` computes the answer afresh from the
store's own catalogue (``pragma_table_info``): nothing is held between the two calls.

Names: no catalog (SQLite has none; ``GetCatalogs`` answers zero rows, as the protocol
allows), one schema, ``main`` (SQLite's name for the store's database, so a tool's
``main.orders`` is a valid query), and the queryable store tables (``sql.QUERYABLE``) of
type ``TABLE``. Filters follow the protocol: ``catalog`` is exact (``""`` means "without a
catalog", which every table here is), the ``*_filter_pattern`` fields use SQL ``LIKE``
(``%``, ``_``, ``\\`` escapes; ASCII case folded, as SQLite compares names).

A table's Arrow schema (``include_schema``) comes from the columns' declared SQLite types
(INTEGER -> int64, REAL -> float64, TEXT -> utf8, BLOB -> binary: the types a ``SELECT``
returns once the table has rows; an empty ``SELECT ... LIMIT 0`` comes back all int64 from
the SQLite driver, so it can't be the source), with ``NOT NULL`` as ``nullable=False`` and
``ARROW:FLIGHT:SQL:*`` field metadata (the declared type name, table and schema).

Result schemas are those of Arrow's reference servers (C++ ``SqlSchema``, Go
``schema_ref``); clients compare them exactly. In ``GetPrimaryKeys`` those put
``key_sequence`` before ``key_name``, against FlightSql.proto's comment: the servers win.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from flightdesk.core.errors import TicketError
from flightdesk.core.flight.sql import fold, queryable_in
from flightdesk.core.flight.sql_info import SQL_INFO, requested_info, sql_info_table

SCHEMA_NAME = "main"
TABLE_TYPE = "TABLE"
MAX_PATTERN = 256  # characters in a filter pattern (the LIKE match costs pattern x name)
_TEXT = pa.string()

CATALOGS = pa.schema([pa.field("catalog_name", _TEXT, False)])
DB_SCHEMAS = pa.schema([pa.field("catalog_name", _TEXT), pa.field("db_schema_name", _TEXT, False)])
TABLES = pa.schema([pa.field("catalog_name", _TEXT), pa.field("db_schema_name", _TEXT),
                    pa.field("table_name", _TEXT, False), pa.field("table_type", _TEXT, False)])
TABLES_WITH_SCHEMA = TABLES.append(pa.field("table_schema", pa.binary(), False))
TABLE_TYPES = pa.schema([pa.field("table_type", _TEXT, False)])
PRIMARY_KEYS = pa.schema([
    pa.field("catalog_name", _TEXT), pa.field("db_schema_name", _TEXT),
    pa.field("table_name", _TEXT, False), pa.field("column_name", _TEXT, False),
    pa.field("key_sequence", pa.int32(), False), pa.field("key_name", _TEXT)])


def _key_columns(side: str) -> list[pa.Field]:
    return [pa.field(f"{side}_catalog_name", _TEXT), pa.field(f"{side}_db_schema_name", _TEXT),
            pa.field(f"{side}_table_name", _TEXT, False),
            pa.field(f"{side}_column_name", _TEXT, False)]


FOREIGN_KEYS = pa.schema(  # GetImportedKeys, GetExportedKeys, GetCrossReference
    _key_columns("pk") + _key_columns("fk")
    + [pa.field("key_sequence", pa.int32(), False), pa.field("fk_key_name", _TEXT),
       pa.field("pk_key_name", _TEXT), pa.field("update_rule", pa.uint8(), False),
       pa.field("delete_rule", pa.uint8(), False)])

COLUMNS_SQL = ('SELECT m.name AS t, p.name AS c, p.type AS ty, p."notnull" AS nn, p.pk AS pk '
               "FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table' "
               "ORDER BY m.name, p.cid")
_META = "ARROW:FLIGHT:SQL:"

Fields = dict[int, list[bytes | int]]


@dataclass(frozen=True, slots=True)
class Column:
    """One store column as SQLite declares it."""

    name: str
    declared: str
    not_null: bool
    pk: int  # position in the primary key, 0 if not part of it


def arrow_type(declared: str) -> pa.DataType:
    """The Arrow type of a column of this declared type (SQLite's affinity rules)."""
    text = declared.upper()
    if "INT" in text:
        return pa.int64()
    if any(word in text for word in ("CHAR", "CLOB", "TEXT")):
        return pa.string()
    if "BLOB" in text or not text:
        return pa.binary()
    return pa.float64()  # REAL, FLOA, DOUB, and NUMERIC (SQLite stores those as numbers)


def table_schema(table: str, columns: Iterable[Column]) -> pa.Schema:
    """``table``'s Arrow schema, each field carrying Flight SQL's column metadata."""
    return pa.schema([
        pa.field(c.name, arrow_type(c.declared), not c.not_null,
                 {f"{_META}TYPE_NAME": c.declared, f"{_META}TABLE_NAME": table,
                  f"{_META}DB_SCHEMA_NAME": SCHEMA_NAME, f"{_META}IS_READ_ONLY": "1",
                  f"{_META}IS_SEARCHABLE": "1"})
        for c in columns])


# -- filters ---------------------------------------------------------------------------
_ANY, _ONE = object(), object()  # LIKE's % and _


def like_tokens(pattern: str, what: str) -> list[object]:
    """``pattern`` as LIKE tokens (``_ANY``, ``_ONE`` or a folded character)."""
    if len(pattern) > MAX_PATTERN:
        raise TicketError(f"{what} is {len(pattern)} characters; at most {MAX_PATTERN}")
    tokens: list[object] = []
    chars = iter(fold(pattern))
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "")
            if not ch:
                raise TicketError(f"{what} {pattern!r} ends with the escape character '\\'")
            tokens.append(ch)
        elif ch == "%":
            if not tokens or tokens[-1] is not _ANY:
                tokens.append(_ANY)
        else:
            tokens.append(_ONE if ch == "_" else ch)
    return tokens


def like(tokens: list[object], name: str) -> bool:
    """Whether ``name`` matches: the positions of ``name`` reachable token by token
    (pattern x name steps at most, whatever the pattern)."""
    name = fold(name)
    reach = {0}
    for token in tokens:
        if token is _ANY:
            reach = set(range(min(reach), len(name) + 1))
        else:
            reach = {i + 1 for i in reach if i < len(name) and (token is _ONE
                                                                 or name[i] == token)}
        if not reach:
            return False
    return len(name) in reach


@dataclass(frozen=True, slots=True)
class Filters:
    """The narrowing fields of a catalogue command (None: not given, so no narrowing)."""

    catalog: str | None = None
    db_schema: list[object] | None = None  # LIKE tokens
    table: list[object] | None = None
    table_types: tuple[str, ...] = ()
    include_schema: bool = False

    def in_catalog(self) -> bool:
        return self.catalog is None or self.catalog == ""  # our tables have no catalog

    def in_schema(self) -> bool:
        return self.in_catalog() and (self.db_schema is None or like(self.db_schema,
                                                                     SCHEMA_NAME))

    def has_table(self, name: str) -> bool:
        return (self.in_schema() and (self.table is None or like(self.table, name))
                and (not self.table_types or TABLE_TYPE in self.table_types))


def _string(message: str, fields: Fields, number: int, what: str) -> str | None:
    values = fields.get(number)
    if not values:
        return None
    value = values[-1]
    if not isinstance(value, bytes):
        raise TicketError(f"Flight SQL {message}: {what} (field {number}) must be a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise TicketError(f"Flight SQL {message}: {what} (field {number}) is not UTF-8") from None


def _pattern(message: str, fields: Fields, number: int, what: str) -> list[object] | None:
    text = _string(message, fields, number, what)
    return None if text is None else like_tokens(text, f"{message} {what}")


def parse_filters(message: str, fields: Fields) -> Filters:
    """The filters of ``CommandGetDbSchemas``/``CommandGetTables`` (fields 1-5)."""
    types = []
    for value in fields.get(4, []) if message == "CommandGetTables" else []:
        if not isinstance(value, bytes):
            raise TicketError(f"Flight SQL {message}: table_types (field 4) must be strings")
        types.append(value.decode("utf-8", "replace").upper())
    flag = fields.get(5, [0])[-1] if message == "CommandGetTables" else 0
    if not isinstance(flag, int):
        raise TicketError(f"Flight SQL {message}: include_schema (field 5) must be a bool")
    table = (_pattern(message, fields, 3, "table_name_filter_pattern")
             if message == "CommandGetTables" else None)
    return Filters(_string(message, fields, 1, "catalog"),
                   _pattern(message, fields, 2, "db_schema_filter_pattern"), table,
                   tuple(types), bool(flag))


# -- the answers -----------------------------------------------------------------------
class Catalogue:
    """Answers the catalogue commands from the store's columns (``run``: a read query
    on the store; see the module docstring)."""

    def __init__(self, run: Callable[[str], pa.Table]) -> None:
        self.run = run
        self.requests = 0

    def columns(self) -> dict[str, list[Column]]:
        """The queryable tables (as the store spells them) and their columns, by name."""
        rows = self.run(COLUMNS_SQL).to_pylist()
        tables: dict[str, list[Column]] = {}
        for row in rows:
            tables.setdefault(row["t"], []).append(
                Column(row["c"], row["ty"] or "", bool(row["nn"]), int(row["pk"] or 0)))
        return {t: tables[t] for t in sorted(queryable_in(tables))}

    def schema(self, message: str, fields: Fields) -> pa.Schema:
        """The result schema of a catalogue command, after checking the command."""
        if message == "CommandGetTables":
            return TABLES_WITH_SCHEMA if parse_filters(message, fields).include_schema \
                else TABLES
        if message == "CommandGetSqlInfo":
            requested_info(fields)
            return SQL_INFO
        if message == "CommandGetDbSchemas":
            parse_filters(message, fields)
        if message == "CommandGetPrimaryKeys":
            _key_table(fields)
        return _STATIC[message]

    def table(self, message: str, fields: Fields) -> pa.Table:
        """The answer to a catalogue command."""
        self.requests += 1
        if message == "CommandGetSqlInfo":
            return sql_info_table(requested_info(fields))
        if message == "CommandGetDbSchemas":
            rows = [(None, SCHEMA_NAME)] if parse_filters(message, fields).in_schema() else []
            return _rows(DB_SCHEMAS, rows)
        if message == "CommandGetTables":
            return self._tables(parse_filters(message, fields))
        if message == "CommandGetTableTypes":
            return _rows(TABLE_TYPES, [(TABLE_TYPE,)])
        if message == "CommandGetPrimaryKeys":
            return self._primary_keys(fields)
        return _STATIC[message].empty_table()  # no catalogs, no foreign keys

    def _tables(self, filters: Filters) -> pa.Table:
        rows: list[tuple[object, ...]] = []
        for name, columns in self.columns().items():
            if filters.has_table(name):
                row: tuple[object, ...] = (None, SCHEMA_NAME, name, TABLE_TYPE)
                if filters.include_schema:
                    row += (table_schema(name, columns).serialize().to_pybytes(),)
                rows.append(row)
        return _rows(TABLES_WITH_SCHEMA if filters.include_schema else TABLES, rows)

    def _primary_keys(self, fields: Fields) -> pa.Table:
        catalog, schema, table = _key_table(fields)
        rows = []
        if catalog in (None, "") and schema in (None, SCHEMA_NAME):
            for name, columns in self.columns().items():
                if fold(name) == fold(table):
                    rows += [(None, SCHEMA_NAME, name, c.name, c.pk, None)
                             for c in sorted(columns, key=lambda c: c.pk) if c.pk]
        return _rows(PRIMARY_KEYS, rows)


def _key_table(fields: Fields) -> tuple[str | None, str | None, str]:
    """``CommandGetPrimaryKeys``' catalog, db_schema (exact names) and table."""
    message = "CommandGetPrimaryKeys"
    table = _string(message, fields, 3, "table")
    if not table:
        raise TicketError(f"Flight SQL {message} needs a table (field 3)")
    return (_string(message, fields, 1, "catalog"), _string(message, fields, 2, "db_schema"),
            table)


def _rows(schema: pa.Schema, rows: Sequence[tuple[object, ...]]) -> pa.Table:
    columns: list[Sequence[object]] = [[] for _ in schema]
    if rows:
        columns = list(zip(*rows, strict=True))
    return pa.table([pa.array(list(col), f.type) for col, f in zip(columns, schema,
                                                                      strict=True)],
                    schema=schema)


_STATIC = {"CommandGetCatalogs": CATALOGS, "CommandGetDbSchemas": DB_SCHEMAS,
           "CommandGetTableTypes": TABLE_TYPES, "CommandGetPrimaryKeys": PRIMARY_KEYS,
           "CommandGetExportedKeys": FOREIGN_KEYS, "CommandGetImportedKeys": FOREIGN_KEYS,
           "CommandGetCrossReference": FOREIGN_KEYS}
COMMANDS = (*_STATIC, "CommandGetTables", "CommandGetSqlInfo")
"""The Flight SQL commands the catalogue answers (``GetFlightInfo``, then ``DoGet``)."""
