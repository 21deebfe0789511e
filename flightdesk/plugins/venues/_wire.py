"""Small wire-format helpers the JSON venue parsers share: error wording, level checks,
exact timestamp conversion. No I/O, no state beyond a tiny day cache."""

from __future__ import annotations

import json
from datetime import date

from flightdesk.core.errors import ParseError

#: what a parser turns into a ParseError when a frame has the wrong shape
ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError)
INF = float("inf")
_DAYS: dict[str, int] = {}


def describe(exc: BaseException) -> str:
    """Say what was wrong with a frame, from the exception its parsing raised."""
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON ({exc.msg} at char {exc.pos})"
    if isinstance(exc, UnicodeDecodeError):
        return "frame is not UTF-8"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, IndexError):
        return "array shorter than expected"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return f"unexpected value ({type(exc).__name__}: {exc})"


def check_levels(levels: object) -> list:
    """Reject what would break the book: non-list levels, non-string or non-finite numbers,
    prices that are not positive, negative quantities."""
    if type(levels) is not list:
        raise ParseError(f"levels must be an array, got {type(levels).__name__}")
    for lv in levels:
        if (type(lv) is not list or type(lv[0]) is not str or type(lv[1]) is not str
                or not 0.0 < float(lv[0]) < INF or not 0.0 <= float(lv[1]) < INF):
            raise ParseError(f"bad book level {lv!r}")
    return levels


def iso_ns(s: object) -> int:
    """``"2021-04-17T16:43:37.075687Z"`` (any fraction up to ns) -> integer ns since epoch,
    exactly (no float round trip)."""
    if type(s) is not str or len(s) < 20:
        raise ParseError(f"bad ISO timestamp {s!r}")
    day = _DAYS.get(s[:10])
    if day is None:
        if len(_DAYS) > 64:
            _DAYS.clear()
        day = _DAYS[s[:10]] = (date.fromisoformat(s[:10]).toordinal() - 719163) * 86_400
    if s[10] != "T" or s[13] != ":" or s[16] != ":" or s[-1] != "Z":
        raise ParseError(f"bad ISO timestamp {s!r}")
    secs = day + int(s[11:13]) * 3600 + int(s[14:16]) * 60 + int(s[17:19])
    frac = s[20:-1] if s[19] == "." else ""
    return secs * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


def require_str(value: object, what: str) -> str:
    if type(value) is not str:
        raise ParseError(f"{what} must be a string, got {value!r}")
    return value


def quote(value: object) -> str:
    """A ticker price/size: a decimal string, or "" where the venue has none (an older
    feed version, a one-sided option book): ``None`` and ``""`` both give ``""``."""
    if value is None:
        return ""
    if type(value) is not str or (value and not float(value) < INF):
        raise ParseError(f"bad decimal {value!r}")
    return value
