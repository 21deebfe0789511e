"""Instrument rules: tick size, lot step, minimum quantity and notional, per (venue, symbol).

An :class:`Instrument` holds what a venue accepts for one symbol; 0 for a rule means the
venue has none (``max_qty`` None: no maximum). The rounding helpers work in integer
multiples of the step, in :class:`~decimal.Decimal`, and give back the float nearest the
exact decimal, so ``3 * 0.1`` comes out as ``0.3``, never ``0.30000000000000004``:

* :meth:`Instrument.round_qty` rounds toward zero — never more than was asked. A value
  within ``SNAP`` (a billionth) of a step above is float noise of an exact multiple
  (``0.4999999999999999`` for ``0.5``) and counts as that multiple;
* :meth:`Instrument.round_price` rounds a limit price to the passive side: a buy down, a
  sell up (a price already on the grid, give or take the same noise, stays).

:class:`InstrumentRegistry` keys instruments by (venue, symbol) and merges where they come
from: the venue at start-up (or the cache of what it said last time) under the config's
``[venues.NAME] instruments`` table, key by key. An unknown instrument has no rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from functools import lru_cache
from typing import Any

__all__ = ["RULES", "SNAP", "Instrument", "InstrumentRegistry", "on_grid", "round_to_step"]

#: a value this close (in steps) below a multiple of the step is that multiple
SNAP = Decimal("1e-9")
#: the rule fields of an instrument (what config tables, caches and parsers set)
RULES = ("tick_size", "lot_step", "min_qty", "min_notional", "max_qty")
Key = tuple[str, str]


@lru_cache(maxsize=1024)
def _dec(value: float) -> Decimal:
    """The shortest decimal that reads back as ``value`` (``0.1`` -> ``Decimal('0.1')``)."""
    return Decimal(repr(value))


def round_to_step(value: float, step: float, up: bool = False) -> float:
    """``value`` as a whole number of ``step``: rounded down (toward -inf), or up when
    ``up``; within :data:`SNAP` of a multiple it is that multiple. A step of 0 leaves
    ``value`` as it is; a value that is not finite comes back as it is."""
    if not step or not math.isfinite(value):
        return value
    d = _dec(step)
    ratio = _dec(value) / d
    steps = ((ratio - SNAP).to_integral_value(ROUND_CEILING) if up
             else (ratio + SNAP).to_integral_value(ROUND_FLOOR))
    return float(steps * d)


def on_grid(value: float, step: float) -> bool:
    """Whether ``value`` is a whole number of ``step`` (give or take float noise)."""
    return not step or round_to_step(value, step) == round_to_step(value, step, up=True)


@dataclass(frozen=True, slots=True)
class Instrument:
    """What a venue accepts for one symbol (see the module docstring)."""

    venue: str
    symbol: str
    tick_size: float = 0.0
    lot_step: float = 0.0
    min_qty: float = 0.0
    min_notional: float = 0.0
    max_qty: float | None = None

    def round_qty(self, qty: float) -> float:
        """``qty`` (>= 0) rounded toward zero to the lot step (0 when under one step)."""
        if qty <= 0:
            return 0.0
        return round_to_step(qty, self.lot_step)

    def round_price(self, price: float, buy: bool) -> float:
        """A limit price on the tick grid, on the passive side: a buy down, a sell up."""
        return round_to_step(price, self.tick_size, up=not buy)

    def rules(self) -> dict[str, float]:
        """The rules that are set (for status, logs and the cache)."""
        out = {name: getattr(self, name) for name in RULES}
        return {k: v for k, v in out.items() if v}

    @classmethod
    def from_rules(cls, venue: str, symbol: str, rules: Mapping[str, Any]) -> Instrument:
        """An instrument from a mapping of rule name to number (unknown names ignored)."""
        return cls(venue, symbol, **{k: float(rules[k]) for k in RULES if rules.get(k)})


class InstrumentRegistry:
    """Instruments by (venue, symbol), merged from their sources (see the module
    docstring): ``venue`` (fetched at start-up, or the cache) under ``config`` overrides."""

    def __init__(self, overrides: Mapping[str, Mapping[str, Mapping[str, float]]]
                 | None = None) -> None:
        #: venue -> symbol -> the rule keys the config sets
        self.overrides = {v: {s: dict(r) for s, r in t.items()}
                          for v, t in (overrides or {}).items()}
        self.from_venue: dict[Key, Instrument] = {}
        #: venue name -> where its instruments came from: "venue", "cache" or "config"
        self.sources: dict[str, str] = {v: "config" for v in self.overrides}
        #: venue name -> why its rules could not be fetched at start-up
        self.fetch_errors: dict[str, str] = {}
        self._merged: dict[Key, Instrument] = {}
        self._merge()

    def get(self, venue: str, symbol: str) -> Instrument | None:
        """The rules of (venue, symbol), None when it has none."""
        return self._merged.get((venue, symbol))

    def __len__(self) -> int:
        return len(self._merged)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._merged.values())

    def set_venue(self, venue: str, instruments: Iterable[Instrument], source: str) -> None:
        """Replace what ``venue`` itself says (``source``: "venue" or "cache")."""
        self.from_venue = {k: i for k, i in self.from_venue.items() if k[0] != venue}
        self.from_venue.update({(venue, i.symbol): i for i in instruments})
        self.sources[venue] = source + ("+config" if venue in self.overrides else "")
        self._merge()

    def venue_instruments(self, venue: str) -> list[Instrument]:
        """What ``venue`` itself said (not the config overrides): what gets cached."""
        return [i for (v, _), i in self.from_venue.items() if v == venue]

    def _merge(self) -> None:
        merged = dict(self.from_venue)
        for venue, table in self.overrides.items():
            for symbol, rules in table.items():
                base = merged.get((venue, symbol)) or Instrument(venue, symbol)
                merged[(venue, symbol)] = Instrument.from_rules(venue, symbol,
                                                                {**base.rules(), **rules})
        self._merged = merged

    def summary(self) -> dict[str, Any]:
        """For ``status``: per venue, where its rules came from, how many instruments, and
        why the venue could not be asked (``fetch_error``) when it could not."""
        counts: dict[str, int] = {}
        for venue, _ in self._merged:
            counts[venue] = counts.get(venue, 0) + 1
        out: dict[str, Any] = {v: {"source": self.sources.get(v, ""), "instruments": n}
                               for v, n in sorted(counts.items())}
        for venue, why in self.fetch_errors.items():
            out.setdefault(venue, {"source": "", "instruments": 0})["fetch_error"] = why
        return out
