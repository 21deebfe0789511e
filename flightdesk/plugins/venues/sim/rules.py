"""The sim exchange's trading rules: Binance's API errors, request parameters and symbol filters.

Amounts are integer counts of 1e-8 (like :mod:`.market`), so a filter check or a fill never
rounds a float. :class:`ApiError` is the Binance error a request is answered with (HTTP
status, Binance code, message); it never leaves the sim (the REST layer turns it into the
``{"code": ..., "msg": ...}`` body).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flightdesk.plugins.venues.sim.ladder import E8, fmt8

_DECIMAL = re.compile(r"^([0-9]{1,20})(\.([0-9]{1,20}))?$")
_LEGAL = "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'"


class ApiError(Exception):
    """A Binance error answer: ``status`` (HTTP), ``code`` (Binance) and ``msg``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.status, self.code, self.msg = status, code, msg

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> ApiError:
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def units(params: dict[str, str], name: str, required: bool = True) -> int | None:
    """Parameter ``name`` (a decimal string) as 1e-8 units; None if absent and optional."""
    text = params.get(name)
    if text is None or text == "":
        if required:
            raise missing(name)
        return None
    m = _DECIMAL.match(text)
    if m is None:
        raise ApiError(
            400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {_LEGAL}."
        )
    frac = (m.group(3) or "").rstrip("0")
    if len(frac) > 8:
        raise ApiError(400, -1111, f"Parameter '{name}' has too much precision.")
    return int(m.group(1)) * E8 + int(frac.ljust(8, "0") or 0)


def integer(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    """Parameter ``name`` as an integer (``default`` if absent)."""
    text = params.get(name)
    if text is None or text == "":
        return default
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^-?[0-9]{{1,19}}$'.",
        )
    return int(text)


def choice(
    params: dict[str, str], name: str, allowed: tuple[str, ...], code: int, what: str
) -> str:
    """Parameter ``name``, which must be one of ``allowed`` (else Binance's ``code``)."""
    value = params.get(name)
    if not value:
        raise missing(name)
    if value not in allowed:
        raise ApiError(400, code, f"Invalid {what}.")
    return value


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol's assets and filters, in 1e-8 units (``PRICE_FILTER``, ``LOT_SIZE``,
    ``MARKET_LOT_SIZE``, ``NOTIONAL``)."""

    symbol: str
    base: str
    quote: str
    tick: int
    step: int
    min_qty: int
    max_qty: int
    market_max_qty: int
    min_price: int = 1
    max_price: int = 1_000_000 * E8
    min_notional: int = 5 * E8
    max_notional: int = 9_000_000 * E8

    def check_price(self, price: int) -> None:
        if not self.min_price <= price <= self.max_price or price % self.tick:
            raise ApiError(400, -1013, "Filter failure: PRICE_FILTER")

    def check_qty(self, qty: int, market: bool) -> None:
        top = self.market_max_qty if market else self.max_qty
        if not self.min_qty <= qty <= top or qty % self.step:
            raise ApiError(400, -1013, f"Filter failure: {'MARKET_' if market else ''}LOT_SIZE")

    def check_notional(self, notional: int) -> None:
        if not self.min_notional <= notional <= self.max_notional:
            raise ApiError(400, -1013, "Filter failure: NOTIONAL")

    def filters(self) -> list[dict[str, Any]]:
        """The ``filters`` list of this symbol in ``GET /api/v3/exchangeInfo``."""
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt8(self.min_price),
                "maxPrice": fmt8(self.max_price),
                "tickSize": fmt8(self.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt8(self.min_qty),
                "maxQty": fmt8(self.max_qty),
                "stepSize": fmt8(self.step),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": fmt8(self.market_max_qty),
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt8(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": fmt8(self.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ]


def split_symbol(symbol: str) -> tuple[str, str]:
    """The base and quote assets of a symbol by its quote suffix (``BTCUSDT`` -> BTC, USDT)."""
    for quote in ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "EUR", "BNB"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell the quote asset of symbol {symbol!r}")


def default_rules(symbol: str, tick_units: int, lot_units: int, **overrides: Any) -> SymbolRules:
    """Rules matching the sim book's own grid: its tick and lot, at least 5 quote notional."""
    base, quote = split_symbol(symbol)
    values: dict[str, Any] = {
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "tick": tick_units,
        "step": lot_units,
        "min_qty": lot_units,
        "max_qty": 9000 * E8,
        "market_max_qty": 100 * E8 if base == "BTC" else 5000 * E8,
    }
    for key, value in overrides.items():
        if key not in SymbolRules.__dataclass_fields__:
            raise ValueError(f"unknown rule {key!r} for {symbol} (known: {sorted(values)})")
        values[key] = value
    return SymbolRules(**values)
