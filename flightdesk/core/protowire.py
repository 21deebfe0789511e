"""The protobuf wire format, by hand: enough to read and write messages by field number.

Used where a protocol speaks protobuf but we need a handful of messages, not a dependency:
MEXC's push frames and Flight SQL's commands. :func:`fields` walks one message and returns
``{field_number: [values]}`` — varints as ``int``, length-delimited fields as ``bytes``
(strings and sub-messages alike: the caller knows which is which), fixed 64/32-bit fields as
``int``. Truncated or malformed input raises ``ValueError``.
"""

from __future__ import annotations

__all__ = ["encode", "encode_varint", "field_bytes", "field_varint", "fields"]

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


def encode_varint(value: int) -> bytes:
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
            out += encode_varint(num << 3) + encode_varint(value)
        else:
            data = value.encode() if isinstance(value, str) else value
            out += encode_varint(num << 3 | 2) + encode_varint(len(data)) + data
    return bytes(out)


def field_bytes(number: int, value: bytes) -> bytes:
    """One length-delimited field."""
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def field_varint(number: int, value: int) -> bytes:
    """One varint field."""
    return encode_varint(number << 3) + encode_varint(value)
