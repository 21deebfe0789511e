"""Binance ``exchangeInfo`` -> :class:`Instrument` rules (sans-I/O: JSON in, values out).

``GET /api/v3/exchangeInfo`` (spot; ``/fapi/v1/`` and ``/dapi/v1/`` for futures) lists each
symbol with ``filters``; the ones read here:

* ``PRICE_FILTER.tickSize`` -> ``tick_size``;
* ``LOT_SIZE.stepSize``, ``minQty``, ``maxQty`` -> ``lot_step``, ``min_qty``, ``max_qty``;
* ``MARKET_LOT_SIZE`` (the same keys, for market orders): the stricter of the two is kept
  — the larger step and minimum, the smaller maximum — since one instrument serves both
  order types (a 0 in it means "no rule", as Binance writes it);
* ``MIN_NOTIONAL.minNotional`` (spot, older), ``NOTIONAL.minNotional`` (spot) or
  ``MIN_NOTIONAL.notional`` (USD-M futures) -> ``min_notional``.

Venue numbers are strings (``"0.01000000"``); a missing or malformed one raises
:class:`ParseError` naming the venue, the symbol and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.instruments import Instrument

__all__ = ["INFO_PATHS", "parse_exchange_info"]

#: market -> the exchangeInfo path under the market's REST base
INFO_PATHS = {"spot": "/api/v3/exchangeInfo", "usdm": "/fapi/v1/exchangeInfo",
              "coinm": "/dapi/v1/exchangeInfo"}


def parse_exchange_info(venue: str, body: str | bytes,
                        symbols: Collection[str] | None = None) -> list[Instrument]:
    """The instruments of an exchangeInfo body (only ``symbols`` when given)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"{venue}: exchangeInfo is not JSON: {exc}", venue=venue) from None
    entries = doc.get("symbols") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ParseError(f"{venue}: exchangeInfo has no 'symbols' list", venue=venue)
    wanted = {s.upper() for s in symbols} if symbols is not None else None
    out = []
    for entry in entries:
        name = entry.get("symbol") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            raise ParseError(f"{venue}: exchangeInfo symbol entry without a 'symbol': "
                             f"{str(entry)[:80]}", venue=venue)
        if wanted is None or name in wanted:
            out.append(_instrument(venue, name, entry.get("filters")))
    return out


def _instrument(venue: str, symbol: str, filters: Any) -> Instrument:
    if not isinstance(filters, list):
        raise ParseError(f"{venue}: exchangeInfo {symbol} has no 'filters' list", venue=venue)
    by_type = {f.get("filterType"): f for f in filters if isinstance(f, dict)}

    def num(kind: str, key: str) -> float:
        return _number(venue, symbol, by_type, kind, key)

    step, min_qty, max_qty = num("LOT_SIZE", "stepSize"), num("LOT_SIZE", "minQty"), \
        num("LOT_SIZE", "maxQty")
    if "MARKET_LOT_SIZE" in by_type:
        step = max(step, num("MARKET_LOT_SIZE", "stepSize"))
        min_qty = max(min_qty, num("MARKET_LOT_SIZE", "minQty"))
        market_max = num("MARKET_LOT_SIZE", "maxQty")
        if market_max and (not max_qty or market_max < max_qty):
            max_qty = market_max
    notional = 0.0
    for kind, key in (("NOTIONAL", "minNotional"), ("MIN_NOTIONAL", "minNotional"),
                      ("MIN_NOTIONAL", "notional")):
        if key in by_type.get(kind, {}):
            notional = max(notional, num(kind, key))
    return Instrument(venue, symbol, tick_size=num("PRICE_FILTER", "tickSize"),
                      lot_step=step, min_qty=min_qty, min_notional=notional,
                      max_qty=max_qty or None)


def _number(venue: str, symbol: str, by_type: dict[Any, Any], kind: str, key: str) -> float:
    """A filter's number; 0 when the filter is absent (no such rule)."""
    if kind not in by_type:
        return 0.0
    raw = by_type[kind].get(key)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ParseError(f"{venue}: exchangeInfo {symbol} {kind}.{key} must be a number "
                         f">= 0, got {raw!r}", venue=venue)
    return value
