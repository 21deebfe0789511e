"""Order matching of the sim exchange against its own :class:`SimMarket` book.

* A MARKET order, and the marketable part of a LIMIT order, walks the book level by level
  (one fill per level, taker commission). LIMIT_MAKER refuses to take (-2010); FOK expires
  unfilled unless the whole quantity is there; IOC expires what it could not take; GTC rests.
* A resting order fills as a maker at its own price when the market's own trades print
  through it (a buy trade at or above a resting sell, a sell trade at or below a resting
  buy), up to the printed quantity, or when the market's opposite quotes move through it.
* The account's orders do not move the public book (the feed stays the seeded market), but
  the account remembers what it took at each level until that level's quantity changes, so
  the same liquidity is never filled twice.

Every change is reported to ``publish`` as Binance user-data events (``executionReport``,
then one ``outboundAccountPosition``). Everything here runs on the sim's event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flightdesk.plugins.venues.sim.account import Account, Fill, Order, notional
from flightdesk.plugins.venues.sim.ladder import E8
from flightdesk.plugins.venues.sim.market import SimMarket
from flightdesk.plugins.venues.sim.reports import account_position, execution_report
from flightdesk.plugins.venues.sim.rules import ApiError, SymbolRules

Publish = Callable[[dict[str, Any]], None]
_INSUFFICIENT = "Account has insufficient balance for requested action."


@dataclass(frozen=True, slots=True)
class NewOrder:
    """A validated ``POST /api/v3/order`` request (amounts in 1e-8 units)."""

    symbol: str
    side: str
    type: str
    tif: str
    qty: int
    price: int
    quote_qty: int
    client_id: str


class SimOrders:
    """The account's orders against the sim market: placing, canceling, maker fills."""

    def __init__(
        self, market: SimMarket, rules: dict[str, SymbolRules], account: Account, publish: Publish
    ) -> None:
        self.market, self.rules, self.account, self.publish = market, rules, account, publish
        self.stats = {"orders": 0, "fills": 0, "rejections": 0, "cancels": 0, "maker_fills": 0}
        self._next_id = 1
        self._resting: dict[int, Order] = {}  # working orders by id
        self._taken: dict[tuple[str, bool, int], tuple[int, int]] = {}  # (qty seen, taken)

    # -- placing ----------------------------------------------------------------------------
    def place(self, req: NewOrder, now: int, test: bool = False) -> tuple[Order, list[Fill]]:
        """Validate and execute ``req``; ``test`` validates only. Raises :class:`ApiError`."""
        try:
            return self._place(req, now, test)
        except ApiError:
            self.stats["rejections"] += 1
            raise

    def _place(self, req: NewOrder, now: int, test: bool) -> tuple[Order, list[Fill]]:
        rules = self.rules[req.symbol]
        self._check_filters(req, rules)
        if any(o.client_id == req.client_id and o.open for o in self.account.orders.values()):
            raise ApiError(400, -2010, "Duplicate order sent.")
        takes = self._walk(req)
        taken = sum(q for _, _, q in takes)
        cost = sum(p * q // E8 for _, p, q in takes)
        if req.type == "LIMIT_MAKER" and takes:
            raise ApiError(400, -2010, "Order would immediately match and take.")
        if req.type == "MARKET":
            rules.check_notional(req.quote_qty or cost)
        if req.side == "BUY":
            need = cost if req.type == "MARKET" else notional(req.price, req.qty)
        else:
            need = req.qty or taken
        held = self.account.balance(rules.quote if req.side == "BUY" else rules.base)
        if held.free < need:
            raise ApiError(400, -2010, _INSUFFICIENT)
        order = Order(
            req.symbol,
            0 if test else self._next_id,
            req.client_id,
            req.side,
            req.type,
            req.tif,
            req.price,
            req.qty,
            req.quote_qty,
            now,
            now,
        )
        if test:
            return order, []
        self._next_id += 1
        self.stats["orders"] += 1
        self.account.orders[order.order_id] = order
        if req.type != "MARKET":
            self.account.lock(order, rules, need)
        self._report(order, "NEW", None, now)
        if req.tif == "FOK" and taken < req.qty:
            takes = []
        fills = [self._fill(order, rules, tick, px, q, False, now) for tick, px, q in takes]
        self._settle(order, rules, now)
        self._positions(rules)
        return order, fills

    def _check_filters(self, req: NewOrder, rules: SymbolRules) -> None:
        if req.type == "MARKET":
            if req.qty:
                rules.check_qty(req.qty, market=True)
            return
        rules.check_price(req.price)
        rules.check_qty(req.qty, market=False)
        rules.check_notional(req.price * req.qty // E8)

    def _walk(self, req: NewOrder) -> list[tuple[int, int, int]]:
        """The ``(tick, price, qty)`` an order would take from the book now, best first."""
        buy, out = req.side == "BUY", []
        left, budget = req.qty, req.quote_qty
        step = self.rules[req.symbol].step
        for tick, px, qty in self.market.side_levels(req.symbol, bids=not buy):
            if req.type != "MARKET" and (px > req.price if buy else px < req.price):
                break
            have = qty - self._used(req.symbol, not buy, tick, qty)
            if req.quote_qty and not req.qty:  # a MARKET order by quote amount
                q = min(have, budget * E8 // px // step * step)
                budget -= px * q // E8
            else:
                q = min(have, left)
                left -= q
            if q > 0:
                out.append((tick, px, q))
            if (left if req.qty else budget * E8 // px // step) <= 0:
                break
        return out

    def _used(self, symbol: str, bids: bool, tick: int, qty: int) -> int:
        """What the account already took at a level, while the level still has ``qty``."""
        seen = self._taken.get((symbol, bids, tick))
        return seen[1] if seen is not None and seen[0] == qty else 0

    def _take(self, symbol: str, bids: bool, tick: int, q: int) -> None:
        qty = self.market.level_qty(symbol, bids, tick)
        self._taken[(symbol, bids, tick)] = (qty, self._used(symbol, bids, tick, qty) + q)
        if len(self._taken) > 10_000:
            self._taken.clear()

    def _fill(
        self,
        order: Order,
        rules: SymbolRules,
        tick: int | None,
        px: int,
        q: int,
        maker: bool,
        now: int,
    ) -> Fill:
        if tick is not None:
            self._take(order.symbol, not order.buy, tick, q)
        fill = self.account.fill(order, rules, px, q, maker, now)
        self.stats["fills"] += 1
        self.stats["maker_fills"] += maker
        self._report(order, "TRADE", fill, now)
        return fill

    def _settle(self, order: Order, rules: SymbolRules, now: int) -> None:
        """After the taking: rest a GTC remainder, expire what else is left."""
        done = order.qty and order.executed >= order.qty
        if order.type == "MARKET":
            order.qty = order.qty or order.executed
            if order.executed and order.executed >= order.qty:
                order.status = "FILLED"
            else:
                self._end(order, rules, "EXPIRED", now)
        elif done:
            self.account.release(order, rules)
        elif order.tif == "GTC":
            order.working = True
            self._resting[order.order_id] = order
        else:
            self._end(order, rules, "EXPIRED", now)

    def _end(
        self, order: Order, rules: SymbolRules, status: str, now: int, cancel_id: str = ""
    ) -> None:
        order.status, order.working, order.update_time = status, False, now
        self._resting.pop(order.order_id, None)
        self.account.release(order, rules)
        self._report(order, status, None, now, cancel_id)

    # -- canceling and looking up ------------------------------------------------------------
    def find(self, symbol: str, order_id: int | None, client_id: str | None) -> Order | None:
        if order_id is not None:
            order = self.account.orders.get(order_id)
            return order if order is not None and order.symbol == symbol else None
        for order in reversed(self.account.orders.values()):
            if order.symbol == symbol and order.client_id == client_id:
                return order
        return None

    def cancel(self, order: Order, now: int, cancel_id: str) -> Order:
        """Cancel an open order (-2011 if it is not open)."""
        if not order.open:
            self.stats["rejections"] += 1
            raise ApiError(400, -2011, "Unknown order sent.")
        self.stats["cancels"] += 1
        self._end(order, self.rules[order.symbol], "CANCELED", now, cancel_id)
        self._positions(self.rules[order.symbol])
        return order

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return [o for o in self.account.orders.values() if o.open and symbol in (None, o.symbol)]

    # -- maker fills from the market ---------------------------------------------------------
    def on_market(self, msgs: Iterable[tuple[str, str]], now: int) -> None:
        """Fill resting orders against the market's trades in ``msgs`` and its quotes."""
        if not self._resting:
            return
        symbols = {o.symbol for o in self._resting.values()}
        for stream, text in msgs:
            if stream.endswith("@trade") and (sym := stream[:-6].upper()) in symbols:
                trade = json.loads(text)
                px, qty = int(round(float(trade["p"]) * E8)), int(round(float(trade["q"]) * E8))
                self._maker_fills(sym, not trade["m"], px, qty, None, now)
        for sym in symbols:
            for bids in (True, False):  # our sells below the bids, our buys above the asks
                for tick, px, qty in self.market.side_levels(sym, bids)[:5]:
                    have = qty - self._used(sym, bids, tick, qty)
                    if have > 0:
                        self._maker_fills(sym, bids, px, have, tick, now)

    def _maker_fills(
        self, symbol: str, against_sells: bool, px: int, qty: int, tick: int | None, now: int
    ) -> None:
        """Liquidity ``qty`` at ``px`` hitting our sells (``against_sells``) or our buys."""
        book = [
            o
            for o in self._resting.values()
            if o.symbol == symbol
            and o.buy != against_sells
            and (o.price <= px if against_sells else o.price >= px)
        ]
        book.sort(key=lambda o: (o.price if against_sells else -o.price, o.order_id))
        rules, touched = self.rules[symbol], False
        for order in book:
            if qty <= 0:
                break
            q = min(qty, order.left)
            qty -= q
            touched = True
            self._fill(order, rules, tick, order.price, q, True, now)
            if order.status == "FILLED":
                order.working = False
                del self._resting[order.order_id]
                self.account.release(order, rules)
        if touched:
            self._positions(rules)

    # -- reports -----------------------------------------------------------------------------
    def _report(
        self, order: Order, kind: str, fill: Fill | None, now: int, cancel_id: str = ""
    ) -> None:
        self.publish(execution_report(order, kind, fill, now, cancel_id))

    def _positions(self, rules: SymbolRules) -> None:
        self.publish(account_position(self.account, [rules.base, rules.quote]))
