"""Baseline for the backtest bench: the Binance capture through NautilusTrader's BacktestEngine.

The hftbacktest capture (gzip text, one ``<recv_ns> <json>`` record a line) is parsed into
Nautilus data objects OUTSIDE the timed region:

* the REST snapshot (the line without a ``stream`` key) -> one ``OrderBookDeltas``
  (CLEAR + one ADD per level, ``F_SNAPSHOT``), placed just before the first depth diff kept;
* each ``depth@100ms`` diff with ``u > lastUpdateId`` -> one ``OrderBookDeltas``
  (UPDATE, or DELETE for a zero quantity); earlier diffs are dropped, as the Binance
  snapshot procedure says;
* each ``trade`` -> one ``TradeTick``; each ``bookTicker`` -> one ``QuoteTick``.

Every object's ``ts_event`` and ``ts_init`` is the capture's receive time (the replay clock of
flightdesk's backtest). ``loops > 1`` appends the same data again, shifted past the end of the
previous copy, so one ``engine.run()`` covers all loops (a new snapshot resets the book).

The strategy mirrors flightdesk's ``threshold`` strategy with its defaults: the imbalance at
the touch ``(bid_qty - ask_qty) / (bid_qty + ask_qty)`` after every book update; a confidence
``clip((|imb| - threshold) / (1 - threshold), 0, 1)``; an opinion only at
``confidence >= min_confidence``; a side change only ``holding_period_ms`` after the last one;
a held side goes flat once its last support has decayed below ``min_confidence``
(``signal_decay_ms``); each change is a market order to the wanted position
``side * order_size_fraction * max_position``.

Timed region: ``engine.run()`` only. ``python bench/nautilus_baseline.py [--loops N]`` prints
a markdown line. Needs the ``bench`` extra (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import nautilus_trader
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.common.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import (
    BookOrder,
    OrderBookDelta,
    OrderBookDeltas,
    QuoteTick,
    TradeTick,
)
from nautilus_trader.model.enums import (
    AccountType,
    AggressorSide,
    BookAction,
    BookType,
    OmsType,
    OrderSide,
    RecordFlag,
)
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId, TradeId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider
from nautilus_trader.trading.strategy import Strategy

from flightdesk.core.runtime.config import DEFAULTS
from flightdesk.plugins.strategies.threshold import ThresholdStrategy

DEFAULT_CAPTURE = Path(__file__).resolve().parents[2] / "shared/data/binance/btcusdt_20240808.gz"
_F_LAST = int(RecordFlag.F_LAST)
_F_SNAPSHOT = int(RecordFlag.F_SNAPSHOT)

Level = tuple[float, float]


# -- the capture, parsed once into plain tuples -------------------------------------------
@dataclass(slots=True)
class Capture:
    """The records of one capture, by kind, as plain values (ns, payload)."""

    snapshot: tuple[int, list[Level], list[Level]] | None = None
    depth: list[tuple[int, int, list[Level], list[Level]]] = field(default_factory=list)
    trades: list[tuple[int, float, float, bool, int]] = field(default_factory=list)
    tickers: list[tuple[int, float, float, float, float]] = field(default_factory=list)
    frames: int = 0  # every record line, as flightdesk's replay counts them
    dropped_depth: int = 0  # diffs with u <= lastUpdateId (before the snapshot)

    def stamps(self) -> list[int]:
        """Receive times of every kept record."""
        out = [d[0] for d in self.depth] + [t[0] for t in self.trades]
        out += [q[0] for q in self.tickers]
        if self.snapshot is not None:
            out.append(self.snapshot[0])
        return out

    @property
    def span_ns(self) -> int:
        """The shift between two loops: the capture's time span plus one second."""
        stamps = self.stamps()
        return max(stamps) - min(stamps) + 1_000_000_000


def _levels(raw: list[list[str]]) -> list[Level]:
    return [(float(p), float(q)) for p, q in raw]


def read_capture(path: str | Path) -> Capture:
    """Parse an hftbacktest Binance spot capture (see the module docstring)."""
    cap = Capture()
    with gzip.open(path, "rt") as fh:
        for line in fh:
            ts_text, _, body = line.partition(" ")
            if not body.strip():
                continue
            cap.frames += 1
            ts = int(ts_text)
            msg = json.loads(body)
            stream = msg.get("stream")
            if stream is None:
                if "lastUpdateId" not in msg:
                    raise ValueError(f"{path}: a record at {ts} has no 'stream' and is not a "
                                     "REST depth snapshot (no 'lastUpdateId')")
                cap.snapshot = (ts, _levels(msg["bids"]), _levels(msg["asks"]))
                last_id = int(msg["lastUpdateId"])
                kept = [d for d in cap.depth if d[1] > last_id]
                cap.dropped_depth += len(cap.depth) - len(kept)
                cap.depth = kept
                continue
            data = msg["data"]
            if "@depth" in stream:
                cap.depth.append((ts, int(data["u"]), _levels(data["b"]), _levels(data["a"])))
            elif stream.endswith("@trade"):
                cap.trades.append((ts, float(data["p"]), float(data["q"]), bool(data["m"]),
                                   int(data["t"])))
            elif stream.endswith("@bookTicker"):
                cap.tickers.append((ts, float(data["b"]), float(data["B"]), float(data["a"]),
                                    float(data["A"])))
            else:
                raise ValueError(f"{path}: unknown stream {stream!r} at {ts}")
    if cap.snapshot is None:
        raise ValueError(f"{path}: no REST depth snapshot (a line with 'lastUpdateId')")
    return cap


# -- plain tuples -> Nautilus data objects ---------------------------------------------------
class _Maker:
    """Builds Nautilus objects for one instrument, caching prices and quantities."""

    def __init__(self, instrument: Instrument) -> None:
        self.iid = instrument.id
        self.pp = instrument.price_precision
        self.sp = instrument.size_precision
        self._px: dict[float, Price] = {}
        self._qty: dict[float, Quantity] = {}

    def px(self, v: float) -> Price:
        p = self._px.get(v)
        if p is None:
            p = self._px[v] = Price(v, self.pp)
        return p

    def qty(self, v: float) -> Quantity:
        q = self._qty.get(v)
        if q is None:
            q = self._qty[v] = Quantity(v, self.sp)
        return q

    def deltas(self, ts: int, bids: list[Level], asks: list[Level], snapshot: bool
               ) -> OrderBookDeltas:
        out = [OrderBookDelta.clear(self.iid, 0, ts, ts)] if snapshot else []
        flags = _F_SNAPSHOT if snapshot else 0
        for side, levels in ((OrderSide.BUY, bids), (OrderSide.SELL, asks)):
            for p, q in levels:
                if snapshot and q <= 0:
                    continue
                action = BookAction.ADD if snapshot else (
                    BookAction.UPDATE if q > 0 else BookAction.DELETE)
                order = BookOrder(side, self.px(p), self.qty(q), 0)
                out.append(OrderBookDelta(self.iid, action, order, flags, 0, ts, ts))
        last = out[-1]
        out[-1] = OrderBookDelta(self.iid, last.action, last.order, last.flags | _F_LAST, 0,
                                 ts, ts)
        return OrderBookDeltas(self.iid, out)

    def trade(self, ts: int, p: float, q: float, buyer_maker: bool, tid: str) -> TradeTick:
        side = AggressorSide.SELLER if buyer_maker else AggressorSide.BUYER
        return TradeTick(self.iid, self.px(p), self.qty(q), side, TradeId(tid), ts, ts)

    def quote(self, ts: int, bp: float, bq: float, ap: float, aq: float) -> QuoteTick:
        return QuoteTick(self.iid, self.px(bp), self.px(ap), self.qty(bq), self.qty(aq), ts, ts)


def build_data(cap: Capture, instrument: Instrument, loops: int
               ) -> tuple[list[OrderBookDeltas], list[TradeTick], list[QuoteTick]]:
    """The capture as Nautilus data, ``loops`` copies each shifted past the previous one."""
    mk = _Maker(instrument)
    books: list[OrderBookDeltas] = []
    trades: list[TradeTick] = []
    quotes: list[QuoteTick] = []
    assert cap.snapshot is not None
    snap_ts, snap_bids, snap_asks = cap.snapshot
    if cap.depth:  # diffs buffered before the snapshot arrived follow it, so it goes first
        snap_ts = min(snap_ts, cap.depth[0][0] - 1)
    span = cap.span_ns
    for loop in range(loops):
        shift = loop * span
        books.append(mk.deltas(snap_ts + shift, snap_bids, snap_asks, snapshot=True))
        books.extend(mk.deltas(ts + shift, b, a, snapshot=False) for ts, _, b, a in cap.depth
                     if b or a)
        trades.extend(mk.trade(ts + shift, p, q, m, f"{t}-{loop}")
                      for ts, p, q, m, t in cap.trades)
        quotes.extend(mk.quote(ts + shift, *rest) for ts, *rest in cap.tickers)
    return books, trades, quotes


# -- the strategy -------------------------------------------------------------------------------
class ImbalanceConfig(StrategyConfig, frozen=True):
    """Parameters of :class:`ImbalanceStrategy` (flightdesk's threshold strategy's names)."""

    instrument_id: InstrumentId
    imbalance_threshold: float = 0.3
    min_confidence: float = 0.3
    holding_period_ms: float = 500.0
    signal_decay_ms: float = 2000.0
    qty: float = 0.5


class ImbalanceStrategy(Strategy):
    """flightdesk's threshold strategy on Nautilus's book (see the module docstring)."""

    def __init__(self, config: ImbalanceConfig) -> None:
        super().__init__(config)
        self.threshold = config.imbalance_threshold
        self.min_conf = config.min_confidence
        self.hold_ns = config.holding_period_ms * 1e6
        self.decay_ns = config.signal_decay_ms * 1e6
        self.side = 0
        self.since = -math.inf
        self.support_ts = -math.inf
        self.support_conf = 0.0
        self.orders_sent = 0
        self.fills = 0
        self.updates = 0

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        self.subscribe_order_book_deltas(self.config.instrument_id, BookType.L2_MBP)

    def on_order_book_deltas(self, deltas: OrderBookDeltas) -> None:
        self.updates += 1
        book = self.cache.order_book(self.config.instrument_id)
        bq = book.best_bid_size()
        aq = book.best_ask_size()
        if bq is None or aq is None:
            return
        b, a = float(bq), float(aq)
        if b + a <= 0:
            return
        self.on_imbalance(deltas.ts_init, (b - a) / (b + a))

    def on_imbalance(self, ts: int, imb: float) -> None:
        """One row of flightdesk's SignalPolicy with the threshold strategy's confidence."""
        conf = min(max((abs(imb) - self.threshold) / max(1.0 - self.threshold, 1e-12), 0.0), 1.0)
        want = (1 if imb > 0 else -1) if conf >= self.min_conf and conf > 0 else 0
        if want != self.side:
            earliest = self.since + self.hold_ns
            if want == 0:
                earliest = max(earliest, self._flat_time())
            if ts >= earliest:
                self.side, self.since = want, float(ts)
                self.target(want * self.config.qty)
        if want and want == self.side:
            self.support_ts, self.support_conf = float(ts), conf

    def _flat_time(self) -> float:
        if self.decay_ns <= 0 or self.min_conf <= 0 or self.support_conf <= 0:
            return math.inf
        ratio = self.support_conf / self.min_conf
        return self.support_ts + self.decay_ns * math.log(max(ratio, 1.0))

    def target(self, wanted: float) -> None:
        """A market order for the difference between ``wanted`` and the net position."""
        delta = Decimal(repr(wanted)) - self.portfolio.net_position(self.config.instrument_id)
        if delta == 0:
            return
        side = OrderSide.BUY if delta > 0 else OrderSide.SELL
        order = self.order_factory.market(self.config.instrument_id, side,
                                          self.instrument.make_qty(abs(delta)))
        self.orders_sent += 1
        self.submit_order(order)

    def on_order_filled(self, event: OrderFilled) -> None:
        self.fills += 1


# -- the run ------------------------------------------------------------------------------------
def _strategy_config(instrument_id: InstrumentId) -> ImbalanceConfig:
    """flightdesk's threshold defaults, so the two sides trade the same rule."""
    d = ThresholdStrategy.DEFAULTS
    qty = float(d["order_size_fraction"]) * float(DEFAULTS["risk"]["max_position"])
    return ImbalanceConfig(instrument_id=instrument_id,
                           imbalance_threshold=float(d["imbalance_threshold"]),
                           min_confidence=float(d["min_confidence"]),
                           holding_period_ms=float(d["holding_period_ms"]),
                           signal_decay_ms=float(d["signal_decay_ms"]), qty=qty)


def _engine(instrument: Instrument) -> BacktestEngine:
    config = BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR"),
                                  run_analysis=False)
    engine = BacktestEngine(config=config)
    engine.add_venue(Venue("BINANCE"), oms_type=OmsType.NETTING,
                     account_type=AccountType.MARGIN, base_currency=USDT,
                     starting_balances=[Money(10_000_000, USDT)],
                     default_leverage=Decimal(1), book_type=BookType.L2_MBP)
    engine.add_instrument(instrument)
    return engine


def run_nautilus(path: str | Path = DEFAULT_CAPTURE, loops: int = 1) -> dict[str, Any]:
    """Replay ``path`` ``loops`` times through a BacktestEngine; counts and timings."""
    if loops < 1:
        raise ValueError(f"loops must be >= 1, got {loops}")
    cap = read_capture(path)
    instrument = TestInstrumentProvider.btcusdt_binance()
    books, trades, quotes = build_data(cap, instrument, loops)
    engine = _engine(instrument)
    try:
        for data in (books, trades, quotes):
            engine.add_data(data)
        strategy = ImbalanceStrategy(_strategy_config(instrument.id))
        engine.add_strategy(strategy)
        t0, c0 = time.perf_counter(), time.process_time()
        engine.run()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - c0
        filled = sum(1 for o in engine.cache.orders() if o.is_closed and o.filled_qty > 0)
        events = len(books) + len(trades) + len(quotes)
        frames = cap.frames * loops
        return {
            "events": events,
            "raw_frames": frames,
            "book_deltas": sum(len(d.deltas) for d in books),
            "book_updates_seen": strategy.updates,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "events_per_s": round(events / seconds, 1),
            "frames_per_s": round(frames / seconds, 1),
            "frames_per_cpu_s": round(frames / cpu, 1) if cpu > 0 else math.nan,
            "orders": strategy.orders_sent,
            "fills": strategy.fills,
            "orders_filled": filled,
            "loops": loops,
            "version": nautilus_trader.__version__,
        }
    finally:
        engine.dispose()


def markdown_line(r: dict[str, Any]) -> str:
    return (f"| NautilusTrader {r['version']} BacktestEngine (L2_MBP, imbalance strategy) "
            f"| {r['loops']} loops | {r['events']:,} data objects ({r['raw_frames']:,} raw "
            f"frames) | {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU "
            f"| {r['events_per_s']:,.0f} objects/s ({r['frames_per_s']:,.0f} raw frames/s; "
            f"{r['frames_per_cpu_s']:,.0f} per CPU-s) | {r['orders']} orders, "
            f"{r['orders_filled']} filled, {r['fills']} fill events |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", default=str(DEFAULT_CAPTURE))
    ap.add_argument("--loops", type=int, default=5)
    args = ap.parse_args(argv)
    print(markdown_line(run_nautilus(args.path, args.loops)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
