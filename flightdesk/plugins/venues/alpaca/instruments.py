"""Alpaca assets -> :class:`Instrument` rules (sans-I/O: JSON in, values out).

``GET /v2/assets`` (a list) or ``GET /v2/assets/{symbol}`` (one object) on the trading API
describes each asset; crypto assets carry ``min_order_size``, ``min_trade_increment`` and
``price_increment`` (strings or numbers), which become ``min_qty``, ``lot_step`` and
``tick_size``. An asset without them has no such rule. Alpaca states no minimum notional
in the asset, so none is set here (the config can add one). A malformed number raises
:class:`ParseError` naming the venue, the symbol and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from typing import Any

from flightdesk.core.errors import ParseError
from flightdesk.core.market.instruments import Instrument

__all__ = ["FIELDS", "parse_assets"]

#: Alpaca asset field -> instrument rule
FIELDS = {"min_order_size": "min_qty", "min_trade_increment": "lot_step",
          "price_increment": "tick_size"}


def parse_assets(venue: str, body: str | bytes,
                 symbols: Collection[str] | None = None) -> list[Instrument]:
    """The instruments of an assets body (only ``symbols`` when given)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"{venue}: assets answer is not JSON: {exc}", venue=venue) from None
    assets = [doc] if isinstance(doc, dict) else doc
    if not isinstance(assets, list):
        raise ParseError(f"{venue}: assets answer must be a list or an object", venue=venue)
    wanted = {s.upper() for s in symbols} if symbols is not None else None
    out = []
    for asset in assets:
        name = asset.get("symbol") if isinstance(asset, dict) else None
        if not isinstance(name, str):
            raise ParseError(f"{venue}: asset without a 'symbol': {str(asset)[:80]}",
                             venue=venue)
        if wanted is None or name.upper() in wanted:
            out.append(_instrument(venue, name, asset))
    return out


def _instrument(venue: str, symbol: str, asset: dict[str, Any]) -> Instrument:
    rules: dict[str, float] = {}
    for field, rule in FIELDS.items():
        raw = asset.get(field)
        if raw is None or raw == "":
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not (math.isfinite(value) and value >= 0) or isinstance(raw, bool):
            raise ParseError(f"{venue}: asset {symbol} {field} must be a number >= 0, "
                             f"got {raw!r}", venue=venue)
        rules[rule] = value
    return Instrument.from_rules(venue, symbol, rules)
