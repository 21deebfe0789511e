"""The venue executors' order journal: ``<data_dir>/executors/<venue>.jsonl``, JSON lines of
orders sent (``new``, flushed and fsync'd before the request leaves) and orders finished
(``final``), so a desk killed at any point knows every order it may have sent."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from flightdesk.core.trading.orders import Order, OrderType, Side, TimeInForce

logger = logging.getLogger(__name__)


class Journal:
    """Append-only JSON lines of orders sent and orders finished (see the module doc).

    ``open_orders`` are the orders sent and not known to be finished; ``finished`` the
    orders that finished since the file was last compacted (their ``final`` line is
    written before the store commits their last rows, so a kill in between leaves a
    finished order whose end the store lacks: :meth:`settle` takes those back).
    """

    def __init__(self, path: Path, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        path.parent.mkdir(parents=True, exist_ok=True)
        self.finished: dict[str, dict[str, Any]] = {}
        self.open_orders = self._load()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def _load(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if not self.path.exists():
            return out
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            try:
                rec = json.loads(line)
                if rec["op"] == "new":
                    out[rec["order"]["order_id"]] = rec["order"]
                elif rec["op"] == "final":
                    done = out.pop(rec["order_id"], None)
                    if done is not None:
                        self.finished[rec["order_id"]] = done
            except (ValueError, KeyError, TypeError):
                # a torn last line from a kill mid-write: nothing was sent for it
                logger.warning("executor journal %s line %d unreadable, skipped", self.path, n)
        return out

    def settle(self, stored: set[str]) -> list[str]:
        """Compact the file: finished orders whose end is in the store (``stored``) are
        dropped, the others are open again (to be asked about); returns those."""
        back = [oid for oid in self.finished if oid not in stored]
        for oid in back:
            self.open_orders[oid] = self.finished[oid]
        self.finished = {}
        self._fh.close()
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for order in self.open_orders.values():
                fh.write(json.dumps({"op": "new", "order": order}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
        return back

    def new(self, order: Order) -> None:
        """Record an order about to be sent: written and flushed to the OS here (a killed
        process loses nothing), made durable by :meth:`sync` before the request leaves."""
        rec = order_record(order)
        self.open_orders[order.order_id] = rec
        self._write({"op": "new", "order": rec}, sync=False)

    def sync(self) -> None:
        """fsync what was written (``fsync = false``: nothing); from any thread — the
        executor's I/O path calls it just before sending, off the engine thread."""
        if self.fsync and not self._fh.closed:
            os.fsync(self._fh.fileno())

    def final(self, order_id: str, status: str) -> None:
        if self.open_orders.pop(order_id, None) is not None:
            self._write({"op": "final", "order_id": order_id, "status": status}, sync=False)

    def _write(self, rec: dict[str, Any], sync: bool) -> None:
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        if sync and self.fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def order_record(order: Order) -> dict[str, Any]:
    rec = order._asdict()
    for k, v in rec.items():
        if isinstance(v, float) and not math.isfinite(v):
            rec[k] = None
        elif hasattr(v, "value"):
            rec[k] = v.value
    return rec


def order_from_record(rec: dict[str, Any]) -> Order:
    def num(v: Any) -> float:
        return math.nan if v is None else float(v)

    return Order(rec["order_id"], int(rec["ts"]), rec["strategy"], rec["venue"],
                 rec["symbol"], Side(rec["side"]), OrderType(rec["order_type"]),
                 float(rec["qty"]), num(rec["limit_px"]), int(rec.get("ts_origin") or 0),
                 num(rec.get("stop_px")), TimeInForce(rec.get("tif", "gtc")),
                 bool(rec.get("post_only")), bool(rec.get("reduce_only")))
