"""A minimal protobuf wire-format reader (and writer, for tests and the replay server).

MEXC's push frames are protobuf messages; we decode them by field number with no protobuf
dependency. :func:`fields` walks one message and returns ``{field_number: [values]}``:
varints as ``int``, length-delimited fields as ``bytes`` (strings and sub-messages alike:
the caller knows which is which), fixed 64/32-bit fields as ``int``. Truncated or malformed
input raises ``ValueError``.
"""

from __future__ import annotations

__all__ = ["encode", "fields", "pair", "text"]

_MAX_VARINT_BYTES = 10


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    end = min(len(buf), pos + _MAX_VARINT_BYTES)
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise ValueError("truncated or overlong varint")


def fields(buf: bytes) -> dict[int, list[int | bytes]]:
    """Every field of one message, by number, in wire order."""
    out: dict[int, list[int | bytes]] = {}
    pos, n = 0, len(buf)
    while pos < n:
        key = buf[pos]  # one-byte keys and lengths (the usual case) skip _varint
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size = buf[pos] if pos < n else 0x80
            if size < 0x80:
                pos += 1
            else:
                size, pos = _varint(buf, pos)
            if pos + size > n:
                raise ValueError(f"field {num}: length {size} runs past the end")
            value, pos = buf[pos:pos + size], pos + size
        elif wire == 1 or wire == 5:
            width = 8 if wire == 1 else 4
            if pos + width > n:
                raise ValueError(f"field {num}: truncated fixed{width * 8}")
            value, pos = int.from_bytes(buf[pos:pos + width], "little"), pos + width
        else:
            raise ValueError(f"field {num}: unsupported wire type {wire}")
        out.setdefault(num, []).append(value)
    return out


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


def _enc_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode(*items: tuple[int, int | str | bytes]) -> bytes:
    """A message from ``(field_number, value)`` pairs: ints as varints, str/bytes delimited."""
    out = bytearray()
    for num, value in items:
        if isinstance(value, int):
            out += _enc_varint(num << 3) + _enc_varint(value)
        else:
            data = value.encode() if isinstance(value, str) else value
            out += _enc_varint(num << 3 | 2) + _enc_varint(len(data)) + data
    return bytes(out)
