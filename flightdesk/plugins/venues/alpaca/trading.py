"""Alpaca Trading API v2 values without I/O, for the executor: order statuses and
``trade_updates`` events as the desk's statuses, RFC 3339 times, execution keys, and a
log filter that keeps the API keys out of the WebSocket library's frame logs."""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any

from flightdesk.core.trading.orders import OrderStatus, TimeInForce
from flightdesk.plugins.venues.binance.executor import decimal_str

STATUS = {"new": OrderStatus.ACCEPTED, "accepted": OrderStatus.ACCEPTED,
          "pending_new": OrderStatus.ACCEPTED, "accepted_for_bidding": OrderStatus.ACCEPTED,
          "pending_cancel": OrderStatus.ACCEPTED, "pending_replace": OrderStatus.ACCEPTED,
          "partially_filled": OrderStatus.PARTIALLY_FILLED, "filled": OrderStatus.FILLED,
          "canceled": OrderStatus.CANCELLED, "replaced": OrderStatus.CANCELLED,
          "expired": OrderStatus.EXPIRED, "done_for_day": OrderStatus.EXPIRED,
          "rejected": OrderStatus.REJECTED, "stopped": OrderStatus.ACCEPTED,
          "suspended": OrderStatus.ACCEPTED, "calculated": OrderStatus.ACCEPTED}
EVENTS = {"new": OrderStatus.ACCEPTED, "pending_new": OrderStatus.ACCEPTED,
          "partial_fill": OrderStatus.PARTIALLY_FILLED, "fill": OrderStatus.FILLED,
          "canceled": OrderStatus.CANCELLED, "expired": OrderStatus.EXPIRED,
          "done_for_day": OrderStatus.EXPIRED, "rejected": OrderStatus.REJECTED,
          "replaced": OrderStatus.CANCELLED}
TIF = {TimeInForce.GTC: "gtc", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}
#: Alpaca's largest page of account activities
PAGE = 100
NS = 1_000_000_000


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def parse_time(text: Any) -> int:
    """An RFC 3339 time (``2024-01-02T14:30:00.123456789Z``) as ns since the epoch (0
    when absent); ValueError naming the text when it is not one."""
    if not text:
        return 0
    match = _TIME.fullmatch(str(text))
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    head, frac, tz = match.groups()
    zone = dt.timezone.utc if tz == "Z" else dt.datetime.strptime(tz, "%z").tzinfo
    base = dt.datetime.fromisoformat(head).replace(tzinfo=zone)
    return int(base.timestamp()) * 1_000_000_000 + int(((frac or "") + "000000000")[:9])


def format_time(ns: int) -> str:
    """ns since the epoch as RFC 3339 (whole seconds, ``Z``), for query parameters."""
    return dt.datetime.fromtimestamp(ns // NS, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def execution_key(cum_qty: Any) -> str:
    """The id of an execution: the order's cumulative filled quantity after it."""
    return f"cum{decimal_str(float(cum_qty))}"


class WithholdKeys(logging.Filter):
    """On the stream's logger: a record that shows the auth frame, or either key, is
    rewritten without them (``websockets`` logs every frame at DEBUG)."""

    def __init__(self, *secrets: str) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if '"action": "auth"' in text or any(s in text for s in self.secrets):
            for secret in self.secrets:
                text = text.replace(secret, "***")
            if '"action": "auth"' in text:
                text = text.split("{", 1)[0] + "auth frame (keys withheld)"
            record.msg, record.args = text, None
        return True
