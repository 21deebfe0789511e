"""The backtest and sweep reports, opened in headless Chromium with the network off.

A real ``flightdesk backtest`` (a subprocess, on the recorded Binance session) and a real
2 x 2 sweep write their pages; the browser (``tests/browser.py``) opens them from disk in
DevTools' offline mode with every non-local request blocked, and checks what a reader
would: no console errors, every chart drawn with data, buy and sell fills in the legend,
one time axis for the four timeline charts, tables that sort when a header is clicked.
Screenshots are kept in ``tests/artifacts/`` (or ``$FLIGHTDESK_ARTIFACTS``); the run's
summary prints their paths.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flightdesk.core import schemas
from flightdesk.core.runtime.backtest import Curve
from flightdesk.core.runtime.report import write_report
from flightdesk.core.runtime.report_plotly import MAX_FILLS, MAX_POINTS, minmax_thin
from flightdesk.core.storage.history_writer import write_partitioned
from tests.browser import artifact_dir
from tests.fixtures.recorded import DATA
from tests.test_backtest import synthetic_quotes

BINANCE = DATA / "binance" / "btcusdt_20240808.gz"

#: every Plotly chart on the page: its traces, how many finite values each holds, how many
#: of its points were drawn, and the legend's entries
CHARTS_JS = """Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
  id: gd.id,
  traces: gd._fullData.map(t => ({name: t.name, type: t.type,
    n: (t.type === 'heatmap' ? t.z.flat() : Array.from(t.y)).filter(Number.isFinite).length})),
  drawn: gd.querySelectorAll('.scatterlayer .trace, .barlayer .point, .hm image').length,
  legend: Array.from(gd.querySelectorAll('.legendtext')).map(e => e.textContent)}))"""


def column(page, table: str, col: int) -> list[str]:
    return page.eval(f"Array.from(document.querySelectorAll('{table} tbody tr'))"
                     f".map(r => r.cells[{col}].dataset.v)")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flightdesk", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def backtest_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not BINANCE.exists():
        pytest.skip(f"recorded data {BINANCE} is absent (expected ../shared/data)")
    out = tmp_path_factory.mktemp("report") / "bt"
    proc = cli("backtest", str(BINANCE), "--strategy", "threshold", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def sweep_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    write_partitioned(synthetic_quotes(5_000), root / "norm", "quotes", "t")
    proc = cli("backtest", str(root / "norm"), "--strategy", "threshold", "--out",
               str(root / "out"), "--quiet", "--jobs", "2",
               "--param", "imbalance_threshold=0.4,0.8", "--param", "holding_period_ms=200,1000")
    assert proc.returncode == 0, proc.stderr
    assert (root / "out" / "sweep.html").exists()
    return root / "out"


@pytest.fixture(scope="module")
def report_page(browser, backtest_out):
    """The backtest's report, opened once (5 MB of page): the tests that only read it come
    first in this file, the one that sorts a table and the one that zooms come last."""
    page = browser.open((backtest_out / "report.html").as_uri(), offline=True)
    page.wait_for("document.querySelectorAll('.js-plotly-plot').length >= 2")
    yield page
    page.close()


def test_backtest_report_draws_every_chart_offline(report_page, backtest_out):
    page = report_page
    charts = {c["id"]: c for c in page.eval(CHARTS_JS)}
    assert set(charts) == {"timeline", "markouts"}
    for chart in charts.values():
        assert chart["traces"] and all(t["n"] > 0 for t in chart["traces"]), chart
        assert chart["drawn"] >= len(chart["traces"]), chart
    timeline = charts["timeline"]
    names = [t["name"] for t in timeline["traces"]]
    assert names[:4] == ["equity", "drawdown", "position", "mid"]
    assert any(e.startswith("buy fills") for e in timeline["legend"])
    assert any(e.startswith("sell fills") for e in timeline["legend"])
    fills = pq.read_table(backtest_out / "fills.parquet")
    shown = sum(t["n"] for t in timeline["traces"] if " fills (" in t["name"])
    assert shown == fills.num_rows  # every fill is a marker (fewer than MAX_FILLS here)
    page.screenshot(artifact_dir() / "backtest_report.png")
    assert page.console_errors == [] and page.blocked_requests == []
    assert page.failed_requests == []


def test_report_shows_ratios_as_na_for_a_short_run_and_tables_not_dict_text(report_page,
                                                                            backtest_out):
    summary = json.loads((backtest_out / "summary.json").read_text())
    assert summary["sharpe"] is None and summary["sortino"] is None  # 345 s < 30 minutes
    assert summary["ratio_interval_s"] == 60 and summary["ratio_periods"] == 5
    page = report_page
    figures = dict(page.eval("Array.from(document.querySelectorAll('#figures tbody tr'))"
                             ".map(r => [r.cells[0].textContent, r.cells[1].textContent])"))
    assert figures["Sharpe"] == "n/a" and figures["Sortino"] == "n/a"
    assert figures["fills"] == f"{summary['trades']:,}"
    text = page.eval("document.body.innerText")
    assert "{'" not in text and "sqrt(365 x 86,400" in text  # no dict dumps; how it's annualized
    assert page.eval("document.querySelectorAll('table.sortable').length") >= 4


def test_report_tables_sort_when_a_header_is_clicked(report_page):
    assert_sorts_by_price(report_page)
    assert report_page.console_errors == []


def assert_sorts_by_price(page) -> None:
    """Clicking the fills table's price header sorts it ascending, then descending."""
    assert page.eval("document.querySelector('#fills th:nth-child(7)').textContent") == "price"
    before = [float(v) for v in column(page, "#fills", 6)]
    page.click("#fills th:nth-child(7)")
    ascending = [float(v) for v in column(page, "#fills", 6)]
    assert ascending == sorted(before) and ascending != before
    page.click("#fills th:nth-child(7)")
    assert [float(v) for v in column(page, "#fills", 6)] == sorted(before, reverse=True)


def test_the_timeline_is_one_utc_time_axis_that_zooms_together(report_page, backtest_out):
    page = report_page
    axes = page.eval("""(() => { const l = document.getElementById('timeline')._fullLayout;
        return ['xaxis', 'xaxis2', 'xaxis3', 'xaxis4'].map(a => [l[a].type, l[a].range]); })()""")
    assert [t for t, _ in axes] == ["date"] * 4
    start = page.eval("document.getElementById('timeline')._fullLayout.xaxis.range[0]")
    first = pq.read_table(backtest_out / "fills.parquet").column("ts")[0].as_py() / 1e9
    shown = dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc).timestamp()
    assert abs(shown - first) < 60, (start, first)  # the recording's UTC time, not seconds
    zoomed = page.eval("""(async () => { const gd = document.getElementById('timeline');
        await Plotly.relayout(gd, {'xaxis4.range': ['2024-08-08 23:56', '2024-08-08 23:57']});
        return ['xaxis', 'xaxis2', 'xaxis3'].map(a => gd._fullLayout[a].range); })()""")
    assert all(r[0].startswith("2024-08-08 23:56") for r in zoomed), zoomed
    assert page.console_errors == []


def test_sweep_report_has_a_heatmap_with_data_and_a_sortable_table(browser, sweep_out):
    rows = json.loads((sweep_out / "sweep.json").read_text())
    page = browser.open((sweep_out / "sweep.html").as_uri(), offline=True)
    page.wait_for("document.querySelectorAll('.js-plotly-plot').length == 1")
    (chart,) = page.eval(CHARTS_JS)
    (heat,) = chart["traces"]
    assert heat["type"] == "heatmap" and heat["n"] == 4 and chart["drawn"] == 1
    z = page.eval("document.getElementById('sweep-chart')._fullData[0].z")
    by_cell = {(r["holding_period_ms"], r["imbalance_threshold"]): r["pnl"] for r in rows}
    assert z == [[pytest.approx(by_cell[(h, t)]) for t in (0.4, 0.8)] for h in (200, 1000)]
    pnl_col = list(rows[0]).index("pnl")
    page.click(f"#sweep th:nth-child({pnl_col + 1})")
    shown = [float(v) for v in column(page, "#sweep", pnl_col)]
    assert shown == sorted(r["pnl"] for r in rows)
    runs = page.eval("Array.from(document.querySelectorAll('#sweep tbody a'))"
                     ".map(a => a.getAttribute('href'))")
    assert sorted(runs) == [f"run-{i}/report.html" for i in range(4)]
    assert all((sweep_out / r).exists() for r in runs)
    page.screenshot(artifact_dir() / "sweep_report.png")
    assert page.console_errors == [] and page.blocked_requests == []


def test_a_heatmap_over_an_unknown_parameter_is_refused_before_any_run(tmp_path):
    proc = cli("backtest", str(tmp_path), "--strategy", "threshold", "--out",
               str(tmp_path / "o"), "--param", "imbalance_threshold=0.4,0.8",
               "--heatmap", "imbalance_threshold,nope")
    assert proc.returncode == 2
    assert "--heatmap 'imbalance_threshold,nope' must name two different --param keys" \
        in proc.stderr and "(this sweep has: imbalance_threshold)" in proc.stderr
    assert not (tmp_path / "o").exists()


BLOCKED = """import sys, json
sys.modules["plotly"] = None  # as if flightdesk[report] were not installed
from pathlib import Path
from flightdesk.cli import main
from flightdesk.core.runtime.report_sweep import write_sweep
out = Path(sys.argv[1])
assert main(["backtest", sys.argv[2], "--strategy", "threshold", "--out", str(out),
             "--quiet"]) == 0
rows = [{"run": "run-0", "a": 1, "b": 2, "pnl": 1.5}, {"run": "run-1", "a": 2, "b": 2,
        "pnl": -0.5}]
write_sweep(out, rows, ["a", "b"], ["a", "b"])
"""


def test_without_plotly_the_plain_report_is_written_and_still_works(browser, tmp_path):
    write_partitioned(synthetic_quotes(2_000), tmp_path / "norm", "quotes", "t")
    proc = subprocess.run([sys.executable, "-c", BLOCKED, str(tmp_path / "out"),
                           str(tmp_path / "norm")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "out" / "report.html").read_text()
    assert report.count("<svg") == 4 and "Plotly" not in report
    assert "<circle" in report and "flightdesk[report]" in report  # fills, and the hint
    sweep = (tmp_path / "out" / "sweep.html").read_text()
    assert "Plotly" not in sweep and 'id="sweep"' in sweep
    page = browser.open((tmp_path / "out" / "report.html").as_uri(), offline=True)
    assert page.eval("document.querySelectorAll('svg polyline').length") == 4
    assert_sorts_by_price(page)
    assert page.console_errors == [] and page.blocked_requests == []


def test_a_day_of_samples_and_many_fills_make_a_report_of_sane_size(tmp_path):
    n = 864_000  # a day at the curve's 100 ms step
    rng = np.random.default_rng(1)
    ts = 1_700_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000
    curve = Curve(ts=ts.tolist(), equity=np.cumsum(rng.normal(0, 1, n)).tolist(),
                  position=np.sign(rng.normal(size=n)).tolist(),
                  mid=(100 + np.cumsum(rng.normal(0, 0.01, n))).tolist())
    k = 50_000
    fills = pa.table({"fill_id": [f"f{i}" for i in range(k)],
                      "order_id": [f"o{i}" for i in range(k)], "ts": ts[::n // k][:k],
                      "venue": ["sim"] * k, "symbol": ["XYZ"] * k,
                      "side": ["buy", "sell"] * (k // 2), "price": np.full(k, 100.0),
                      "qty": np.ones(k), "fee": np.full(k, 0.01), "liquidity": ["taker"] * k,
                      "strategy": ["s"] * k, "seq": np.arange(k)})
    summary = {"strategy": "s", "markouts": {}, "pnl": 1.0}
    positions = pa.table({"strategy": ["s"], "venue": ["sim"], "symbol": ["XYZ"], "qty": [1.0],
                          "avg_price": [100.0], "realized_pnl": [0.0],
                          "unrealized_pnl": [0.0], "fees": [0.0], "seq": [1]})
    orders = schemas.schema("orders").empty_table()
    path = tmp_path / "report.html"
    assert write_report(path, summary, curve, {"fills": fills, "orders": orders,
                                               "positions": positions}) == "plotly"
    size = path.stat().st_size
    assert size < 7_500_000, size  # plotly.js is ~4.8 MB of it
    text = path.read_text()
    step = -(-(k // 2) // MAX_FILLS)  # 25,000 buys shown as every 13th
    assert f"buy fills (every {step}th of 25,000)" in text
    assert "The first 1,000 of 50,000 fills; all of them are in fills.parquet" in text


def test_thinning_keeps_the_extremes_and_bounds_the_points():
    rng = np.random.default_rng(5)
    y = np.cumsum(rng.normal(size=500_000))
    y[123_457] = y.max() + 50  # a spike thinning must not lose
    keep = minmax_thin(y)
    assert len(keep) <= MAX_POINTS and np.all(np.diff(keep) > 0)
    assert y[keep].max() == y.max() and y[keep].min() == y.min()
    assert keep[0] == 0 and keep[-1] == y.size - 1
    assert minmax_thin(y[:100]).tolist() == list(range(100))  # short series untouched
