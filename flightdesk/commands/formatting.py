"""Values for people: UTC times, prices at the instrument's precision, no float noise.

Rows on the wire keep integer-ns times and float64 prices (machines want those; ``--json``
prints them as they are). On a terminal, ``1796686845214416913`` is a UTC time and
``60000.895000000004`` is ``60000.90`` for an instrument quoted in cents. Where prices
come from: the desk's ``status["instrument_rules"]`` (the venue's tick and lot steps, or
the config's); an instrument without rules, or a desk that does not say, gets the shortest
form of the float that carries no noise (ten significant digits at most). Amounts of money
print in cents, and ratios, bps and features to six significant digits.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

__all__ = ["MONEY_COLUMNS", "PRICE_COLUMNS", "QTY_COLUMNS", "TIME_COLUMNS", "Precision",
           "decimals_of", "iso_utc", "money", "plain"]

#: columns holding a price on the instrument's tick grid
PRICE_COLUMNS = frozenset({"price", "bid_px", "ask_px", "limit_px", "stop_px", "last_px",
                           "open", "high", "low", "close", "open_24h", "high_24h", "low_24h",
                           "bid", "ask"})
#: prices between two ticks (extra digits): ``mid`` is on a half tick, the others anywhere
DERIVED_PRICES = {"mid": 1, "microprice": 2, "vwap": 2, "avg_price": 2}
#: columns holding a quantity on the instrument's lot grid
QTY_COLUMNS = frozenset({"qty", "bid_qty", "ask_qty", "filled_qty"})
#: amounts of quote currency: cents (sub-cent amounts to three significant digits)
MONEY_COLUMNS = frozenset({"realized_pnl", "unrealized_pnl", "pnl", "fee", "fees", "cash",
                           "gross_exposure", "net_exposure", "quote_volume",
                           "quote_volume_24h"})
#: digits kept of any other float (ratios, bps, features): enough to read, none of the noise
OTHER_DIGITS = 6
#: integer-ns timestamp columns
TIME_COLUMNS = frozenset({"ts", "ts_event", "ts_recv", "open_time", "started", "first_ts",
                          "last_ts"})


def iso_utc(ns: int) -> str:
    """``2026-12-07T23:40:45.214416Z``: an integer-ns epoch time in UTC (microseconds)."""
    secs, rem = divmod(int(ns), 1_000_000_000)
    when = dt.datetime.fromtimestamp(secs, dt.timezone.utc).replace(microsecond=rem // 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def plain(x: float, digits: int = 10) -> str:
    """The shortest text of ``x`` without float noise (``digits`` significant digits at
    most): ``3000.015`` for ``3000.0150000000003``, ``1e-06`` as is, ``nan`` for a
    missing value."""
    if not math.isfinite(x):
        return "nan" if x != x else ("inf" if x > 0 else "-inf")
    short = repr(x)
    trimmed = format(x, f".{digits}g")
    return short if len(short) <= len(trimmed) else trimmed


def money(x: float) -> str:
    """An amount of quote currency: ``-1354.85``; under a cent, three digits (``0.000126``)."""
    if not math.isfinite(x):
        return plain(x)
    return f"{x:.2f}" if x == 0 or abs(x) >= 0.01 else format(x, ".3g")


def decimals_of(step: float) -> int:
    """Digits after the point that ``step`` needs: 0.01 -> 2, 0.25 -> 2, 1e-05 -> 5, 5 -> 0."""
    if not step or not math.isfinite(step):
        return -1
    exponent = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


class Precision:
    """Decimals per (venue, symbol) for prices and quantities, from the desk's
    ``instrument_rules`` (``{"venue:SYMBOL": {"tick_size": 0.01, "lot_step": 1e-06}}``)."""

    def __init__(self, rules: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.price: dict[tuple[str, str], int] = {}
        self.qty: dict[tuple[str, str], int] = {}
        for key, table in (rules or {}).items():
            venue, _, symbol = key.partition(":")
            for out, rule in ((self.price, "tick_size"), (self.qty, "lot_step")):
                places = decimals_of(float(table.get(rule) or 0.0))
                if places >= 0:
                    out[(venue, symbol)] = places

    def cell(self, column: str, value: Any, venue: str = "", symbol: str = "") -> str:
        """``value`` of ``column`` as text (times as UTC, prices and quantities at the
        instrument's precision, other floats without noise, None as empty)."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int) and column in TIME_COLUMNS:
            return iso_utc(value) if value > 0 else ""
        if isinstance(value, float):
            return self.number(column, value, venue, symbol)
        return str(value)

    def number(self, column: str, value: float, venue: str = "", symbol: str = "") -> str:
        places = -1
        key = (venue, symbol)
        if column in PRICE_COLUMNS and key in self.price:
            places = self.price[key]
        elif column in DERIVED_PRICES and key in self.price:
            places = self.price[key] + DERIVED_PRICES[column]
        elif column in QTY_COLUMNS and key in self.qty:
            places = self.qty[key]
        elif column in MONEY_COLUMNS:
            return money(value)
        elif column not in PRICE_COLUMNS | QTY_COLUMNS | DERIVED_PRICES.keys():
            return plain(value, OTHER_DIGITS)
        if places < 0 or not math.isfinite(value):
            return plain(value)
        return f"{value:.{places}f}"
