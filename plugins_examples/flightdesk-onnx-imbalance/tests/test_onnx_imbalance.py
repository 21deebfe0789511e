"""The shipped model: size, metadata, its hit rate on a shipped out-of-sample slice, the
training script on a small synthetic recording, and the strategy trading in a desk."""

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from flightdesk_onnx_imbalance import train
from flightdesk_onnx_imbalance.plugin import MODEL, OnnxImbalance

import flightdesk

SLICE = Path(__file__).parent / "data" / "quotes_slice.arrow"
REPORT = json.loads(MODEL.with_name("model_report.json").read_text())


def test_model_is_small_and_carries_its_features():
    assert MODEL.stat().st_size < 100_000
    s = OnnxImbalance("m", OnnxImbalance.DEFAULTS)
    assert s.model.features == train.FEATURES == REPORT["features"]
    assert s.model.dtype is np.float32 and s.model.output == "score"


def test_hit_rate_on_the_shipped_out_of_sample_slice():
    table = pa.ipc.open_file(str(SLICE)).read_all()
    labels = table.column("label").to_numpy()
    batch = table.drop_columns(["label"]).combine_chunks().to_batches()[0]
    s = OnnxImbalance("m", OnnxImbalance.DEFAULTS)
    x = s.features.compute(batch)
    finite = np.isfinite(x).all(axis=1)
    score = np.where(finite, s.model.score(np.where(finite[:, None], x, 0.0)), 0.0)
    rate, n = train.hit_rate(score, labels, train.MIN_CONFIDENCE)
    assert n > 500
    assert rate > 0.6, f"hit rate {rate:.3f} on {n} rows"  # README: the full-test figure


def test_training_script_runs_on_a_small_recording(tmp_path):
    rng = np.random.default_rng(3)
    lines, mid, ts, regime = [], 100.0, 1_700_000_000_000_000_000, 1.0
    for i in range(3000):  # the heavier side persists, and the mid drifts its way
        ts += int(rng.integers(1, 50_000_000))
        regime = -regime if rng.random() < 0.02 else regime
        heavy, light = rng.uniform(2.0, 5.0), rng.uniform(0.1, 2.0)
        bq, aq = (heavy, light) if regime > 0 else (light, heavy)
        mid += 0.01 * regime if rng.random() < 0.3 else 0.0
        data = {"u": i, "s": "BTCUSDT", "b": f"{mid - 0.005:.3f}", "B": f"{bq:.4f}",
                "a": f"{mid + 0.005:.3f}", "A": f"{aq:.4f}"}
        lines.append(f"{ts} " + json.dumps({"stream": "btcusdt@bookTicker", "data": data}))
    data = tmp_path / "rec.gz"
    with gzip.open(data, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    out = tmp_path / "pkg" / "flightdesk_onnx_imbalance"
    out.mkdir(parents=True)
    train.main(["--data", str(data), "--out", str(out)])
    report = json.loads((out / "model_report.json").read_text())
    assert report["rows"] == 3000 and report["test_hit_rate@0"] > 0.6  # imbalance drives mid
    s = OnnxImbalance("m", {**OnnxImbalance.DEFAULTS, "model_path": str(out / "model.onnx")})
    assert s.model.features == train.FEATURES


def test_trades_in_a_desk_found_through_its_entry_point(tmp_path):
    config = {"desk": {"data_dir": str(tmp_path)}, "flight": {"enabled": False},
              "venues": {"sim": {"type": "sim", "rate": 400.0}},
              "strategies": {"nn": {"type": "onnx_imbalance", "venue": "sim"}}}
    with flightdesk.Engine(config) as eng:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not eng.status()["trading"].get("fills"):
            time.sleep(0.1)
        status = eng.status()
    assert status["strategies"][0]["signals"] > 0 and not status["strategies"][0]["quarantined"]
    assert status["trading"]["fills"] > 0
