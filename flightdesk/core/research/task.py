"""What a worker runs: one backtest of one (parameter combination, shard) pair, and the
scans that find a sweep's shards. Module-level functions of plain values, so a Dask
worker (or a local pool process) imports them by name and is handed locations, never data.

A task is idempotent: it first looks for its published ``summary.json`` (an earlier
attempt finished, then its worker died before reporting) and returns that; otherwise it
removes what a dead attempt left under a temporary name, runs the backtest in a scratch
directory of its own (the store is SQLite: it stays on the worker's local disk) and
publishes the results (:mod:`flightdesk.core.research.locations`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flightdesk.core.research import locations
from flightdesk.core.research.shards import Shard

#: what ``sweep.json`` keeps of a task's summary by default (deterministic: no timing)
RESULT_COLUMNS = ("pnl", "sharpe", "max_drawdown", "trades", "fill_ratio", "fees", "events")


class Interrupted(Exception):
    """The sweep was interrupted (Ctrl-C): a local task stops at its next progress tick."""


#: set in local pool processes to their sweep's interrupt flag (never on Dask workers)
should_stop: Callable[[], bool] = lambda: False  # noqa: E731 - replaced per process


@dataclass(frozen=True)
class Job:
    """What every task of a sweep shares. ``config_text`` is the ``--config`` file's
    content (workers need not see the client's files); ``out`` an absolute location."""

    strategy: str
    out: str
    config_text: str | None = None
    venue: str | None = None
    market: str | None = None
    batch_frames: int = 64
    #: each task's report.html: auto, plotly, plain or none (see ``run_backtest``)
    report: str = "auto"
    #: the summary keys a task's row of ``sweep.json`` keeps (None where a run has none)
    columns: tuple[str, ...] = RESULT_COLUMNS


@dataclass(frozen=True)
class Task:
    """One work unit: parameter combination ``run`` over ``shard`` of ``inputs``."""

    run: int
    params: dict[str, Any] = field(default_factory=dict)
    shard: Shard = field(default_factory=Shard)
    inputs: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Its results' directory under the sweep's: ``run-3`` or ``run-3/day=2024-08-08``."""
        return f"run-{self.run}/{self.shard.label}" if self.shard else f"run-{self.run}"

    def row(self, summary: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
        """Its line of ``sweep.json``: ``run`` is its results' directory."""
        head: dict[str, Any] = {"run": self.id}
        if self.shard:
            head["shard"] = self.shard.label
        return {**head, **self.params, **{c: summary.get(c) for c in columns}}


def run_task(job: Job, task: Task) -> dict[str, Any]:
    """Run (or find) ``task``'s backtest; its row and the run's timing."""
    if should_stop():
        raise Interrupted(f"{task.id}: not started, the sweep was interrupted")
    target = locations.join(job.out, task.id)
    fs_path = locations.resolve(target)
    published = locations.read_summary(target, fs_path)
    if published is None:
        locations.drop_temporaries(target, fs_path)
        summary = _backtest(job, task, target, fs_path)
    else:
        summary = json.loads(published)
    return {"task": task.id, "row": task.row(summary, job.columns),
            "timing": {"wall_s": summary["wall_s"], "events_per_s": summary["events_per_s"]}}


def _backtest(job: Job, task: Task, target: str, fs_path: tuple[Any, str]) -> dict[str, Any]:
    from flightdesk.core.runtime.backtest import run_backtest

    with tempfile.TemporaryDirectory(prefix="flightdesk-task-") as tmp:
        scratch = Path(tmp)
        inputs = [locations.stage(loc, scratch / "in") for loc in task.inputs]
        config = None
        if job.config_text is not None:
            config = scratch / "config.toml"
            config.write_text(job.config_text)
        out = scratch / "out"
        summary = run_backtest(inputs, job.strategy, out, config=config, params=task.params,
                               venue=job.venue, market=job.market,
                               batch_frames=job.batch_frames, progress=_check_stop,
                               shard=task.shard, report=job.report)
        summary["task"] = {"id": task.id, "params": task.params, "shard": task.shard.spec,
                           "inputs": list(task.inputs)}
        (out / locations.SUMMARY).write_text(json.dumps(summary, indent=2, default=str) + "\n")
        locations.publish(out, target, fs_path)
    return json.loads(json.dumps(summary, default=str))  # as a published one reads back


def _check_stop(done: int, total: int, elapsed: float) -> None:
    if should_stop():
        raise Interrupted("interrupted")


# -- scans ----------------------------------------------------------------------------------
def scan_days(location: str) -> list[str]:
    """The UTC days of one input (see :func:`flightdesk.core.research.scan.days_of`)."""
    from flightdesk.core.research.scan import days_of

    with tempfile.TemporaryDirectory(prefix="flightdesk-scan-") as tmp:
        return sorted(days_of(locations.stage(location, Path(tmp))))


def scan_instruments(job: Job, inputs: tuple[str, ...]) -> list[tuple[str, str]]:
    """The instruments of the inputs read together (see
    :func:`flightdesk.core.research.scan.instruments_of`)."""
    from flightdesk.core.research.scan import instruments_of

    with tempfile.TemporaryDirectory(prefix="flightdesk-scan-") as tmp:
        paths = [locations.stage(loc, Path(tmp)) for loc in inputs]
        return sorted(instruments_of(paths, job.venue, job.market))
