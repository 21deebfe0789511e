"""A backtest sweep: plan its work units, run them, gather ``sweep.json`` and ``sweep.md``.

One task per (parameter combination x input shard), the same units with or without a
cluster, so results compare. Results: ``OUT/run-<n>/`` per combination (``OUT/run-<n>/
<shard>/`` per shard with ``--split``), each what one backtest writes (``summary.json``,
``fills``/``orders``/``positions`` Parquet, ``report.html``, ``backtest.sqlite``). The
client gathers the rows the tasks return — never their data — into ``OUT/sweep.json``
(results only, in task order, so the same sweep gives the same file wherever it ran) and
``OUT/sweep.md`` (with each task's events/s).

A sweep first removes the results it is about to write (an older sweep's would otherwise
be taken for a finished attempt) and the sweep files (they are written when it has ended);
a task that fails is reported by name with its error;
Ctrl-C cancels what has not started and keeps every result already published.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from flightdesk.core.errors import ConfigError
from flightdesk.core.research import locations
from flightdesk.core.research.runners import Runner
from flightdesk.core.research.shards import Shard
from flightdesk.core.research.task import Job, Task, run_task, scan_days, scan_instruments

SPLITS = ("day", "symbol")
#: the sweep-wide files, removed when a sweep starts and written when it has ended
SWEEP_FILES = ("sweep.json", "sweep.md", "sweep.html")
#: how often the progress bar is redrawn (and the scheduler asked what runs)
TICK_S = 0.5


@dataclass
class Outcome:
    """What a sweep produced: rows and timings by task id, failures as ``id -> error``."""

    tasks: list[Task]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """``sweep.json``: finished tasks' rows, in task order."""
        return [self.results[t.id]["row"] for t in self.tasks if t.id in self.results]

    @property
    def table_rows(self) -> list[dict[str, Any]]:
        """The tables' rows: ``sweep.json``'s with each run's events/s."""
        return [{**self.results[t.id]["row"],
                 "events_per_s": self.results[t.id]["timing"]["events_per_s"]}
                for t in self.tasks if t.id in self.results]


class SweepInterrupted(Exception):
    """Ctrl-C: ``finished`` tasks kept, ``cancelled`` not run."""

    def __init__(self, finished: int, cancelled: int) -> None:
        super().__init__(f"{finished} finished, {cancelled} cancelled")
        self.finished = finished
        self.cancelled = cancelled


# -- planning -------------------------------------------------------------------------------
def plan(runner: Runner, job: Job, inputs: Sequence[str], grid: Sequence[dict[str, Any]],
         split: str | None) -> list[Task]:
    """The work units: every combination of ``grid`` over every shard of ``inputs``."""
    shards = find_shards(runner, job, tuple(inputs), split)
    if not shards:
        raise ConfigError(f"--split {split}: the inputs hold no market data to split")
    return [Task(run, dict(params), shard, ins)
            for run, params in enumerate(grid) for shard, ins in shards]


def find_shards(runner: Runner, job: Job, inputs: tuple[str, ...], split: str | None
                ) -> list[tuple[Shard, tuple[str, ...]]]:
    """``(shard, the inputs it reads)`` pairs, scanned by the runner's workers (they can
    read the inputs, and the client may not): a day reads the inputs with data that day;
    an instrument reads them all (a capture interleaves its instruments)."""
    if split is None:
        return [(Shard(), inputs)]
    if split == "day":
        futures = [runner.submit(scan_days, loc, key=f"scan-{uuid.uuid4().hex}")
                   for loc in inputs]
        days = [set(f.result()) for f in futures]
        return [(Shard(day=day), tuple(loc for loc, d in zip(inputs, days, strict=True)
                                       if day in d))
                for day in sorted(set().union(*days))]
    if split == "symbol":
        found = runner.submit(scan_instruments, job, inputs,
                              key=f"scan-{uuid.uuid4().hex}").result()
        return [(Shard(venue=v, symbol=s), inputs) for v, s in found]
    raise ValueError(f"split {split!r} is not one of {SPLITS}")


# -- running --------------------------------------------------------------------------------
def execute(runner: Runner, job: Job, tasks: list[Task], bar: TaskBar | None = None,
            retries: int = 0) -> Outcome:
    """Run ``tasks`` (each retried up to ``retries`` times when it raises; a task whose
    worker died is rerun by the scheduler itself). Raises :class:`SweepInterrupted` on
    Ctrl-C, after cancelling what has not started."""
    for name in (*SWEEP_FILES, *(t.id for t in tasks)):
        locations.clear(locations.join(job.out, name))
    outcome = Outcome(tasks)
    sweep = uuid.uuid4().hex[:8]
    attempts = dict.fromkeys((t.id for t in tasks), 0)

    def submit(task: Task) -> Any:
        attempts[task.id] += 1
        key = f"backtest-{sweep}-{task.id}-{attempts[task.id]}"
        return runner.submit(run_task, job, task, key=key)

    pending = {submit(t): t for t in tasks}
    start = time.monotonic()
    try:
        while pending:
            for future in runner.wait(pending, TICK_S):
                task = pending.pop(future)
                error = future.exception()
                if error is None:
                    outcome.results[task.id] = future.result()
                elif attempts[task.id] <= retries:
                    pending[submit(task)] = task
                else:
                    outcome.failures[task.id] = f"{type(error).__name__}: {error}"
            if bar is not None:
                bar.show(len(outcome.results), runner.running(pending),
                         len(outcome.failures), len(tasks), time.monotonic() - start)
    except KeyboardInterrupt:
        for future in [f for f in pending if f.done() and f.exception() is None]:
            outcome.results[pending.pop(future).id] = future.result()  # finished meanwhile
        runner.cancel(pending)
        raise SweepInterrupted(len(outcome.results), len(pending)) from None
    finally:
        if bar is not None:
            bar.close()
    return outcome


class TaskBar:
    """One line on stderr over a sweep's tasks: done, running, failed, ETA."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.shown = False

    def show(self, done: int, running: int, failed: int, total: int, elapsed: float) -> None:
        finished = done + failed
        eta = elapsed / finished * (total - finished) if finished else 0.0
        filled = int(30 * finished / total) if total else 30
        text = (f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} tasks done, "
                f"{running} running, {failed} failed, ETA {eta:,.0f}s ")
        print(text, end="", file=self.stream, flush=True)
        self.shown = True

    def close(self) -> None:
        if self.shown:
            print(file=self.stream, flush=True)
            self.shown = False


# -- gathering ------------------------------------------------------------------------------
#: ``page(directory, rows)``: writes more of a sweep's files (its HTML page) into a local
#: directory, from the rows with each run's events/s
Page = Callable[[Path, list[dict[str, Any]]], None]


def write_results(out: str, outcome: Outcome, page: Page | None = None) -> str:
    """The sweep's files under ``out``; the Markdown table (the CLI prints it).

    ``sweep.json`` holds the rows (results only), ``sweep.md`` the rows with each run's
    events/s (and the totals per run of a split sweep), ``page`` adds what it writes; every
    file goes to ``out`` (replaced atomically on a local filesystem)."""
    rows = outcome.rows
    with tempfile.TemporaryDirectory(prefix="flightdesk-sweep-") as tmp:
        staged = Path(tmp)
        text = markdown(outcome.table_rows)
        if any("shard" in r for r in rows):
            text += "\n\nTotals over each run's shards:\n\n" + markdown(totals(rows))
        (staged / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
        (staged / "sweep.md").write_text(text + "\n")
        if page is not None:
            page(staged, outcome.table_rows)
        for file in sorted(staged.iterdir()):
            locations.write_text(out, file.name, file.read_text(encoding="utf-8"))
    return text


def totals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per run: shards, summed pnl/trades/fees/events, the worst shard's drawdown."""
    runs: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row["run"].split("/")[0]
        run = runs.setdefault(name, {"run": name, "shards": 0, "pnl": 0.0,
                                           "max_drawdown": 0.0, "trades": 0, "fees": 0.0,
                                           "events": 0})
        run["shards"] += 1
        for key in ("pnl", "trades", "fees", "events"):
            run[key] += row.get(key) or 0
        run["max_drawdown"] = max(run["max_drawdown"], row.get("max_drawdown") or 0.0)
    return list(runs.values())


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in cols) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.6g}" if isinstance(value, float) else str(value)
