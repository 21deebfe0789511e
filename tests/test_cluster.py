"""Backtest sweeps as tasks: on local processes and on a real Dask cluster (``dask
scheduler`` and ``dask worker`` processes on 127.0.0.1), split by UTC day or instrument.

The day split runs on two day files made from the recorded Binance session: its first
1,500 lines as recorded (2024-08-08) and its first 2,000 lines moved one day on
(2024-08-09), times and update ids shifted, so each day starts with its REST snapshot.
One cluster (a scheduler, two workers) serves the module; the test that kills a worker
runs last on it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from flightdesk.core.errors import ConfigError
from flightdesk.core.research import locations
from flightdesk.core.research.shards import Shard
from flightdesk.core.research.task import Job, Task, run_task
from tests.fixtures.dask_cluster import DaskProcesses
from tests.fixtures.recorded import DATA, needs_recording, shifted_copies
from tests.fixtures.waiting import wait_for

BINANCE = DATA / "binance"
pytestmark = [
    pytest.mark.cluster, needs_recording("binance", "btcusdt_20240808.gz"),
    pytest.mark.skipif(importlib.util.find_spec("distributed") is None,
                       reason="Dask is not installed (pip install 'flightdesk[cluster]')"),
]
GRID = ["--param", "imbalance_threshold=0.2,0.4,0.6", "--param", "holding_period_ms=500,1000"]
DAYS = ("day=2024-08-08", "day=2024-08-09")
TASKS = {f"run-{r}/{d}" for r in range(6) for d in DAYS}
RESULT_FILES = {"summary.json", "fills.parquet", "orders.parquet", "positions.parquet",
                "report.html", "backtest.sqlite"}


def backtest(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdesk", "backtest", *args],
                          capture_output=True, text=True, timeout=timeout)


def sweep_args(days: Sequence[object], out: object, *extra: str) -> list[str]:
    return [*map(str, days), "--strategy", "threshold", "--out", str(out), "--split", "day",
            *GRID, "--quiet", *extra]


def task_dirs(out: Path) -> set[str]:
    return {p.parent.relative_to(out).as_posix() for p in out.glob("run-*/*/summary.json")}


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".tmp-" in p.name]


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two UTC days: the recording's first 1,500 lines, then its first 2,000 a day later."""
    return shifted_copies(BINANCE / "btcusdt_20240808.gz", tmp_path_factory.mktemp("days"),
                          [1500, 2000], 86_400 * 10**9, "btcusdt-{k}.gz")


@pytest.fixture(scope="module")
def local_sweep(days: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sweep without --cluster: 6 combinations x 2 days in local processes."""
    out = tmp_path_factory.mktemp("local") / "sweep"
    proc = backtest(*sweep_args(days, out, "--jobs", "2"))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> DaskProcesses:
    dask = DaskProcesses(tmp_path_factory.mktemp("dask"))
    try:
        yield dask.start(workers=2)
    finally:
        dask.stop()


def test_a_sweep_on_a_dask_cluster_equals_the_same_sweep_in_local_processes(
        days: list[Path], local_sweep: Path, cluster: DaskProcesses, tmp_path: Path) -> None:
    out = tmp_path / "cluster"
    uris = [p.as_uri() for p in days]  # file:// URIs in, a file:// URI out
    proc = backtest(*sweep_args(uris, out.as_uri(), "--cluster", cluster.address))
    assert proc.returncode == 0, proc.stderr
    assert (out / "sweep.json").read_text() == (local_sweep / "sweep.json").read_text()
    rows = json.loads((out / "sweep.json").read_text())
    assert {r["run"] for r in rows} == TASKS and len(rows) == 12
    by_day = {r["shard"]: r["events"] for r in rows if r["run"].startswith("run-0/")}
    assert by_day[DAYS[0]] < by_day[DAYS[1]]  # each shard replayed its own day only
    assert task_dirs(out) == TASKS
    for task in TASKS:  # a task's fills are the same bytes wherever it ran
        fills = (out / task / "fills.parquet").read_bytes()
        assert fills == (local_sweep / task / "fills.parquet").read_bytes()
        assert pq.read_table(out / task / "fills.parquet").num_rows > 0
    summary = json.loads((out / "run-3" / DAYS[1] / "summary.json").read_text())
    assert summary["task"]["shard"] == {"day": "2024-08-09"}
    assert summary["task"]["params"] == {"imbalance_threshold": 0.4, "holding_period_ms": 1000}
    assert summary["task"]["inputs"] == [uris[1]]  # a day reads only its own day's files


def test_a_failing_task_is_named_with_its_error_and_the_others_finish(
        days: list[Path], cluster: DaskProcesses, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = backtest(*map(str, days), "--strategy", "threshold", "--out", str(out), "--split",
                    "day", "--param", "holding_period_ms=500,abc", "--quiet",
                    "--cluster", cluster.address)
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert len(failed) == 2
    for day in DAYS:
        assert (f"flightdesk: task run-1/{day} failed: ConfigError: [strategies.threshold] "
                f"holding_period_ms must be an integer, got 'abc'") in failed
    rows = json.loads((out / "sweep.json").read_text())
    assert [r["run"] for r in rows] == [f"run-0/{d}" for d in DAYS]
    assert task_dirs(out) == {f"run-0/{d}" for d in DAYS}


def test_a_worker_killed_mid_task_has_its_task_rerun_and_each_result_written_once(
        days: list[Path], local_sweep: Path, cluster: DaskProcesses, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    w1 = cluster.tmpdir("w1")  # a task's scratch directory appears there as it starts
    before = set(w1.glob("flightdesk-task-*"))
    proc = subprocess.Popen([sys.executable, "-m", "flightdesk", "backtest",
                             *sweep_args(days, out, "--cluster", cluster.address)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: set(w1.glob("flightdesk-task-*")) - before, 120,
                 "a task to start on w1")
        cluster.kill("w1")
        _, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert (out / "sweep.json").read_text() == (local_sweep / "sweep.json").read_text()
    assert task_dirs(out) == TASKS
    for task in TASKS:
        assert {p.name for p in (out / task).iterdir()} == RESULT_FILES
    assert temporaries(out) == []


def test_local_n_runs_the_sweep_on_a_local_cluster_of_its_own(
        days: list[Path], local_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"  # the grid's first combination only: run-0 of the local sweep
    proc = backtest(*map(str, days), "--strategy", "threshold", "--out", str(out), "--split",
                    "day", "--param", "imbalance_threshold=0.2", "--param",
                    "holding_period_ms=500", "--quiet", "--cluster", "local:2")
    assert proc.returncode == 0, proc.stderr
    local = json.loads((local_sweep / "sweep.json").read_text())
    assert json.loads((out / "sweep.json").read_text()) == local[:2]
    for day in DAYS:
        assert (out / "run-0" / day / "fills.parquet").read_bytes() == (
            local_sweep / "run-0" / day / "fills.parquet").read_bytes()


def test_ctrl_c_cancels_what_has_not_started_and_keeps_finished_results(
        days: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "flightdesk", "backtest",
                             *sweep_args(days, out, "--jobs", "1")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(task_dirs(out)) >= 2, 120, "two results")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    line, = stderr.strip().splitlines()
    m = re.fullmatch(rf"flightdesk: interrupted: (\d+) tasks cancelled, (\d+) finished "
                     rf"results kept in {re.escape(str(out))}", line)
    assert m, line
    cancelled, finished = int(m[1]), int(m[2])
    kept = task_dirs(out)
    assert finished >= 1 and cancelled >= 1 and finished + cancelled == 12
    assert finished <= len(kept) < 12
    for task in kept:  # whatever is there is whole
        assert {p.name for p in (out / task).iterdir()} == RESULT_FILES
    assert temporaries(out) == [] and not (out / "sweep.json").exists()


def test_split_by_symbol_runs_one_flat_desk_per_instrument(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    proc = backtest(str(BINANCE / "BINANCE.ws.1.0"), str(BINANCE / "BINANCE.http.0.0"),
                    "--strategy", "threshold", "--out", str(out), "--split", "symbol",
                    "--quiet", "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads((out / "sweep.json").read_text())
    symbols = ["BLZETH", "LRCBTC", "NKNUSDT", "RUNEEUR"]
    assert [r["shard"] for r in rows] == [f"symbol=binance.{s}" for s in symbols]
    traded = 0
    for row, symbol in zip(rows, symbols, strict=True):
        for table in ("fills", "positions"):
            seen = pq.read_table(out / row["run"] / f"{table}.parquet").column("symbol")
            assert set(seen.to_pylist()) <= {symbol}
        traded += row["trades"]
    assert traded > 0


# -- the parts, in process ------------------------------------------------------------------
def test_a_task_keeps_a_published_result_and_clears_what_a_dead_attempt_left(
        days: list[Path], tmp_path: Path) -> None:
    job = Job("threshold", str(tmp_path / "out"))
    task = Task(0, {}, Shard(day="2024-08-08"), (str(days[0]),))
    dead = tmp_path / "out" / "run-0" / ".day=2024-08-08.tmp-deadbeef0000"
    dead.mkdir(parents=True)
    (dead / "fills.parquet").write_bytes(b"half")
    first = run_task(job, task)
    assert not dead.exists()
    assert first["row"]["run"] == "run-0/day=2024-08-08" and first["row"]["trades"] > 0
    fills = (tmp_path / "out" / task.id / "fills.parquet").stat()
    again = run_task(job, task)  # a rerun after the result was published: found, not redone
    assert again == first
    assert (tmp_path / "out" / task.id / "fills.parquet").stat().st_mtime_ns == fills.st_mtime_ns


def test_a_second_publish_of_the_same_result_is_refused_and_leaves_nothing(
        tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "summary.json").write_text("{}")
    (src / "fills.parquet").write_bytes(b"x")
    target = str(tmp_path / "out" / "run-0")
    assert locations.publish(src, target) is True
    assert locations.publish(src, target) is False
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["run-0"]


def test_results_on_a_non_local_filesystem_are_uploaded_summary_last(tmp_path: Path) -> None:
    """A pyarrow filesystem that is not the local one (a sub-tree of a local directory,
    standing in for an object store, which cannot be reached offline)."""
    (tmp_path / "store" / "in").mkdir(parents=True)
    (tmp_path / "store" / "in" / "capture.gz").write_bytes(b"data")
    remote = pafs.SubTreeFileSystem(str(tmp_path / "store"), pafs.LocalFileSystem())
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "summary.json").write_text('{"pnl": 1.0}')
    (src / "sub" / "a.txt").write_text("a")
    assert locations.read_summary("x", (remote, "out/run-0")) is None
    assert locations.publish(src, "x", (remote, "out/run-0")) is True
    assert locations.read_summary("x", (remote, "out/run-0")) == '{"pnl": 1.0}'
    assert (tmp_path / "store" / "out" / "run-0" / "sub" / "a.txt").read_text() == "a"
    staged = locations.stage("x", tmp_path / "scratch", (remote, "in/capture.gz"))
    assert staged.read_bytes() == b"data" and staged.is_relative_to(tmp_path / "scratch")
    with pytest.raises(Exception, match="not found"):
        locations.stage("mem://in/none.gz", tmp_path / "scratch", (remote, "in/none.gz"))


def test_shard_specs_round_trip_and_bad_ones_are_refused() -> None:
    shard = Shard.from_spec({"venue": "kraken", "symbol": "XBT/CHF"})
    assert shard.label == "symbol=kraken.XBT%2FCHF" and shard.spec == {
        "venue": "kraken", "symbol": "XBT/CHF"}
    assert Shard(day="2024-08-09").window == (1_723_161_600 * 10**9, 1_723_248_000 * 10**9)
    assert not Shard() and Shard().label == ""
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        Shard(day="08/09/2024")
    with pytest.raises(ConfigError, match="both venue and symbol"):
        Shard(symbol="BTCUSDT")
    with pytest.raises(ConfigError, match="unknown shard keys"):
        Shard.from_spec({"hour": "3"})


def test_cluster_addresses_are_checked_before_anything_runs(tmp_path: Path) -> None:
    for address, why in (("localhost:8786", "give a Dask scheduler address"),
                         ("local:0", "needs N >= 1")):
        proc = backtest(str(tmp_path), "--strategy", "threshold", "--out",
                        str(tmp_path / "o"), "--cluster", address, timeout=60)
        assert proc.returncode == 2 and why in proc.stderr


def test_the_pyarrow_example_of_the_docs_reads_a_sweep(local_sweep: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "cluster.md").read_text()
    code, = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert 'Path("sweep-out")' in code
    exec(code.replace('Path("sweep-out")', f"Path({str(local_sweep)!r})"), {})
    assert "run-5/day=2024-08-09" in capsys.readouterr().out
