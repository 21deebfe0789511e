"""``flightdesk backtest``: replay data through the desk and summarize what it did.

The run is a real :class:`~flightdesk.core.runtime.desk.Desk` on a :class:`ReplayClock` with a
fixed run id, so the same inputs and config give byte-identical ``fills.parquet``. Outputs
in ``--out``: ``orders``/``fills``/``positions`` Parquet, ``backtest.sqlite`` (the store,
queryable), ``summary.json`` and ``report.html``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flightdesk.core import schemas
from flightdesk.core.errors import ConfigError
from flightdesk.core.market.events import MarketEvent
from flightdesk.core.research.shards import Shard
from flightdesk.core.runtime.compose import Runtime
from flightdesk.core.runtime.config import load_config
from flightdesk.core.storage.captures import CaptureRecord, merge_captures
from flightdesk.core.storage.replay import (
    CaptureDriver,
    ReplayClock,
    has_book,
    normalized_steps,
    quote_batches,
    replay_normalized,
    replay_quotes,
)
from flightdesk.core.storage.tardis import is_tardis_csv, tardis_steps

if TYPE_CHECKING:
    from flightdesk.core.runtime.desk import Desk

#: what ``report`` may be: Plotly when installed, Plotly, the plain SVG page, no page
REPORTS = ("auto", "plotly", "plain", "none")


@dataclass
class Curve:
    """Equity, position and mid sampled on the data clock (at most every ``step_ns``)."""

    step_ns: int = 100_000_000
    ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)
    mid: list[float] = field(default_factory=list)

    def sample(self, ts: int, equity: float, position: float, mid: float) -> None:
        if self.ts and ts - self.ts[-1] < self.step_ns:
            return
        self.ts.append(ts)
        self.equity.append(equity)
        self.position.append(position)
        self.mid.append(mid)


def is_normalized(path: Path) -> bool:
    return path.is_dir() and ((path / "quotes").exists() or any(path.glob("**/*.parquet")))


class Replayer:
    """A desk's runtime on a :class:`ReplayClock`, fed by one of the replays of
    :mod:`flightdesk.core.storage.replay`: ``start()``, ``run*()``, ``finish()``."""

    def __init__(self, desk: Desk, clock: ReplayClock, venue: str | None = None,
                 market: str | None = None) -> None:
        self.desk = desk
        self.rt: Runtime = desk.rt
        self.clock = clock
        self.driver = CaptureDriver(self.rt.engine, self.rt.registry.venues, clock, venue,
                                    market)

    def start(self) -> Replayer:
        self.rt.store.start()
        self.desk.start_strategies()
        return self

    def run(self, records: Iterable[CaptureRecord]) -> int:
        """Raw capture records; the number of frames and snapshots fed."""
        return self.driver.run(records)

    def run_normalized(self, steps: Iterable[tuple[int, list[MarketEvent]]]) -> int:
        return replay_normalized(self.rt.engine, self.clock, steps)

    def run_quotes(self, batches: Iterable[pa.RecordBatch]) -> int:
        return replay_quotes(self.rt.engine, self.clock, batches)

    def finish(self) -> None:
        core = self.rt.engine
        if core.step_ts >= 0:  # the last flush happens at the data's last step, however
            self.clock.now = core.step_ts  # many records without market data followed it
        core.flush()
        for slot in core.slots:
            slot.strategy.on_stop()
        self.rt.store.flush(timeout=60)
        self.rt.store.close(timeout=60)


def run_backtest(inputs: Iterable[str | Path], strategy: str, out: str | Path,
                 config: str | Path | None = None, params: Mapping[str, Any] | None = None,
                 venue: str | None = None, batch_frames: int = 64,
                 progress: Callable[[int, int, float], None] | None = None,
                 market: str | None = None, shard: Shard | None = None,
                 report: str = "auto") -> dict[str, Any]:
    """Run one backtest; write the outputs into ``out``; return the summary.

    ``batch_frames`` is the replay's flush policy: the strategies run every that many data
    steps (captured frames that carried market data), whether the input is a raw capture
    or the normalized Parquet of one, so both give the same fills. ``shard`` (a sweep's
    work unit: one UTC day, one instrument) is selected while the inputs are read, see
    :mod:`flightdesk.core.research.shards`. ``report``: ``auto`` (Plotly when installed),
    ``plotly``, ``plain`` or ``none`` (no report.html)."""
    from flightdesk.core.runtime.desk import Desk

    if report not in REPORTS:
        raise ConfigError(f"report must be one of {', '.join(REPORTS)}, not {report!r}")
    from flightdesk.core.runtime.report import plotly_available

    if report == "plotly" and not plotly_available():
        raise ConfigError("report 'plotly' needs the plotly package: "
                          "pip install 'flightdesk[report]' (or use --report plain)")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("backtest.sqlite", "backtest.sqlite-wal", "backtest.sqlite-shm"):
        (out / name).unlink(missing_ok=True)
    cfg = _config(config, strategy, params or {}, out)
    clock = ReplayClock()
    desk = Desk(cfg, clock=clock, run_id="bt", replay_steps=batch_frames)
    rt = desk.rt
    curve = Curve()
    rt.engine.flush_listeners.append(lambda: _sample(rt, curve, clock.now))
    replay = Replayer(desk, clock, venue=venue, market=market).start()
    part = shard or Shard()  # Shard(): the whole input, handed through untouched
    replay.driver.factories = part.venue_factories(replay.driver.factories)
    paths = [Path(p) for p in inputs]
    t0 = time.perf_counter()
    try:
        if all(is_normalized(p) for p in paths) and has_book(paths):
            steps = part.steps(normalized_steps(paths, part.row_filter if part else None))
            records = replay.run_normalized(_progress(steps, progress, t0))
        elif all(is_normalized(p) for p in paths):
            batches = quote_batches(paths, chunk_rows=batch_frames,  # a row is a step
                                    where=part.row_filter if part else None)
            records = replay.run_quotes(_progress(batches, progress, t0, rows=True))
        elif _tardis(paths):  # Tardis.dev CSV datasets: their rows are events already
            steps = part.steps(tardis_steps(paths))
            records = replay.run_normalized(_progress(steps, progress, t0))
        else:  # streamed: a k-way merge of the captures, memory bounded whatever their size
            records = replay.run(_progress(part.records(merge_captures(paths)), progress, t0))
    finally:
        replay.finish()
    wall = time.perf_counter() - t0
    tables = {t: rt.store.read(t) for t in ("orders", "fills", "positions")}
    for name, table in tables.items():
        pq.write_table(schemas.conform(name, table), out / f"{name}.parquet")
    summary = summarize(rt, curve, tables, records, wall, strategy)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    from flightdesk.core.runtime.redact import redact_config
    from flightdesk.core.runtime.report import write_report

    if report == "none":  # a sweep of many tasks: the summary and tables are the result
        return summary
    ran = cfg.to_dict()  # with each strategy's table as it ran (defaults filled in)
    ran["strategies"].update({s.name: dict(s.strategy.config) for s in rt.engine.slots})
    write_report(out / "report.html", summary, curve, tables, redact_config(ran),
                 interactive={"auto": None, "plotly": True, "plain": False}[report])
    return summary


def _config(path: Any, strategy: str, params: Mapping[str, Any], out: Path) -> Any:
    base = load_config(path) if path else None
    table: dict[str, Any] = {}
    if base is not None and strategy in base["strategies"]:
        table = dict(base["strategies"][strategy])
    table.setdefault("type", strategy)
    table.pop("venue", None)  # a replay carries whatever venues the data holds
    table.update(params)
    overrides = {"desk": {"data_dir": str(out)}, "flight": {"enabled": False},
                 "store": {"path": "backtest.sqlite", "recover": False,
                           "metrics_interval_ms": 0},
                 "strategies": {strategy: table}}
    return load_config(path, overrides=overrides, env={})


def _tardis(paths: list[Path]) -> bool:
    """Whether the inputs are Tardis CSV files (all of them; a mix is refused)."""
    tardis = [is_tardis_csv(p) for p in paths]
    if any(tardis) and not all(tardis):
        raise ConfigError("a backtest reads Tardis CSV files or captures, not both: "
                          + ", ".join(str(p) for p, t in zip(paths, tardis, strict=True)
                                      if not t) + " are not Tardis CSV")
    return all(tardis)


def _progress(items: Iterable[Any], report: Callable[[int, int, float], None] | None,
              t0: float, total: int = 0, rows: bool = False) -> Iterable[Any]:
    if report is None:
        yield from items
        return
    done = 0
    last = 0.0
    for item in items:
        yield item
        done += item.num_rows if rows else 1
        now = time.perf_counter()
        if now - last > 0.5:
            last = now
            report(done, total, now - t0)
    report(done, total, time.perf_counter() - t0)


def _sample(rt: Runtime, curve: Curve, ts: int) -> None:
    portfolio = rt.portfolio
    totals = portfolio.totals()
    pos = next(iter(portfolio.positions.values()), None)
    mid = pos.mark if pos is not None else math.nan
    if pos is None and rt.engine.books.books:
        bp, _, ap, _ = next(iter(rt.engine.books.books.values())).top()
        mid = (bp + ap) / 2
    curve.sample(ts, totals["pnl"], pos.qty if pos else 0.0, mid)


def summarize(rt: Runtime, curve: Curve, tables: dict[str, pa.Table], records: int,
              wall: float, strategy: str) -> dict[str, Any]:
    """PnL, Sharpe/Sortino (see :mod:`.report_metrics`), drawdown, trades, fill ratio,
    fees, markouts and speed of a run."""
    from flightdesk.core.runtime.report_metrics import risk_ratios

    ratios = risk_ratios(curve.ts, curve.equity)
    totals = rt.portfolio.totals()
    equity = np.asarray(curve.equity, dtype=np.float64)
    drawdown = float(np.max(np.maximum.accumulate(equity) - equity)) if equity.size else 0.0
    orders = tables["orders"]
    statuses = orders.column("status").to_pylist() if orders.num_rows else []
    accepted = statuses.count("accepted")
    filled = statuses.count("filled") + statuses.count("partially_filled")
    span = (curve.ts[-1] - curve.ts[0]) / 1e9 if len(curve.ts) > 1 else 0.0
    return {
        "strategy": strategy,
        "pnl": totals["pnl"], "realized_pnl": totals["realized_pnl"],
        "unrealized_pnl": totals["unrealized_pnl"], "fees": totals["fees"],
        "sharpe": ratios.sharpe, "sortino": ratios.sortino,
        "ratio_interval_s": ratios.interval_s, "ratio_periods": ratios.periods,
        "max_drawdown": drawdown,
        "orders": statuses.count("new"), "rejected": statuses.count("rejected"),
        "trades": tables["fills"].num_rows,
        "fill_ratio": filled / accepted if accepted else 0.0,
        "markouts": rt.trader.markout_summary(),
        "positions": {f"{p.venue}:{p.symbol}": p.qty for p in rt.portfolio.positions.values()},
        "events": records, "wall_s": round(wall, 3),
        "events_per_s": round(records / wall, 1) if wall > 0 else 0.0,
        "data_span_s": round(span, 3),
        "engine": dict(rt.engine.counters),
        "risk_rejections": {k: v for k, v in rt.trader.counters.items()
                            if k.startswith("rejected_")},
    }
