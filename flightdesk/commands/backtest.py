"""``flightdesk backtest INPUT... --strategy NAME --out DIR``: replay through the desk.

``--param key=v1,v2`` (repeatable) runs the grid of values as a sweep, one run per
combination under ``DIR/run-<n>/``, and writes ``DIR/sweep.json``, ``DIR/sweep.md`` and
``DIR/sweep.html`` (a sortable table and a heatmap over two parameters, ``--heatmap X,Y``;
see :mod:`flightdesk.core.runtime.report_sweep`). ``--split day|symbol`` makes one task
per combination and shard (``DIR/run-<n>/<shard>/``), ``--cluster ADDRESS`` runs the
tasks on a Dask cluster instead of local processes; see :mod:`flightdesk.core.research`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

from flightdesk.core.errors import ConfigError

SWEEP_COLUMNS = ("pnl", "sharpe", "sortino", "max_drawdown", "trades", "fill_ratio", "fees",
                 "events_per_s")
#: what sweep.json keeps: the results, not the timing (the same sweep gives the same file
#: wherever it ran); the tables add each run's events/s
RESULT_COLUMNS = (*(c for c in SWEEP_COLUMNS if c != "events_per_s"), "events")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("backtest", help="replay captures or normalized Parquet through the desk")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="raw captures (host, cryptofeed, hftbacktest), normalized Parquet "
                        "dirs or Tardis CSV: paths, or file://, s3://, gs:// URIs in a sweep")
    p.add_argument("--strategy", required=True, help="strategy type, or a name in --config")
    p.add_argument("--out", required=True,
                   help="output directory (in a sweep also a file://, s3://, gs:// URI)")
    p.add_argument("--config", help="TOML config (risk, broker, strategies...)")
    p.add_argument("--venue", help="venue of the captures when it cannot be detected")
    p.add_argument("--market", help="market of venues that have several (Binance: spot, "
                                    "usdm, coinm) when the captures do not show it")
    p.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                   help="strategy parameter values; repeat for a grid")
    p.add_argument("--batch-frames", type=int, default=64, help="frames per engine batch")
    p.add_argument("--heatmap", metavar="X,Y",
                   help="the two --param keys the sweep report's heatmap is drawn over "
                        "(default: the first two that take several values)")
    p.add_argument("--split", choices=("day", "symbol"),
                   help="one task per UTC day or per instrument of the inputs (each "
                        "starting flat) and parameter combination")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run the sweep's tasks on Dask: a scheduler (tcp://HOST:8786) or "
                        "local:N (N local worker processes); needs flightdesk[cluster]")
    p.add_argument("--retries", type=int, default=0,
                   help="times a task that raised is run again (a task whose worker died "
                        "is rerun by the scheduler anyway)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="parallel sweep runs without --cluster")
    p.add_argument("--report", choices=("auto", "plotly", "plain", "none"), default="auto",
                   help="each run's report.html: Plotly when installed (auto), Plotly, the "
                        "plain SVG page, or none (a large sweep: its summaries and tables are "
                        "the results; the sweep report is still written)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> list[dict[str, Any]]:
    """``["a=1,2", "b=x"]`` -> ``[{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]``."""
    from flightdesk.core.runtime.config import env_overrides

    axes: list[tuple[str, list[Any]]] = []
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--param {item!r} must look like key=v1,v2")
        parsed = [env_overrides({f"FLIGHTDESK_X__{key.upper()}": v})["x"][key.lower()]
                  for v in values.split(",")]
        axes.append((key, parsed))
    return [dict(zip([k for k, _ in axes], combo, strict=True))
            for combo in itertools.product(*[v for _, v in axes])]


def run(args: argparse.Namespace) -> int:
    grid = parse_params(args.param)
    if len(grid) > 1 or args.split or args.cluster:
        return sweep(args, grid)
    summary = _one(args, args.out, grid[0] if grid else {}, not args.quiet)
    print(json.dumps({k: summary[k] for k in ("pnl", "trades", "events_per_s")}))
    if args.report != "none":
        print(f"wrote {Path(args.out) / 'report.html'}")
    return 0


def sweep(args: argparse.Namespace, grid: list[dict[str, Any]]) -> int:
    """The grid (x shards) as tasks on local processes or a Dask cluster; exit status 1
    names each failed task with its error, 130 after Ctrl-C."""
    from flightdesk.core.research import locations
    from flightdesk.core.research.runners import connect
    from flightdesk.core.research.sweep import (
        SweepInterrupted,
        TaskBar,
        execute,
        plan,
        write_results,
    )
    from flightdesk.core.research.task import Job
    from flightdesk.core.runtime.report_sweep import heatmap_axes, write_sweep

    axes = heatmap_axes(args.heatmap, grid)  # a bad --heatmap fails before the runs
    if args.retries < 0:
        raise ConfigError(f"--retries must be >= 0, not {args.retries}")
    job = Job(args.strategy, locations.absolute(args.out), _config_text(args.config),
              args.venue, args.market, args.batch_frames, args.report, RESULT_COLUMNS)
    inputs = [locations.absolute(i) for i in args.inputs]
    runner = connect(args.cluster, args.jobs)
    try:
        if args.split and not args.quiet:
            print(f"finding the {args.split}s of {len(inputs)} inputs", file=sys.stderr)
        tasks = plan(runner, job, inputs, grid, args.split)
        outcome = execute(runner, job, tasks, None if args.quiet else TaskBar(), args.retries)
    except SweepInterrupted as stop:
        print(f"flightdesk: interrupted: {stop.cancelled} tasks cancelled, {stop.finished} "
              f"finished results kept in {args.out}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # while the inputs were scanned
        print("flightdesk: interrupted before any task started", file=sys.stderr)
        return 130
    finally:
        runner.close()
    if outcome.rows:
        print(write_results(job.out, outcome,
                            lambda d, rows: write_sweep(d, rows, list(grid[0]), axes)))
        print(f"wrote {locations.join(args.out, 'sweep.json')}")
    for task_id, error in outcome.failures.items():
        print(f"flightdesk: task {task_id} failed: {error}", file=sys.stderr)
    return 1 if outcome.failures else 0


def _config_text(path: str | None) -> str | None:
    """The ``--config`` file's text (tasks get it, not its path), checked here first."""
    if path is None:
        return None
    from flightdesk.core.runtime.config import load_config

    load_config(path)
    return Path(path).read_text(encoding="utf-8")


def _one(args: argparse.Namespace, out: str, params: dict[str, Any],
         show: bool) -> dict[str, Any]:
    from flightdesk.core.runtime.backtest import run_backtest

    summary = run_backtest(args.inputs, args.strategy, out, config=args.config,
                           params=params, venue=args.venue, market=args.market,
                           batch_frames=args.batch_frames, report=args.report,
                           progress=_bar if show else None)
    if show:  # end the progress line (a streamed input has no known total)
        print(file=sys.stderr)
    return summary


def _bar(done: int, total: int, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        eta = (total - done) / rate if rate > 0 else 0.0
        filled = int(30 * done / total)
        text = (f"\r[{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} events "
                f"{rate:,.0f}/s ETA {eta:,.0f}s ")
    else:
        text = f"\r{done:,} events {rate:,.0f}/s "
    print(text, end="", file=sys.stderr, flush=True)
