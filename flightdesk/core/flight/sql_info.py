"""Flight SQL ``CommandGetSqlInfo``: what the server says about itself.

Clients ask at connect time: the ADBC Go driver for ``FLIGHT_SQL_SERVER_TRANSACTION`` (none
here, so it never tries ``BeginTransaction``) and, for ``adbc_get_info``, the server's name
and versions; JDBC tools (DBeaver, DataGrip) for the identifier, quoting and catalogue
terms they show and generate SQL with. Each answer row is ``(info_name uint32, value
dense_union<string_value, bool_value, bigint_value, int32_bitmask, string_list,
int32_to_int32_list_map>)`` with those type codes 0-5 (FlightSql.proto). Codes asked for
that the desk has no answer to are left out (clients keep their defaults), never an error.
"""

from __future__ import annotations

import functools
import struct

import pyarrow as pa

from flightdesk.core.errors import TicketError

VALUE = pa.dense_union([
    pa.field("string_value", pa.string(), False), pa.field("bool_value", pa.bool_(), False),
    pa.field("bigint_value", pa.int64(), False), pa.field("int32_bitmask", pa.int32(), False),
    pa.field("string_list", pa.list_(pa.string()), False),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), False)])
SQL_INFO = pa.schema([pa.field("info_name", pa.uint32(), False),
                      pa.field("value", VALUE, False)])

_CASE_INSENSITIVE = 1  # SqlSupportedCaseSensitivity
_NULLS_SORTED_LOW = 1  # SqlNullOrdering: SQLite sorts NULL below every value
_TRANSACTION_NONE = 0  # SqlSupportedTransaction
MAX_CODES = 10_000  # info codes in one request


class Int32(int):
    """An info value the protocol types as int32 (``int32_bitmask``), not int64."""


@functools.cache
def server_info() -> dict[int, str | bool | int]:
    """The answers, by SqlInfo number (FlightSql.proto's enum)."""
    from flightdesk import __version__

    return {
        0: "flightdesk", 1: __version__, 2: pa.__version__,  # name, version, Arrow version
        3: True, 4: True, 5: False,  # read only; SQL; no Substrait
        8: Int32(_TRANSACTION_NONE), 9: False,  # no transactions; no CancelQuery
        100: Int32(0),  # statement handles never time out (they hold nothing)
        500: False, 501: False, 502: False,  # no CREATE/DROP of catalogs, schemas, tables
        503: Int32(_CASE_INSENSITIVE), 504: '"', 505: Int32(_CASE_INSENSITIVE),
        506: True, 507: Int32(_NULLS_SORTED_LOW),  # every listed table can be selected
        513: "\\",  # the escape in catalogue filter patterns (see sql_catalog)
        515: True, 516: True, 523: True, 524: True,  # aliases, NULL||x, LIKE ESCAPE, NOT NULL
        529: "schema", 531: "", 532: False,  # "" catalog term: no catalogs
        536: False, 537: False, 563: False, 572: False, 573: False,  # FOR UPDATE, procedures,
    }                                                    # transactions, batches, savepoints


def requested_info(fields: dict[int, list[bytes | int]]) -> list[int]:
    """The info codes of a ``CommandGetSqlInfo`` (field 1, packed or not); empty: all."""
    codes: list[int] = []
    for value in fields.get(1, []):
        codes += unpack_varints(value) if isinstance(value, bytes) else [value]
        if len(codes) > MAX_CODES:
            raise TicketError(f"Flight SQL CommandGetSqlInfo asks for more than {MAX_CODES} "
                              "info codes")
    return codes


def unpack_varints(data: bytes) -> list[int]:
    """A packed repeated varint field's values."""
    out: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            out.append(value)
            value = shift = 0
        elif shift > 63:
            raise TicketError("Flight SQL CommandGetSqlInfo: malformed info codes")
    if shift:
        raise TicketError("Flight SQL CommandGetSqlInfo: truncated info codes")
    return out


def sql_info_table(codes: list[int]) -> pa.Table:
    """The rows answering ``codes`` (every known one when empty), in the order asked."""
    info = server_info()
    known = [c for c in dict.fromkeys(codes) if c in info] if codes else sorted(info)
    children: list[list[object]] = [[] for _ in VALUE]
    type_codes, offsets = [], []
    for code in known:
        child = _child(info[code])
        type_codes.append(child)
        offsets.append(len(children[child]))
        children[child].append(info[code])
    arrays = [pa.array(values, field.type) for values, field in zip(children, VALUE,
                                                                    strict=True)]
    value = pa.Array.from_buffers(
        VALUE, len(known), [None, pa.py_buffer(bytes(type_codes)),
                            pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets))],
        children=arrays)
    return pa.table([pa.array(known, pa.uint32()), value], schema=SQL_INFO)


def _child(value: object) -> int:
    """The union's type code for ``value``."""
    if isinstance(value, str):
        return 0
    if isinstance(value, bool):
        return 1
    return 3 if isinstance(value, Int32) else 2
