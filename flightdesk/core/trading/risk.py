"""Pre-trade risk: every order from every strategy passes ``RiskValidator.check``.

A rejection is a value, not an exception: a :class:`RiskDecision` with an enum reason and
the numbers that failed (the limit and the value that broke it). The checks, in order:

1. desk state — kill switch; ``HALTED``; ``REDUCING`` lets only position-reducing orders
   through (as does ``reduce_only`` on the order itself, which must reduce the position
   of the strategy that sends it);
2. the order itself — positive finite qty, a limit/stop price where its type needs one;
3. size — ``max_order_qty``; ``max_position`` per instrument and ``max_total_position``
   counted worst case, i.e. with every open order filled; ``max_notional`` of that worst
   case at mid;
4. market — a two-sided book, not older than ``stale_ms`` on the engine clock; a limit or
   stop price within ``price_band_bps`` of mid; no crossing the desk's own resting orders;
5. rate — ``max_orders_per_s`` as a token bucket (burst = one second's worth);
6. rules: the instrument rules first (lot size, tick size, minimum notional, see
   :mod:`flightdesk.core.trading.rules`), then those registered through
   ``flightdesk_register_risk_rules``.

Loss limits move the desk mode: the day's PnL below ``-daily_loss_limit`` or a drawdown
from the PnL peak beyond ``max_drawdown`` switch to ``loss_action`` (``reducing`` or
``halted``). A new UTC day (engine clock) lifts a daily-loss stop; a drawdown stop stays
until :meth:`RiskValidator.reset_mode`. A rate, band, staleness or loss limit of 0 turns
that check off; the size limits must be positive (see ``config_spec``).

A hold (:meth:`RiskValidator.hold`, used while the store cannot commit) halts the desk on
top of whatever mode it is in: mode changes meanwhile (a loss stop, an operator reset)
apply to the mode beneath, and :meth:`RiskValidator.release` returns to that mode.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from flightdesk.core.runtime.config import section
from flightdesk.core.trading.orders import Order, OrderType

logger = logging.getLogger(__name__)
DAY_NS = 86_400 * 1_000_000_000


class RiskReason(str, Enum):
    KILL_SWITCH = "kill_switch"
    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    REDUCE_ONLY = "reduce_only"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_POSITION = "max_position"
    MAX_TOTAL_POSITION = "max_total_position"
    MAX_NOTIONAL = "max_notional"
    MAX_ORDER_RATE = "max_order_rate"
    PRICE_BAND = "price_band"
    STALE_BOOK = "stale_book"
    SELF_CROSS = "self_cross"
    NO_MARKET = "no_market"
    INVALID_ORDER = "invalid_order"
    LOT_SIZE = "lot_size"  # qty off the lot grid, or outside min_qty..max_qty
    MIN_NOTIONAL = "min_notional"  # qty x price under the instrument's minimum
    PRICE_FILTER = "price_filter"  # a price off the tick grid
    CUSTOM_RULE = "custom_rule"


class DeskMode(str, Enum):
    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    approved: bool
    reason: RiskReason | None = None
    limit: float = math.nan
    value: float = math.nan
    detail: str = ""
    #: how ``value`` broke ``limit``: ">" (over a maximum), "<" (under a minimum), "!~"
    #: (not a multiple of a step)
    op: str = ">"

    def describe(self) -> str:
        if self.approved:
            return "approved"
        name = self.reason.value if self.reason else "rejected"
        text = f"{name}: {self.value:g} {self.op} {self.limit:g}"
        return f"{text} ({self.detail})" if self.detail else text


APPROVED = RiskDecision(True)

#: ``rule(order, view) -> RiskDecision | None`` — a custom rule (plugins register these)
RiskRule = Callable[[Order, "RiskView"], "RiskDecision | None"]


class RiskView(NamedTuple):
    """What a rule may look at: positions, open orders, the market, the engine clock.

    A NamedTuple (immutable, built per order: ~3x cheaper than a frozen dataclass).

    ``total_position`` is the worst-case absolute position summed over all instruments,
    this one included; ``own_bid``/``own_ask`` are the desk's best resting prices here.
    """

    position: float
    total_position: float
    mid: float
    open_buy: float = 0.0
    open_sell: float = 0.0
    own_bid: float = -math.inf
    own_ask: float = math.inf
    book_age_ns: int = -1  # -1: unknown (no book update seen through the engine)
    other_notional: float = 0.0
    now: int = 0
    #: the sending strategy's own position here, for ``reduce_only`` orders (NaN: not
    #: looked up; the desk position stands in)
    own_position: float = math.nan


def _reject(reason: RiskReason, limit: float, value: float, detail: str = "") -> RiskDecision:
    return RiskDecision(False, reason, limit, value, detail)


class RiskValidator:
    """Built-in limits from ``[risk]`` plus registered custom rules.

    ``config`` is the ``[risk]`` table; keys it leaves out take the config defaults, and a
    limit that is not allowed there (negative, NaN, infinite, the wrong type) raises
    :class:`ConfigError` here too: a validator is never built with a check switched off
    by a bad value. The size checks are written to reject when a limit compares false.
    """

    def __init__(self, config: Mapping[str, Any],
                 rules: Mapping[str, RiskRule] | None = None) -> None:
        cfg = section("risk", config)  # defaults filled in; a bad limit raises ConfigError
        self.max_order_qty = float(cfg["max_order_qty"])
        self.max_position = float(cfg["max_position"])
        self.max_total_position = float(cfg["max_total_position"])
        self.max_notional = float(cfg["max_notional"])
        self.killed = bool(cfg["kill_switch"])
        self.rate = float(cfg["max_orders_per_s"])
        self.price_band = float(cfg["price_band_bps"]) * 1e-4
        self.stale_ns = int(float(cfg["stale_ms"]) * 1e6)
        self.self_cross = bool(cfg["self_cross"])
        self.loss_limit = float(cfg["daily_loss_limit"])
        self.max_drawdown = float(cfg["max_drawdown"])
        self.loss_action = DeskMode(cfg["loss_action"])
        self.rules = dict(rules or {})
        #: whether :meth:`update_pnl` has anything to do (a loss limit is configured)
        self.watches_pnl = bool(self.loss_limit or self.max_drawdown)
        self.mode = DeskMode.ACTIVE
        self.mode_reason = ""
        #: the (mode, reason) beneath a hold, or None when not held
        self._beneath: tuple[DeskMode, str] | None = None
        self._tokens = max(self.rate, 1.0)
        self._refilled = -1
        self._day = -1
        self._day_start = 0.0
        self._peak = 0.0

    # -- the check ----------------------------------------------------------------------
    def check(self, order: Order, view: RiskView) -> RiskDecision:
        decision = None
        if self.killed or self.mode is not DeskMode.ACTIVE or order.reduce_only:
            decision = self._state(order, view)
        decision = (decision or self._order(order) or self._size(order, view)
                    or self._market(order, view))
        if decision is None and self.rate > 0:
            decision = self._rate(view.now)
        if decision is None and self.rules:
            decision = self._rules(order, view)
        if decision is not None:
            return decision
        if self.rate > 0:
            self._tokens -= 1.0
        return APPROVED

    def _state(self, order: Order, view: RiskView) -> RiskDecision | None:
        if self.killed:
            return _reject(RiskReason.KILL_SWITCH, 0.0, order.qty, "kill switch on")
        if self.mode is DeskMode.HALTED:
            return _reject(RiskReason.HALTED, 0.0, order.qty, self.mode_reason)
        if self.mode is DeskMode.REDUCING or order.reduce_only:
            # what is left to close once the open orders on the same side have filled
            same_side = view.open_buy if order.side.sign > 0 else view.open_sell
            # reduce_only reduces the sending strategy's own position (flatten closes each
            # strategy's, so the desk may pass through another sign on the way to flat)
            own = view.own_position
            pos = own if order.reduce_only and own == own else view.position
            allowed = max(0.0, -order.side.sign * pos - same_side)
            if order.qty > allowed + 1e-9:
                reason = RiskReason.REDUCE_ONLY if order.reduce_only else RiskReason.REDUCING_ONLY
                detail = "order must reduce the position" + (
                    f"; desk is reducing: {self.mode_reason}" if self.mode_reason else "")
                return _reject(reason, allowed, order.qty, detail)
        return None

    @staticmethod
    def _order(order: Order) -> RiskDecision | None:
        if not (order.qty > 0 and math.isfinite(order.qty)):
            return _reject(RiskReason.INVALID_ORDER, 0.0, order.qty,
                           "qty must be positive and finite")
        if order.has_limit and not (order.limit_px > 0 and math.isfinite(order.limit_px)):
            return _reject(RiskReason.INVALID_ORDER, 0.0, order.limit_px,
                           f"{order.order_type.value} order needs a positive finite limit_px")
        if order.is_stop and not (order.stop_px > 0 and math.isfinite(order.stop_px)):
            return _reject(RiskReason.INVALID_ORDER, 0.0, order.stop_px,
                           f"{order.order_type.value} order needs a positive finite stop_px")
        return None

    def _size(self, order: Order, view: RiskView) -> RiskDecision | None:
        # `not x <= limit`: a NaN limit (set after construction) rejects instead of passing
        if not order.qty <= self.max_order_qty + 1e-9:
            return _reject(RiskReason.MAX_ORDER_QTY, self.max_order_qty, order.qty)
        pos = view.position
        now = max(abs(pos + view.open_buy), abs(pos - view.open_sell))
        if order.side.sign > 0:
            after = max(abs(pos + view.open_buy + order.qty), abs(pos - view.open_sell))
        else:
            after = max(abs(pos + view.open_buy), abs(pos - view.open_sell - order.qty))
        if after <= now:
            return None  # an order that cannot grow the worst case never breaks a limit
        if not after <= self.max_position + 1e-9:
            return _reject(RiskReason.MAX_POSITION, self.max_position, after)
        total = view.total_position - now + after
        if not total <= self.max_total_position + 1e-9:
            return _reject(RiskReason.MAX_TOTAL_POSITION, self.max_total_position, total)
        if not math.isfinite(view.mid):
            return _reject(RiskReason.NO_MARKET, math.nan, math.nan,
                           f"no two-sided book for {order.symbol}")
        notional = view.other_notional + after * view.mid
        if not notional <= self.max_notional:
            return _reject(RiskReason.MAX_NOTIONAL, self.max_notional, notional)
        return None

    def _market(self, order: Order, view: RiskView) -> RiskDecision | None:
        mid = view.mid
        if not math.isfinite(mid):
            return _reject(RiskReason.NO_MARKET, math.nan, math.nan,
                           f"no two-sided book for {order.symbol}")
        if self.stale_ns and view.book_age_ns > self.stale_ns:
            return _reject(RiskReason.STALE_BOOK, self.stale_ns / 1e6, view.book_age_ns / 1e6,
                           f"{order.venue}:{order.symbol} book age in ms")
        if self.price_band and order.order_type is not OrderType.MARKET:
            for px in (order.limit_px, order.stop_px):
                if px == px and abs(px - mid) > self.price_band * mid:
                    return _reject(RiskReason.PRICE_BAND, self.price_band * 1e4,
                                   abs(px - mid) / mid * 1e4,
                                   f"price {px:g} vs mid {mid:g}, in bps")
        if self.self_cross and order.order_type is not OrderType.STOP:
            px = order.worst_price()
            if order.side.sign > 0 and view.own_ask < math.inf and px >= view.own_ask:
                return _reject(RiskReason.SELF_CROSS, view.own_ask, px,
                               "buy would trade with the desk's own resting sell")
            if order.side.sign < 0 and view.own_bid > -math.inf and px <= view.own_bid:
                return _reject(RiskReason.SELF_CROSS, view.own_bid, px,
                               "sell would trade with the desk's own resting buy")
        return None

    def _rate(self, now: int) -> RiskDecision | None:
        if self.rate <= 0:
            return None
        if self._refilled >= 0 and now > self._refilled:
            self._tokens = min(max(self.rate, 1.0),
                               self._tokens + (now - self._refilled) * 1e-9 * self.rate)
        self._refilled = max(now, self._refilled)
        if self._tokens < 1.0:
            return _reject(RiskReason.MAX_ORDER_RATE, self.rate, self.rate + 1.0,
                           "orders in the last second (token bucket empty)")
        return None

    def _rules(self, order: Order, view: RiskView) -> RiskDecision | None:
        for name, rule in self.rules.items():
            try:
                decision = rule(order, view)
            except Exception as exc:  # a broken rule must fail closed, not open
                logger.exception("risk rule %s raised", name)
                return _reject(RiskReason.CUSTOM_RULE, math.nan, math.nan,
                               f"rule {name} raised {type(exc).__name__}: {exc}")
            if decision is not None and not decision.approved:
                return RiskDecision(False, decision.reason or RiskReason.CUSTOM_RULE,
                                    decision.limit, decision.value, decision.detail or name,
                                    decision.op)
        return None

    # -- loss limits --------------------------------------------------------------------
    def update_pnl(self, pnl: float, now: int) -> DeskMode | None:
        """Feed the desk's total PnL; returns the new mode when it changes."""
        day = now // DAY_NS
        changed = None
        if day != self._day:
            # the run starts at 0 PnL; later days start where the previous one ended
            self._day_start = pnl if self._day >= 0 else 0.0
            self._day = day
            if self.base_mode[1].startswith("daily loss"):
                changed = self._set_mode(DeskMode.ACTIVE, "")
        self._peak = max(self._peak, pnl)
        mode = self.base_mode[0]
        if mode is not DeskMode.ACTIVE and mode is self.loss_action:
            return changed
        day_loss = self._day_start - pnl
        if self.loss_limit and day_loss > self.loss_limit:
            return self._set_mode(self.loss_action,
                                  f"daily loss {day_loss:g} > {self.loss_limit:g}")
        drawdown = self._peak - pnl
        if self.max_drawdown and drawdown > self.max_drawdown:
            return self._set_mode(self.loss_action,
                                  f"drawdown {drawdown:g} > {self.max_drawdown:g}")
        return changed

    def _set_mode(self, mode: DeskMode, reason: str) -> DeskMode | None:
        if self._beneath is not None:  # held: the change applies beneath the hold
            if mode is not self._beneath[0]:
                self._beneath = (mode, reason)
                logger.warning("desk mode beneath the hold -> %s %s", mode.value, reason)
            return None
        if mode is self.mode:
            return None
        self.mode, self.mode_reason = mode, reason
        logger.warning("desk mode -> %s %s", mode.value, reason)
        return mode

    # -- holds ----------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._beneath is not None

    @property
    def base_mode(self) -> tuple[DeskMode, str]:
        """The mode and reason beneath a hold (the current ones when not held)."""
        return self._beneath if self._beneath is not None else (self.mode, self.mode_reason)

    def hold(self, reason: str) -> bool:
        """Halt the desk for ``reason`` until :meth:`release`; True when it was not held.
        Calling it again while held only updates the reason."""
        first = self._beneath is None
        if first:
            self._beneath = (self.mode, self.mode_reason)
            logger.warning("desk mode -> halted (held) %s", reason)
        self.mode, self.mode_reason = DeskMode.HALTED, reason
        return first

    def release(self) -> DeskMode | None:
        """End a hold: back to the mode beneath it (which a loss stop or an operator may
        have changed meanwhile); returns that mode, or None when not held."""
        if self._beneath is None:
            return None
        (self.mode, self.mode_reason), self._beneath = self._beneath, None
        logger.warning("desk mode -> %s after the hold %s", self.mode.value, self.mode_reason)
        return self.mode

    def reset_mode(self) -> None:
        """Back to ACTIVE (an operator decision after a drawdown stop)."""
        self._set_mode(DeskMode.ACTIVE, "")
        self._peak = -math.inf
