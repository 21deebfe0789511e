"""Alpaca market data (stocks, stream v2), sans-I/O: trades, quotes, bars, and the auth flow.

Every frame is a JSON array of messages keyed by ``T``:

=========================  ================================================================
``success`` connected       the feed sends ``{"action": "auth", ...}`` on connect (feed.py)
``success`` authenticated   -> :class:`Outbound` subscribe (trades/quotes/bars of the
                            configured symbols), so nothing is subscribed before auth
``subscription``            :class:`Status` ``subscription`` (the server's list)
``error``                   :class:`Status` ``error`` (``code msg``), e.g. 402 auth failed
``q`` quote                 a one-level book: :class:`BookMsg` *snapshot* with the best bid
                            ``[bp, bs]`` and best ask ``[ap, as]`` (a side with price 0 is
                            empty), so every quote gives a ``quotes`` row and strategies see
                            stocks like any other book
``t`` trade                 :class:`TradeMsg`; Alpaca gives no aggressor side, so it is
                            inferred: at/above the last ask ``buy``, at/below the last bid
                            ``sell``, else above/below the mid, else the tick rule
``b``/``d``/``u`` bars      :class:`BarMsg` (minute, daily, updated minute bars)
=========================  ================================================================

Numbers are decoded as their JSON lexemes (``parse_float=str``) so the book keeps the
venue's spelling. Timestamps are RFC 3339 with up to nanoseconds. A locked or crossed
quote (normal across US exchanges) makes the BookKeeper discard that one-level book; the
next quote rebuilds it, so :meth:`resync` needs no action.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.events import (
    BarMsg,
    BookMsg,
    MarketEvent,
    Outbound,
    ResyncReason,
    Status,
    TradeMsg,
)
from flightdesk.core.market.instruments import Instrument
from flightdesk.core.market.venue import VenueProtocol
from flightdesk.plugins.venues.alpaca.instruments import parse_assets

__all__ = ["AlpacaProtocol", "rfc3339_ns"]

_decode = json.JSONDecoder(parse_float=str, parse_int=str).decode
_ERRORS = (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError,
           UnicodeDecodeError, OverflowError)
_INF = float("inf")
_BAR_INTERVAL = {"b": "1m", "u": "1m", "d": "1d"}
_DAYS: dict[str, int] = {}


def rfc3339_ns(s: object) -> int:
    """``"2021-02-22T15:51:45.335689322Z"`` (``Z`` or ``+00:00``) -> ns since the epoch."""
    if type(s) is not str or len(s) < 20 or s[10] != "T" or s[13] != ":" or s[16] != ":":
        raise ParseError(f"bad timestamp {s!r}")
    if s.endswith("+00:00"):
        s = s[:-6] + "Z"
    if s[-1] != "Z":
        raise ParseError(f"timestamp {s!r} is not UTC")
    day = _DAYS.get(s[:10])
    if day is None:
        if len(_DAYS) > 64:
            _DAYS.clear()
        day = _DAYS[s[:10]] = (date.fromisoformat(s[:10]).toordinal() - 719163) * 86_400
    secs = day + int(s[11:13]) * 3600 + int(s[14:16]) * 60 + int(s[17:19])
    frac = s[20:-1] if s[19] == "." else ""
    if frac and not frac.isdigit():
        raise ParseError(f"bad timestamp {s!r}")
    return secs * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)


def _num(value: object, what: str, positive: bool = False) -> str:
    if type(value) is not str:
        raise ParseError(f"{what} must be a number, got {value!r}")
    x = float(value)
    if not (0.0 < x < _INF if positive else 0.0 <= x < _INF):
        raise ParseError(f"{what} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
    return value


def _sym(msg: dict) -> str:
    s = msg["S"]
    if type(s) is not str or not s:
        raise ParseError(f"S must be a symbol, got {s!r}")
    return s


class AlpacaProtocol(VenueProtocol):
    """Alpaca stock market data v2 (see the module docstring)."""

    depth = None

    def __init__(self, name: str = "alpaca", symbols: list[str] | None = None,
                 channels: tuple[str, ...] = ("trades", "quotes", "bars")) -> None:
        super().__init__(name)
        self.symbols = list(symbols or [])
        self.channels = channels
        self.authenticated = False
        self._quotes: dict[str, tuple[float, float]] = {}  # symbol -> (bid, ask)
        self._last_px: dict[str, tuple[float, str]] = {}  # symbol -> (price, side)

    def subscribe_frame(self) -> str:
        return json.dumps({"action": "subscribe", **{c: self.symbols for c in self.channels}})

    # -- VenueProtocol ------------------------------------------------------------------
    def parse_instruments(self, body: str | bytes) -> list[Instrument]:
        return parse_assets(self.name, body)  # the /v2/assets answer

    def parse(self, frame: str | bytes, ts_recv: int) -> list[MarketEvent]:
        self.stats.frames += 1
        try:
            msgs = _decode(frame if isinstance(frame, str) else frame.decode("utf-8"))
            if type(msgs) is dict:
                msgs = [msgs]
            if type(msgs) is not list:
                raise ParseError(f"expected a JSON array, got {type(msgs).__name__}")
            out: list[MarketEvent] = []
            for msg in msgs:
                if type(msg) is not dict:
                    raise ParseError(f"message must be an object, got {msg!r}")
                handler = _HANDLERS.get(msg.get("T"))
                if handler is None:
                    self.stats.ignored += 1
                    self._count("unhandled")
                    continue
                out.extend(handler(self, msg, ts_recv))
            return out
        except ParseError as exc:
            raise self._fail(str(exc), frame) from None
        except _ERRORS as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}", frame) from None

    def resync(self, symbol: str, reason: ResyncReason) -> list[MarketEvent]:
        """Nothing to do: every quote is a whole (one-level) book."""
        return []

    def reset_connection(self) -> None:
        self.authenticated = False

    # -- handlers -----------------------------------------------------------------------
    def _quote(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        sym = _sym(msg)
        bp, bs = _num(msg["bp"], "bp"), _num(msg["bs"], "bs")
        ap, as_ = _num(msg["ap"], "ap"), _num(msg["as"], "as")
        self._quotes[sym] = (float(bp), float(ap))
        self._count("quote")
        bids = [[bp, bs]] if float(bp) > 0 and float(bs) > 0 else []
        asks = [[ap, as_]] if float(ap) > 0 and float(as_) > 0 else []
        return [BookMsg(self.name, sym, rfc3339_ns(msg["t"]), ts_recv, bids, asks,
                        snapshot=True)]

    def _trade(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        sym = _sym(msg)
        px = float(_num(msg["p"], "p", positive=True))
        qty = float(_num(msg["s"], "s"))
        side = self._infer_side(sym, px)
        self._count("trade")
        return [TradeMsg(self.name, sym, rfc3339_ns(msg["t"]), ts_recv, str(msg.get("i", "")),
                         px, qty, side)]

    def _infer_side(self, sym: str, px: float) -> str:
        bid, ask = self._quotes.get(sym, (0.0, 0.0))
        last = self._last_px.get(sym)
        if ask > 0 and px >= ask:
            side = "buy"
        elif bid > 0 and px <= bid:
            side = "sell"
        elif bid > 0 and ask > 0 and px != (bid + ask) / 2:
            side = "buy" if px > (bid + ask) / 2 else "sell"
        elif last is not None and px != last[0]:
            side = "buy" if px > last[0] else "sell"
        else:
            side = last[1] if last is not None else "buy"
        self._last_px[sym] = (px, side)
        return side

    def _bar(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        self._count("bar")
        n = msg.get("n", "0")
        return [BarMsg(self.name, _sym(msg), _BAR_INTERVAL[msg["T"]], rfc3339_ns(msg["t"]),
                       ts_recv, float(_num(msg["o"], "o")), float(_num(msg["h"], "h")),
                       float(_num(msg["l"], "l")), float(_num(msg["c"], "c")),
                       float(_num(msg["v"], "v")), int(n) if type(n) is str else 0)]

    def _success(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        text = str(msg.get("msg", ""))
        self._count(text or "success")
        out: list[MarketEvent] = [Status(self.name, "success", text)]
        if text == "authenticated":
            self.authenticated = True
            if self.symbols:
                out.append(Outbound(self.name, self.subscribe_frame()))
        elif text == "connected":
            self.authenticated = False
        return out

    def _subscription(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        self._count("subscription")
        lists = {k: v for k, v in msg.items() if k != "T" and type(v) is list}
        return [Status(self.name, "subscription", json.dumps(lists, sort_keys=True))]

    def _error(self, msg: dict, ts_recv: int) -> list[MarketEvent]:
        self._count("error")
        return [Status(self.name, "error", f"{msg.get('code', '')} {msg.get('msg', '')}".strip())]

    # -- helpers ------------------------------------------------------------------------

_HANDLERS: dict[Any, Callable[[AlpacaProtocol, dict, int], list[MarketEvent]]] = {
    "q": AlpacaProtocol._quote,
    "t": AlpacaProtocol._trade,
    "b": AlpacaProtocol._bar,
    "d": AlpacaProtocol._bar,
    "u": AlpacaProtocol._bar,
    "success": AlpacaProtocol._success,
    "subscription": AlpacaProtocol._subscription,
    "error": AlpacaProtocol._error,
}
