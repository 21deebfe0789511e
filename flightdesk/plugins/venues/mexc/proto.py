"""MEXC's protobuf messages: fast readers for its price levels and strings, on top of the
shared wire-format codec in :mod:`flightdesk.core.protowire` (re-exported here)."""

from __future__ import annotations

from flightdesk.core.protowire import encode, fields

__all__ = ["encode", "fields", "pair", "text"]


def pair(buf: bytes) -> tuple[str, str]:
    """Fields 1 and 2 of a two-string message (a price level), fast when laid out as
    ``0a len price 12 len qty`` with one-byte lengths; any other layout via :func:`fields`."""
    n = len(buf)
    if n > 3 and buf[0] == 0x0A and buf[1] < 0x80:
        end = 2 + buf[1]
        if end + 1 < n and buf[end] == 0x12 and buf[end + 1] < 0x80 and \
                end + 2 + buf[end + 1] == n:
            return buf[2:end].decode("utf-8"), buf[end + 2:].decode("utf-8")
    msg = fields(buf)
    return text(msg, 1), text(msg, 2)


def text(msg: dict[int, list[int | bytes]], num: int, default: str = "") -> str:
    """The last value of string field ``num`` (UTF-8), or ``default`` when absent."""
    values = msg.get(num)
    if not values:
        return default
    value = values[-1]
    if not isinstance(value, bytes):
        raise ValueError(f"field {num} must be a string")
    return value.decode("utf-8")
