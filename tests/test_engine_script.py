"""`flightdesk.Engine` from a plain Python script, in its own process."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json, sys, time
    import flightdesk

    cfg = {"desk": {"data_dir": sys.argv[1]}, "flight": {"port": 0},
           "venues": {"sim": {"type": "sim", "rate": 500.0}},
           "strategies": {"imb": {"type": "threshold", "venue": "sim",
                                  "imbalance_threshold": 0.2, "min_confidence": 0.0}}}
    with flightdesk.Engine(cfg) as eng:
        deadline = time.monotonic() + 60
        while eng.status()["trading"].get("fills", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        positions = eng.positions()
        fills = eng.fills()
        eng.kill()
        status = eng.status()
        print(json.dumps({"uri": eng.flight_uri, "fills": fills.num_rows,
                          "positions": positions.to_pylist(),
                          "killed": status["kill_switch"],
                          "books": sorted(status["books"])}))
""")


def test_engine_runs_from_a_plain_script(tmp_path):
    script = tmp_path / "run_desk.py"
    script.write_text(SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["uri"].startswith("grpc://127.0.0.1:")
    assert out["fills"] > 0
    assert out["killed"] is True
    assert out["books"] == ["sim:BTCUSDT", "sim:ETHUSDT"]
    held = {p["symbol"]: p["qty"] for p in out["positions"]}
    assert any(abs(q) > 0 for q in held.values())
    assert (tmp_path / "data" / "flightdesk.sqlite").exists()
