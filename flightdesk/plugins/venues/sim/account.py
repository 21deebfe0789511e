"""The sim exchange's one trading account: orders, fills and balances as Binance reports them.

Amounts are integer 1e-8 units. An order locks what it may spend (a buy its price times its
quantity in the quote asset, a sell its quantity in the base asset); fills move balances and
charge the commission in the asset received (base on a buy, quote on a sell), as Binance does
for an account paying no BNB fees.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flightdesk.plugins.venues.sim.ladder import E8, fmt8
from flightdesk.plugins.venues.sim.rules import ApiError, SymbolRules

OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass(slots=True)
class Order:
    """One order's state (mutable: the account updates it as it fills)."""

    symbol: str
    order_id: int
    client_id: str
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | LIMIT_MAKER
    tif: str  # GTC | IOC | FOK ("GTC" for MARKET and LIMIT_MAKER)
    price: int  # 0 for MARKET
    qty: int  # 0 for a MARKET order by quoteOrderQty
    quote_qty: int  # quoteOrderQty, else 0
    time: int
    update_time: int = 0
    executed: int = 0
    cum_quote: int = 0
    status: str = "NEW"
    working: bool = False
    locked: int = 0  # what the order still locks (quote units on a buy, base on a sell)

    @property
    def buy(self) -> bool:
        return self.side == "BUY"

    @property
    def open(self) -> bool:
        return self.status in OPEN

    @property
    def left(self) -> int:
        return self.qty - self.executed


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of the account (a ``myTrades`` row)."""

    symbol: str
    trade_id: int
    order_id: int
    price: int
    qty: int
    quote: int
    commission: int
    commission_asset: str
    time: int
    buyer: bool
    maker: bool


@dataclass(slots=True)
class Balance:
    free: int = 0
    locked: int = 0


@dataclass(slots=True)
class Account:
    """Balances by asset, orders by id and fills, with the arithmetic of locking and filling."""

    balances: dict[str, Balance]
    maker_bps: int = 10
    taker_bps: int = 10
    orders: dict[int, Order] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    update_time: int = 0

    def balance(self, asset: str) -> Balance:
        return self.balances.setdefault(asset, Balance())

    def lock(self, order: Order, rules: SymbolRules, amount: int) -> None:
        """Lock ``amount`` of what ``order`` spends, or refuse it (-2010)."""
        bal = self.balance(rules.quote if order.buy else rules.base)
        if bal.free < amount:
            raise ApiError(400, -2010, "Account has insufficient balance for requested action.")
        bal.free -= amount
        bal.locked += amount
        order.locked += amount

    def release(self, order: Order, rules: SymbolRules) -> None:
        """Give back whatever ``order`` still locks (it was canceled, expired or filled)."""
        bal = self.balance(rules.quote if order.buy else rules.base)
        bal.locked -= order.locked
        bal.free += order.locked
        order.locked = 0

    def fill(
        self, order: Order, rules: SymbolRules, price: int, qty: int, maker: bool, now: int
    ) -> Fill:
        """Apply one fill of ``qty`` at ``price`` to ``order`` and the balances."""
        quote = price * qty // E8
        spent = quote if order.buy else qty
        base, quote_bal = self.balance(rules.base), self.balance(rules.quote)
        paid = self.balance(rules.quote) if order.buy else base
        from_lock = min(order.locked, _ceil_notional(order.price, qty) if order.buy else qty)
        if order.locked and order.type != "MARKET":
            paid.locked -= from_lock
            order.locked -= from_lock
            paid.free += from_lock - spent  # a buy filled below its limit gets the change back
        else:
            paid.free -= spent
        bps = self.maker_bps if maker else self.taker_bps
        received = qty if order.buy else quote
        fee = received * bps // 10_000
        (base if order.buy else quote_bal).free += received - fee
        order.executed += qty
        order.cum_quote += quote
        order.update_time = self.update_time = now
        order.status = "FILLED" if order.qty and order.executed >= order.qty else "PARTIALLY_FILLED"
        trade = Fill(
            order.symbol,
            len(self.fills) + 1,
            order.order_id,
            price,
            qty,
            quote,
            fee,
            rules.base if order.buy else rules.quote,
            now,
            order.buy,
            maker,
        )
        self.fills.append(trade)
        return trade

    def positions(self, assets: list[str]) -> list[dict[str, str]]:
        """The ``B`` list of an ``outboundAccountPosition`` for ``assets``."""
        out = []
        for asset in assets:
            bal = self.balance(asset)
            out.append({"a": asset, "f": fmt8(bal.free), "l": fmt8(bal.locked)})
        return out


def _ceil_notional(price: int, qty: int) -> int:
    return -(-price * qty // E8)


def notional(price: int, qty: int) -> int:
    """What ``qty`` at ``price`` costs, rounded up to a whole 1e-8 unit (what a buy locks)."""
    return _ceil_notional(price, qty)
