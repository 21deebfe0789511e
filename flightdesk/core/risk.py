"""Pre-trade risk: every order from every strategy passes ``RiskValidator.check``.

A rejection is a value, not an exception: a :class:`RiskDecision` with an enum reason and
the numbers that failed (the limit and the value that broke it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from flightdesk.core.orders import Order


class RiskReason(str, Enum):
    KILL_SWITCH = "kill_switch"
    MAX_ORDER_QTY = "max_order_qty"
    MAX_POSITION = "max_position"
    MAX_TOTAL_POSITION = "max_total_position"
    MAX_NOTIONAL = "max_notional"
    NO_MARKET = "no_market"
    INVALID_ORDER = "invalid_order"
    CUSTOM_RULE = "custom_rule"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    approved: bool
    reason: RiskReason | None = None
    limit: float = math.nan
    value: float = math.nan
    detail: str = ""

    def describe(self) -> str:
        if self.approved:
            return "approved"
        name = self.reason.value if self.reason else "rejected"
        text = f"{name}: {self.value:g} > {self.limit:g}"
        return f"{text} ({self.detail})" if self.detail else text


APPROVED = RiskDecision(True)

#: ``rule(order, view) -> RiskDecision | None`` — a custom rule (plugins register these)
RiskRule = Callable[[Order, "RiskView"], "RiskDecision | None"]


@dataclass(frozen=True, slots=True)
class RiskView:
    """What a rule may look at: the positions and the instrument's mid."""

    position: float
    total_position: float
    mid: float


class RiskValidator:
    """Built-in limits from ``[risk]`` plus registered custom rules."""

    def __init__(self, config: Mapping[str, Any],
                 rules: Mapping[str, RiskRule] | None = None) -> None:
        self.max_order_qty = float(config["max_order_qty"])
        self.max_position = float(config["max_position"])
        self.max_total_position = float(config["max_total_position"])
        self.max_notional = float(config["max_notional"])
        self.killed = bool(config["kill_switch"])
        self.rules = dict(rules or {})

    def check(self, order: Order, view: RiskView) -> RiskDecision:
        if self.killed:
            return RiskDecision(False, RiskReason.KILL_SWITCH, 0.0, order.qty, "kill switch on")
        if not (order.qty > 0 and math.isfinite(order.qty)):
            return RiskDecision(False, RiskReason.INVALID_ORDER, 0.0, order.qty,
                                "qty must be positive and finite")
        if order.qty > self.max_order_qty + 1e-9:
            return RiskDecision(False, RiskReason.MAX_ORDER_QTY, self.max_order_qty, order.qty)
        after = view.position + order.side.sign * order.qty
        if abs(after) > self.max_position + 1e-9:
            return RiskDecision(False, RiskReason.MAX_POSITION, self.max_position, abs(after))
        total = view.total_position - abs(view.position) + abs(after)
        if total > self.max_total_position + 1e-9:
            return RiskDecision(False, RiskReason.MAX_TOTAL_POSITION, self.max_total_position,
                                total)
        if not math.isfinite(view.mid):
            return RiskDecision(False, RiskReason.NO_MARKET, math.nan, math.nan,
                                f"no two-sided book for {order.symbol}")
        notional = abs(after) * view.mid
        if notional > self.max_notional:
            return RiskDecision(False, RiskReason.MAX_NOTIONAL, self.max_notional, notional)
        for name, rule in self.rules.items():
            decision = rule(order, view)
            if decision is not None and not decision.approved:
                return RiskDecision(False, decision.reason or RiskReason.CUSTOM_RULE,
                                    decision.limit, decision.value, decision.detail or name)
        return APPROVED
