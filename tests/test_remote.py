"""Remote strategies: the same Strategy class in another process, over do_exchange."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as fl
import pytest

import flightdesk
from flightdesk.core import schemas
from flightdesk.core.errors import TicketError
from flightdesk.core.flight.exchange import parse_exchange
from tests.fixtures.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
sys.path.insert(0, {root!r})
import flightdesk.remote
from tests.fixtures.strategies import Flipper
res = flightdesk.remote.run({url!r}, Flipper, {{"venue": "ven", "symbols": ["BTCUSDT"]}},
                            name="flipper")
print("RESULT", res.batches, res.signals, flush=True)
"""


def remote_desk(tmp_path):
    """A desk with no strategy of its own (the venue is not the embedded one)."""
    return flightdesk.Engine({"desk": {"data_dir": str(tmp_path)}, "flight": {"port": 0},
                              "venues": {"ven": {"type": "sim", "rate": 300.0}}})


def flipper_orders(eng):
    orders = eng.orders()
    return orders.filter(pc.equal(orders["strategy"], "flipper"))


def filled(eng) -> int:
    """How many of the flipper's orders are filled (0 before any order row exists)."""
    return pc.sum(pc.equal(flipper_orders(eng)["status"], "filled")).as_py() or 0


def test_remote_signals_become_orders_and_kill_stops_them(tmp_path):
    eng = remote_desk(tmp_path).start()
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(root=str(ROOT),
                                                                 url=eng.flight_uri)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: "flipper" in {s["name"] for s in eng.status()["strategies"]})
        slot = next(s for s in eng.status()["strategies"] if s["name"] == "flipper")
        assert slot["type"] == "remote"
        assert wait_for(lambda: filled(eng) > 2, what="three filled flipper orders")
        assert set(flipper_orders(eng)["symbol"].to_pylist()) == {"BTCUSDT"}
        remote = next(s.strategy for s in eng.desk.core.slots if s.name == "flipper")
        eng.desk.enable_strategy("flipper", False)  # the `strategies` action switches it off
        # a signal dropped after the switch: every earlier one has become its orders (the
        # engine thread runs them in turn, market orders fill at once)
        wait_for(lambda: remote.dropped > 0, what="a signal dropped by the switched-off remote")
        off = flipper_orders(eng).num_rows
        assert wait_for(lambda: remote.dropped > 3)  # its signals arrive and are dropped
        assert flipper_orders(eng).num_rows == off
        eng.desk.enable_strategy("flipper", True)
        assert wait_for(lambda: flipper_orders(eng).num_rows > off)
        eng.kill(True)
        fills_at_kill = eng.fills().num_rows
        seen = flipper_orders(eng).num_rows
        assert wait_for(lambda: flipper_orders(eng).num_rows > seen + 6)
        after = flipper_orders(eng).slice(seen + 2)  # an order may be in flight at the kill
        assert set(after["status"].to_pylist()) <= {"new", "rejected"}
        assert "kill_switch" in " ".join(r or "" for r in after["reason"].to_pylist())
        assert eng.fills().num_rows == fills_at_kill
    finally:
        eng.stop()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    batches, signals = map(int, out.split("RESULT", 1)[1].split())
    assert batches > 5 and signals == batches
    assert "flipper" not in {s["name"] for s in eng.desk.strategies()}


def test_a_wrong_schema_batch_quarantines_the_remote_with_a_clear_error(tmp_path):
    with remote_desk(tmp_path) as eng:
        client = fl.connect(eng.flight_uri)
        desc = fl.FlightDescriptor.for_command(json.dumps({"strategy": "bad"}).encode())
        writer, reader = client.do_exchange(desc)
        bad = pa.RecordBatch.from_pydict({"ts": [1], "venue": ["ven"], "symbol": ["BTCUSDT"],
                                          "side": ["buy"], "strength": ["very"]})
        writer.begin(bad.schema)
        assert "hello" in json.loads(reader.read_chunk().app_metadata.to_pybytes())
        assert reader.read_chunk().data.num_rows > 0
        writer.write_with_metadata(bad, pa.py_buffer(b'{"ack": 1}'))
        with pytest.raises(fl.FlightServerError, match="strategy bad quarantined.*signals "
                                                       "batch lacks required column 'strategy'"):
            while True:
                reader.read_chunk()
        with pytest.raises(fl.FlightServerError):  # the writer reports the same error
            writer.close()
        client.close()
        assert wait_for(lambda: eng.status()["engine"].get("quarantines_schema", 0) == 1)


def test_exchange_descriptor_errors():
    assert parse_exchange(b'{"strategy": "x"}').subscribe.stream == "quotes"
    req = parse_exchange(b'{"strategy": "x", "subscribe": {"stream": "trades", '
                         b'"symbols": ["BTCUSDT"]}}')
    assert (req.subscribe.stream, req.subscribe.symbols) == ("trades", ("BTCUSDT",))
    with pytest.raises(TicketError, match="unknown key 'strategyy'"):
        parse_exchange(b'{"strategyy": "x"}')
    with pytest.raises(TicketError, match='needs "strategy"'):
        parse_exchange(b'{"subscribe": {}}')
    with pytest.raises(TicketError, match="live quotes, trades or book"):
        parse_exchange(b'{"strategy": "x", "subscribe": {"stream": "fills"}}')


def test_duplicate_names_and_bad_descriptors_are_refused(tmp_path):
    with remote_desk(tmp_path) as eng:
        client = fl.connect(eng.flight_uri)
        desc = fl.FlightDescriptor.for_command(b'{"strategy": "dup"}')
        w1, r1 = client.do_exchange(desc)
        w1.begin(schemas.schema("signals"))
        assert "hello" in json.loads(r1.read_chunk().app_metadata.to_pybytes())
        w2, r2 = client.do_exchange(desc)
        with pytest.raises(fl.FlightServerError, match="strategy 'dup' already runs"):
            r2.read_chunk()
        w3, r3 = client.do_exchange(fl.FlightDescriptor.for_command(b'{"strategyy": "x"}'))
        with pytest.raises(fl.FlightServerError, match="unknown key 'strategyy'"):
            r3.read_chunk()
        w1.done_writing()
        for w in (w1, w2, w3):
            try:
                w.close()
            except fl.FlightError:  # the refused exchanges report their error again
                pass
        client.close()
