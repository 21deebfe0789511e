"""Persistence gates trading: a real desk whose store stops committing halts new risk at
once, is not ready, resumes when commits succeed, and loses no fill across a restart."""

import contextlib
import json
import threading
import urllib.error
import urllib.request

import adbc_driver_sqlite.dbapi as sqlite_dbapi
import pyarrow.flight as fl
import pytest

import flightdesk
from tests.fixtures.flight import start_desk
from tests.fixtures.small_disk import fill, small_filesystem
from tests.fixtures.waiting import wait_for

FAST = {"type": "threshold", "venue": "sim", "imbalance_threshold": 0.05,
        "min_confidence": 0.0, "holding_period_ms": 0}


def sql(path, query):
    with sqlite_dbapi.connect(str(path)) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def ready(url):
    try:
        with urllib.request.urlopen(url + "/ready", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def opened(status):
    """Orders risk approved (every submitted order is approved or rejected)."""
    trading = status["trading"]
    return trading.get("orders", 0) - trading.get("rejected", 0)


def collect_fills(uri, into):
    reader = fl.connect(uri).do_get(fl.Ticket(b'{"stream": "fills", "mode": "live"}'))
    with contextlib.suppress(Exception):  # the stream ends when the desk stops
        while True:
            into.extend(reader.read_chunk().data.column("fill_id").to_pylist())


@contextlib.contextmanager
def failing_store(kind, tmp_path):
    """Where the desk keeps its data, and ``(break_it, heal_it)`` for its store."""
    if kind == "disk_full":
        with small_filesystem(tmp_path / "data", "16m") as disk:
            filler = []
            yield disk, (lambda eng: filler.append(fill(disk)),
                         lambda eng: filler.pop().unlink())
    else:
        def disk_full():
            raise OSError("database or disk is full")

        def break_it(eng):
            eng.desk.store.fault = disk_full

        def heal_it(eng):
            eng.desk.store.fault = None

        yield tmp_path / "data", (break_it, heal_it)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["disk_full", "fault"])
def test_a_failing_store_halts_new_risk_and_loses_no_fill(tmp_path, kind):
    with failing_store(kind, tmp_path) as (data_dir, (break_it, heal_it)):
        eng = start_desk(tmp_path, 1500.0, desk={"data_dir": str(data_dir)},
                         strategies={"fast": FAST},
                         store={"flush_ms": 5, "metrics_interval_ms": 200},
                         telemetry={"health": True, "health_port": 0})
        streamed: list[str] = []
        reader = threading.Thread(target=collect_fills, args=(eng.flight_uri, streamed),
                                  daemon=True)
        reader.start()
        try:
            url = eng.desk.health.url
            wait_for(lambda: eng.status()["trading"].get("fills", 0) >= 10, timeout=60,
                     what="the desk trading")
            break_it(eng)
            status = wait_for(lambda: (s := eng.status())["store_gate"]["holding"] and s,
                              timeout=10, what="new risk halted")
            failing_since = status["store"]["failing_since"]
            assert status["risk_mode"]["mode"] == "halted"
            assert "store cannot commit" in status["risk_mode"]["reason"]
            assert "disk is full" in status["store"]["last_error"]
            assert status["store_gate"]["halt_lag_ms"] < 1000  # measured: a few ms
            assert status["open_orders"] == 0  # cancelled at the halt
            code, body = ready(url)
            assert code == 503 and body["store"] is False
            assert "store cannot commit" in body["reason"]
            # the strategy keeps signalling; not one more order is opened
            halted_at = opened(status)
            rejected = status["trading"].get("rejected_halted", 0)
            wait_for(lambda: eng.status()["trading"].get("rejected_halted", 0) > rejected + 20,
                     timeout=30, what="signals rejected while halted")
            later = eng.status()
            assert opened(later) == halted_at
            assert later["store"]["rows_written"] == status["store"]["rows_written"]
            assert later["store"]["failing_since"] == failing_since

            heal_it(eng)
            back = wait_for(lambda: (s := eng.status())["store_gate"]["holding"] is False
                            and s, timeout=10, what="the desk resuming")
            assert back["risk_mode"] == {"mode": "active", "reason": ""}
            assert back["store"]["healthy"] and back["store"]["errors"] > 0
            wait_for(lambda: opened(eng.status()) > halted_at, timeout=30,
                     what="new orders after the store came back")
            wait_for(lambda: ready(url)[0] == 200, what="ready again")
            eng.kill()
        finally:
            eng.stop()
            reader.join(10)
        db = data_dir / "flightdesk.sqlite"
        trading = eng.desk.trader.counters
        stored = [r[0] for r in sql(db, "SELECT fill_id FROM fills")]
        assert len(stored) == len(set(stored)) == trading["fills"]  # every fill reported
        assert set(streamed) <= set(stored) and streamed  # streamed only after the commit
        tables = ("orders", "fills", "positions", "events", "runs", "performance_metrics",
                  "strategy_snapshots")
        assert eng.desk.store.rows_written == sum(sql(db, f"SELECT count(*) FROM {t}")[0][0]
                                                  for t in tables)
        events = [r[0] for r in sql(db, "SELECT detail FROM events WHERE kind = 'store' "
                                        "ORDER BY rowid")]
        assert len(events) == 2
        assert events[0].startswith("halted: store cannot commit")
        assert events[1].startswith("recovered after") and events[1].endswith("desk active")
        before = {f"{v}:{s}": p.qty for (v, s), p in eng.desk.portfolio.positions.items()}
        expected: dict[str, float] = {}
        for venue, symbol, side, qty in sql(db, "SELECT venue, symbol, side, qty FROM fills"):
            key = f"{venue}:{symbol}"
            expected[key] = expected.get(key, 0.0) + (qty if side == "buy" else -qty)

        again = flightdesk.Engine({"desk": {"data_dir": str(data_dir)},
                                   "flight": {"enabled": False},
                                   "venues": {"sim": {"rate": 1.0}}}).start()
        try:
            assert again.status()["recovered_fills"] == len(stored)
            after = {f"{r['venue']}:{r['symbol']}": r["qty"]
                     for r in again.positions().to_pylist()}
        finally:
            again.stop()
    assert set(before) == set(expected)
    for key, qty in before.items():  # the desk's positions == the stored fills == restart
        assert expected[key] == pytest.approx(qty, abs=1e-9)
        assert after.get(key, 0.0) == pytest.approx(qty, abs=1e-9)


def test_a_hold_sits_on_top_of_the_desk_mode():
    from flightdesk.core.trading.risk import DeskMode, RiskValidator
    from tests.fixtures.market import LOOSE

    r = RiskValidator({**LOOSE, "daily_loss_limit": 100.0, "loss_action": "reducing"})
    assert r.hold("store cannot commit: disk full") and not r.hold("store cannot commit: x")
    assert r.mode is DeskMode.HALTED and r.mode_reason == "store cannot commit: x"
    assert r.update_pnl(-150.0, 1) is None  # a loss stop meanwhile applies beneath the hold
    assert r.mode is DeskMode.HALTED and r.base_mode[0] is DeskMode.REDUCING
    assert r.release() is DeskMode.REDUCING and r.mode_reason.startswith("daily loss")
    assert r.release() is None and not r.held
    r.hold("store backlog")
    r.reset_mode()  # an operator's reset while held: active once released
    assert r.mode is DeskMode.HALTED and r.release() is DeskMode.ACTIVE


def test_a_store_backlog_past_high_water_halts_and_resumes_with_hysteresis(tmp_path):
    from flightdesk.core.runtime.compose import build_runtime
    from flightdesk.core.runtime.config import load_config

    rt = build_runtime(load_config(overrides={
        "desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
        "store": {"queue_size": 10, "high_water": 0.5, "flush_ms": 1}}))
    gate, store = rt.store_gate, rt.store  # the writer is not started: the queue backs up
    for i in range(4):
        store.submit("events", [{"ts": i, "kind": "x", "venue": "", "symbol": "",
                                 "detail": ""}])
    rt.engine.flush()
    assert not gate.holding
    store.submit("events", [{"ts": 5, "kind": "x", "venue": "", "symbol": "", "detail": ""}])
    rt.engine.flush()
    assert gate.holding and gate.reason.startswith("store backlog")
    assert rt.risk.mode.value == "halted"
    store.start()
    assert store.flush()
    rt.engine.flush()  # releases at half the high-water mark (here: at once, all written)
    assert not gate.holding and rt.risk.mode.value == "active"
    store.flush()
    rt.engine.flush()
    store.close()
    kinds = [r["detail"].split(":")[0].split(" ")[0] for r in store.read("events").to_pylist()
             if r["kind"] == "store"]
    assert kinds == ["halted", "recovered"]


def test_orders_refused_while_the_store_is_down_do_not_pile_up_rows():
    """A strategy keeps signalling through a long outage: its refused orders are counted,
    not buffered row by row (memory would otherwise grow for as long as the outage)."""
    from tests.fixtures.market import Market

    market = Market()
    market.place("buy", 0.1)
    before = {k: len(v) for k, v in market.trader.take_rows().items()}
    assert before.get("orders")  # an order writes rows normally
    market.trader.risk.hold("store cannot commit: database or disk is full")
    for _ in range(1_000):
        market.place("buy", 0.1)
    assert not any(market.trader.take_rows().values())
    assert market.trader.counters["rejected_unrecorded"] == 1_000
    assert market.trader.counters["rejected_halted"] == 1_000
    market.trader.risk.release()
    market.place("buy", 0.1)
    assert market.trader.take_rows().get("orders")  # recorded again once released
