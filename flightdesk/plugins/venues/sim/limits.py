"""Request-weight and order-count limits of the sim REST API, and its test faults.

Like Binance, weight is counted per fixed minute and orders per fixed 10 seconds; every
answer carries ``X-MBX-USED-WEIGHT-1M`` (and ``X-MBX-ORDER-COUNT-10S`` on order endpoints).
A request over the weight limit gets 429 with ``Retry-After`` (the seconds left in the
minute); after ``ban_after`` such answers the client is banned: 418 with ``Retry-After``
for ``ban_s`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from flightdesk.plugins.venues.sim.rules import ApiError


@dataclass(slots=True)
class Faults:
    """Faults a test can switch on (read and reset on the sim's loop).

    ``drop_next_ack``: the next order is executed but its answer never sent (the connection
    is closed); ``skew_ms``: the server clock runs this far ahead of the wall clock;
    ``force_429``: answer the next N requests 429 as if over the weight limit;
    ``retry_after_s``: the ``Retry-After`` of every 429/418 while set (0: Binance's own, the
    seconds left in the minute or the ban — up to a minute, too long for most tests);
    ``hold_market``: the market replay stands still (the book does not move) while set;
    ``lose_user_events``: user-stream events are lost while set (as on a connection that
    went silent without closing), counted in ``user_events_lost``.
    """

    drop_next_ack: bool = False
    skew_ms: int = 0
    force_429: int = 0
    retry_after_s: int = 0
    hold_market: bool = False
    lose_user_events: bool = False


class Limits:
    """Weight and order counters with the 429/418 answers."""

    def __init__(
        self, weight_limit: int = 6000, order_limit: int = 100, ban_after: int = 5, ban_s: int = 120
    ) -> None:
        self.weight_limit, self.order_limit = weight_limit, order_limit
        self.ban_after, self.ban_s = ban_after, ban_s
        self.weight = self.orders = 0
        self._minute = self._ten_s = -1
        self.violations = 0
        self.banned_until = 0  # ms
        self.stats = {"rate_limited": 0, "banned": 0}

    def charge(self, now_ms: int, weight: int, faults: Faults) -> None:
        """Count one request of ``weight``; raise 429/418 when over the limit or banned."""
        minute = now_ms // 60_000
        if minute != self._minute:
            self._minute, self.weight = minute, 0
        if now_ms < self.banned_until:
            self.stats["banned"] += 1
            raise ApiError(
                418,
                -1003,
                f"Way too much request weight used; IP banned until "
                f"{self.banned_until}. Please use WebSocket Streams for live "
                "updates to avoid bans.",
            )
        self.weight += weight
        forced = faults.force_429 > 0
        if forced:
            faults.force_429 -= 1
        if forced or self.weight > self.weight_limit:
            self.violations += 1
            if self.violations > self.ban_after:
                self.banned_until = now_ms + self.ban_s * 1000
                self.stats["banned"] += 1
                raise ApiError(
                    418,
                    -1003,
                    f"Way too much request weight used; IP banned until "
                    f"{self.banned_until}. Please use WebSocket Streams for live "
                    "updates to avoid bans.",
                )
            self.stats["rate_limited"] += 1
            raise ApiError(
                429,
                -1003,
                f"Too much request weight used; current limit is "
                f"{self.weight_limit} request weight per 1 MINUTE. Please use "
                "WebSocket Streams for live updates to avoid polling the API.",
            )

    def count_order(self, now_ms: int) -> None:
        """Count one new order; raise -1015 (429) past ``order_limit`` per 10 seconds."""
        ten = now_ms // 10_000
        if ten != self._ten_s:
            self._ten_s, self.orders = ten, 0
        self.orders += 1
        if self.orders > self.order_limit:
            self.stats["rate_limited"] += 1
            raise ApiError(
                429,
                -1015,
                f"Too many new orders; current limit is {self.order_limit} orders per 10 SECOND.",
            )

    def retry_after(self, now_ms: int, status: int) -> str:
        """The ``Retry-After`` seconds of a 429 (end of the minute) or a 418 (end of the ban)."""
        if status == 418:
            return str(max(1, -(-(self.banned_until - now_ms) // 1000)))
        return str(max(1, 60 - (now_ms // 1000) % 60))

    def headers(self, order_endpoint: bool) -> dict[str, str]:
        out = {"X-MBX-USED-WEIGHT-1M": str(self.weight)}
        if order_endpoint:
            out["X-MBX-ORDER-COUNT-10S"] = str(self.orders)
        return out
