"""What the desk offers the parts around it: :class:`DeskAPI`.

Flight, the HTTP server, telemetry and plugins (``flightdesk_startup(desk)``,
``flightdesk_shutdown(desk)``) see a running desk through this narrow, typed interface —
status, control, snapshots, subscriptions, signals and ingestion — never the runtime
behind it. Everything that touches engine state runs on the engine thread (``call``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pyarrow as pa

if TYPE_CHECKING:
    from flightdesk.core.flight.tickets import StreamRequest
    from flightdesk.core.market.events import MarketEvent
    from flightdesk.core.runtime.bus import Subscriber
    from flightdesk.core.runtime.config import Config
    from flightdesk.core.runtime.slots import StrategySlot
    from flightdesk.core.storage.store import Store

T = TypeVar("T")


class DeskAPI(Protocol):
    """A running desk, as Flight, HTTP, telemetry and plugins see it."""

    @property
    def config(self) -> Config: ...

    @property
    def stop_event(self) -> threading.Event: ...

    @property
    def ready_event(self) -> threading.Event: ...

    @property
    def store(self) -> Store: ...

    @property
    def store_target(self) -> str | Path: ...

    @property
    def history_root(self) -> Path: ...

    @property
    def started_ns(self) -> int: ...

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T: ...

    # -- reads ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]: ...

    def readiness(self) -> dict[str, Any]: ...

    def gauges(self) -> dict[str, Any]: ...

    def strategies(self) -> list[dict[str, Any]]: ...

    def snapshot(self, req: StreamRequest) -> pa.Table: ...

    def positions_table(self) -> pa.Table: ...

    def subscribe(self, stream: str, maxlen: int | None = None,
                  params: dict[str, Any] | None = None) -> Subscriber: ...

    def unsubscribe(self, sub: Subscriber) -> None: ...

    def has_subscribers(self, stream: str) -> bool: ...

    def subscriber_stats(self) -> list[dict[str, Any]]: ...

    def request_book_snapshots(self) -> None: ...

    def request_tickers(self) -> None:
        """A ``tickers`` subscriber came: parse and publish venue tickers from now on."""

    # -- control ----------------------------------------------------------------------
    def kill(self, on: bool = True) -> dict[str, Any]: ...

    def cancel_all(self) -> dict[str, Any]: ...

    def cancel_order(self, order_id: str) -> dict[str, Any]: ...

    def flatten(self) -> dict[str, Any]: ...

    def enable_strategy(self, name: str, enabled: bool) -> dict[str, Any]: ...

    def stop(self) -> None: ...

    # -- input ------------------------------------------------------------------------
    def ingest(self, events: list[MarketEvent], ts_recv: int) -> None: ...

    def attach_strategy(self, slot: StrategySlot) -> None: ...

    def detach_strategy(self, slot: StrategySlot) -> None: ...

    def submit_signals(self, slot: StrategySlot, batch: pa.RecordBatch) -> str: ...
