"""Synthetic MEXC sessions (protobuf and legacy JSON) built with the wire-format writer.

MEXC publishes no recording we can ship, so tests generate a seeded session: a book that
random-walks, one push per step with ``fromVersion``/``toVersion`` counting level changes,
and the venue's REST snapshot at any version (``snapshot_at``).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from flightdesk.plugins.venues.mexc.proto import encode

CHANNEL = "spot@public.aggre.depth.v3.api.pb@100ms@{s}"


def level(price: str, qty: str) -> bytes:
    return encode((1, price), (2, qty))


def depth_push(symbol: str, bids, asks, first: int, last: int, send_ms: int = 1_700_000_000_000
               ) -> bytes:
    body = encode(*[(1, level(p, q)) for p, q in asks], *[(2, level(p, q)) for p, q in bids],
                  (3, "spot@public.aggre.depth.v3.api.pb@100ms"), (4, str(first)), (5, str(last)))
    return encode((1, CHANNEL.format(s=symbol)), (3, symbol), (6, send_ms), (313, body))


def deals_push(symbol: str, deals, send_ms: int = 1_700_000_000_000) -> bytes:
    items = [encode((1, p), (2, q), (3, side), (4, ms), (5, tid)) for p, q, side, ms, tid in deals]
    body = encode(*[(1, i) for i in items], (2, "spot@public.aggre.deals.v3.api.pb@100ms"))
    return encode((1, f"spot@public.aggre.deals.v3.api.pb@100ms@{symbol}"), (3, symbol),
                  (6, send_ms), (314, body))


def ticker_push(symbol: str, bp: str, bq: str, ap: str, aq: str) -> bytes:
    body = encode((1, bp), (2, bq), (3, ap), (4, aq))
    return encode((1, f"spot@public.aggre.bookTicker.v3.api.pb@100ms@{symbol}"), (3, symbol),
                  (315, body))


@dataclass
class Session:
    """A seeded random-walk book and the pushes that describe it."""

    symbol: str = "BTCUSDT"
    seed: int = 1
    steps: int = 300
    legacy: bool = False
    frames: list = field(default_factory=list)
    books: list = field(default_factory=list)  # (version, bids, asks) after each push

    def __post_init__(self) -> None:
        rng = random.Random(self.seed)
        bids = {f"{100 - i * 0.5:.2f}": f"{rng.randint(1, 9)}.000" for i in range(1, 11)}
        asks = {f"{100 + i * 0.5:.2f}": f"{rng.randint(1, 9)}.000" for i in range(1, 11)}
        version = 1000
        self.books.append((version, dict(bids), dict(asks)))
        for step in range(self.steps):
            changes_b, changes_a = [], []
            for _ in range(rng.randint(1, 4)):
                side, changes = (bids, changes_b) if rng.random() < 0.5 else (asks, changes_a)
                offset = rng.randint(1, 14) * 0.5
                px = f"{(100 - offset) if side is bids else (100 + offset):.2f}"
                qty = "0" if rng.random() < 0.3 else f"{rng.randint(1, 50) / 10:.3f}"
                changes.append([px, qty])
                if qty == "0":
                    side.pop(px, None)
                else:
                    side[px] = qty
            first = version + 1
            version += 1 if self.legacy else len(changes_b) + len(changes_a)
            self.frames.append(self._frame(changes_b, changes_a, first, version, step))
            self.books.append((version, dict(bids), dict(asks)))

    def _frame(self, bids, asks, first: int, last: int, step: int):
        if not self.legacy:
            return depth_push(self.symbol, bids, asks, first, last, 1_700_000_000_000 + step)
        return json.dumps({"c": f"spot@public.increase.depth.v3.api@{self.symbol}",
                           "d": {"asks": [{"p": p, "v": q} for p, q in asks],
                                 "bids": [{"p": p, "v": q} for p, q in bids],
                                 "e": "spot@public.increase.depth.v3.api", "r": str(last)},
                           "s": self.symbol, "t": 1_700_000_000_000 + step})

    def snapshot_at(self, index: int) -> str:
        """The REST depth answer holding the book after ``index`` pushes."""
        version, bids, asks = self.books[index]
        return json.dumps({"lastUpdateId": version,
                           "bids": [[p, q] for p, q in bids.items()],
                           "asks": [[p, q] for p, q in asks.items()]})

    def final(self) -> tuple[dict, dict]:
        _, bids, asks = self.books[-1]
        return bids, asks
