"""The composition root: builds a desk's runtime by constructor injection.

Every part gets what it needs when it is built and nothing is assigned to it afterwards:
the book keeper first (the engine fills it, trading reads it), then risk, the trader
(which builds its broker from a factory, handing it the book and position lookups and
its report callback), the engine and the strategies. ``Desk`` (live), ``backtest`` and the
benchmarks all start from :func:`build_runtime`.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from flightdesk.core.errors import ConfigError
from flightdesk.core.market.keeper import BookKeeper
from flightdesk.core.market.venue import Venue
from flightdesk.core.runtime.bus import Bus
from flightdesk.core.runtime.config import Config, check_plugin_table
from flightdesk.core.runtime.engine import EngineCore
from flightdesk.core.runtime.flush import FlushPolicy
from flightdesk.core.runtime.store_gate import StoreGate
from flightdesk.core.storage.store import Store
from flightdesk.core.trading.broker import PaperBroker
from flightdesk.core.trading.executor import PAPER, Executor
from flightdesk.core.trading.orders import IdMaker
from flightdesk.core.trading.portfolio import Portfolio
from flightdesk.core.trading.risk import RiskValidator
from flightdesk.core.trading.trader import Trader
from flightdesk.plugins.manager import Registry, collect, load_plugins, make_manager
from flightdesk.sdk.strategy import Strategy

Clock = Callable[[], int]


@dataclass(frozen=True)
class Runtime:
    """The parts of one desk, wired (see the module docstring)."""

    config: Config
    clock: Clock
    ids: IdMaker
    pm: pluggy.PluginManager
    registry: Registry
    bus: Bus
    store: Store
    #: the store's SQLite file or ADBC URI (the data-plane process opens it too)
    store_target: str | Path
    portfolio: Portfolio
    risk: RiskValidator
    trader: Trader
    engine: EngineCore
    #: halts new risk while the store cannot commit
    store_gate: StoreGate
    strategies: list[Strategy]
    #: the checked ``[venues.NAME]`` tables; venues are built when the desk starts
    venue_tables: dict[str, dict[str, Any]]
    #: venue -> its checked ``[executors.VENUE]`` table, for venues that do not use the
    #: paper broker (built once their venue has started: ``Desk.start_executors``)
    executor_tables: dict[str, dict[str, Any]]

    @property
    def broker(self) -> Executor:
        return self.trader.broker

    def build_venues(self) -> list[Venue]:
        """One :class:`Venue` per ``[venues.NAME]`` table (their feeds are not started)."""
        return [self.registry.venues[cfg["type"]](name, cfg)
                for name, cfg in self.venue_tables.items()]


def build_runtime(config: Config, plugins: Sequence[object] = (), clock: Clock | None = None,
                  run_id: str = "", replay_steps: int = 0, live: bool = False) -> Runtime:
    """Wire a desk from ``config``; ``replay_steps`` > 0 for a replay's flush policy (a
    replay always uses the paper broker); ``live`` is ``serve --live``: venue executors
    need it and ``[trading] live = true``."""
    clock = clock or time.time_ns
    pm = make_manager()
    for plugin in plugins:  # objects with @hookimpl functions, e.g. from a notebook
        pm.register(plugin)
    pm = load_plugins(pm)
    registry = collect(pm)
    desk, flight = config["desk"], config["flight"]
    data_dir = Path(desk["data_dir"])
    store_target: str | Path = config["store"]["uri"] or data_dir / config["store"]["path"]
    ids = IdMaker(run_id)
    portfolio = Portfolio()
    books = BookKeeper({})
    bus = Bus(int(flight["subscriber_buffer"]))
    store = Store(store_target, config["store"])
    risk = RiskValidator(config["risk"], registry.risk_rules)
    venue_tables, strategy_tables = _plugin_tables(registry, config)
    executor_tables = {} if replay_steps else executor_plan(registry, config, venue_tables,
                                                            live)
    broker = PaperBroker.routed if executor_tables else PaperBroker.factory
    trader = Trader(risk, broker(config["broker"], ids), portfolio, ids, books.synced, clock)
    gate = StoreGate(store, trader, backlog=replay_steps == 0)
    engine = EngineCore(books, bus, trader, store, depth_levels=int(desk["depth_levels"]),
                        policy=FlushPolicy(int(desk["max_batch_rows"]), replay_steps),
                        book_snapshot_s=float(flight["book_snapshot_s"]), gate=gate)
    strategies = [registry.strategies[cfg["type"]](name, cfg)
                  for name, cfg in strategy_tables.items()]
    return Runtime(config, clock, ids, pm, registry, bus, store, store_target, portfolio,
                   risk, trader, engine, gate, strategies, venue_tables, executor_tables)


def executor_plan(registry: Registry, config: Config, venues: dict[str, dict[str, Any]],
                  live: bool) -> dict[str, dict[str, Any]]:
    """venue -> checked ``[executors.VENUE]`` table (over its factory's ``DEFAULTS``) for
    every venue whose executor is not ``paper``; all problems at once. Venue executors
    send real orders: they need ``[trading] live = true`` and ``live`` (``serve --live``)."""
    problems: list[ConfigError] = []
    plan: dict[str, dict[str, Any]] = {}
    tables: dict[str, dict[str, Any]] = config["executors"]
    for name in tables:
        if name not in venues:
            problems.append(ConfigError(
                f"[executors.{name}] names no configured venue (venues: "
                f"{', '.join(sorted(venues))})", key=f"executors.{name}"))
    for venue in venues:
        table = dict(tables.get(venue) or {"type": config["trading"]["executor"]})
        kind = table.get("type", venue)
        if kind == PAPER:
            if len(table) > 1:
                problems.append(ConfigError(
                    f"[executors.{venue}] type 'paper' takes no other keys (the paper broker "
                    "is set in [broker])", key=f"executors.{venue}"))
            continue
        try:
            plan[venue] = plugin_table(registry, "executors", venue, table)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if plan and not (live and config["trading"]["live"]):
        which = ", ".join(f"{v} -> {t['type']}" for v, t in plan.items())
        problems.append(ConfigError(
            f"venue executors send real orders ({which}): that needs both "
            "[trading] live = true and `flightdesk serve --live` (or use executor 'paper')",
            key="trading.live"))
    if problems:
        raise ConfigError.collect(problems)
    return plan


def _plugin_tables(registry: Registry, config: Config
                   ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every ``[venues.*]`` and ``[strategies.*]`` table checked; all problems at once."""
    problems: list[ConfigError] = []
    checked: dict[str, dict[str, dict[str, Any]]] = {"venues": {}, "strategies": {}}
    for section, tables in checked.items():
        for name, table in config[section].items():
            try:
                tables[name] = plugin_table(registry, section, name, table)
            except ConfigError as exc:
                problems.extend(exc.problems)
    if problems:
        raise ConfigError.collect(problems)
    return checked["venues"], checked["strategies"]


def plugin_table(registry: Registry, section: str, name: str,
                 table: dict[str, Any]) -> dict[str, Any]:
    """``[section.name]`` checked against its registered type's ``DEFAULTS``."""
    kinds: dict[str, Any] = getattr(registry, section)
    kind = table.get("type", name)
    if kind not in kinds:
        close = difflib.get_close_matches(str(kind), list(kinds), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"[{section}.{name}] type {kind!r} is not registered{hint} "
                          f"(registered: {', '.join(sorted(kinds))})",
                          key=f"{section}.{name}.type")
    defaults = getattr(kinds[kind], "DEFAULTS", {})
    return check_plugin_table(section, name, table, defaults)
