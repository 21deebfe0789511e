"""Train the shipped model on the recorded Binance BTCUSDT session (numpy + onnx.helper only).

    python -m flightdesk_onnx_imbalance.train [--data ../shared/data/binance/btcusdt_20240808.gz]

1. Quotes from the recording's ``bookTicker`` messages (best bid/ask and sizes, stamped with
   the local receive time), as a flightdesk ``quotes`` batch.
2. Features with flightdesk's own :class:`flightdesk.FeatureSet` (the same code the strategy
   runs in the desk): ``FEATURES``.
3. Label: the sign of the mid's change over the next ``HORIZON_MS`` (rows with no change, or
   too close to the end, are left out).
4. Split by time: the first 70 % trains, the last 30 % is out of sample.
5. Logistic regression on standardized features by gradient descent (numpy).
6. Export ``score = tanh(z / 2) = 2 * sigmoid(z) - 1`` as ONNX with the feature names and the
   standardization in the model metadata, plus ``model_report.json`` and the test slice.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
from onnx import TensorProto, helper, numpy_helper

import flightdesk
from flightdesk import schemas

FEATURES = ["imbalance", "imbalance_mean@1000", "momentum@1000", "volatility@1000", "spread_bps"]
HORIZON_MS = 1000
MIN_CONFIDENCE = 0.2
HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[2].parent / "shared" / "data" / "binance" / "btcusdt_20240808.gz"
SLICE_ROWS = 2500


def read_book_ticker(path: Path) -> pa.RecordBatch:
    """The recording's bookTicker messages as a ``quotes`` batch."""
    ts, b, bq, a, aq = [], [], [], [], []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            stamp, _, raw = line.partition(" ")
            if '"bookTicker"' not in raw[:60] and "@bookTicker" not in raw[:60]:
                continue
            d = json.loads(raw)["data"]
            ts.append(int(stamp))
            b.append(float(d["b"]))
            bq.append(float(d["B"]))
            a.append(float(d["a"]))
            aq.append(float(d["A"]))
    return quotes_batch(np.array(ts, np.int64), np.array(b), np.array(bq), np.array(a),
                        np.array(aq))


def quotes_batch(ts: np.ndarray, bid: np.ndarray, bid_qty: np.ndarray, ask: np.ndarray,
                 ask_qty: np.ndarray) -> pa.RecordBatch:
    f = flightdesk.features
    n = ts.size
    cols = {"ts_event": ts, "ts_recv": ts, "seq": np.arange(1, n + 1, dtype=np.int64),
            "venue": ["binance"] * n, "symbol": ["BTCUSDT"] * n, "bid_px": bid,
            "bid_qty": bid_qty, "ask_px": ask, "ask_qty": ask_qty, "mid": f.mid(bid, ask),
            "spread_bps": f.spread_bps(bid, ask), "imbalance": f.imbalance(bid_qty, ask_qty),
            "depth_ratio": f.depth_ratio(bid_qty, ask_qty),
            "microprice": f.microprice(bid, bid_qty, ask, ask_qty)}
    return pa.RecordBatch.from_pydict(cols, schema=schemas.schema("quotes"))


def labels(batch: pa.RecordBatch) -> np.ndarray:
    """+1/-1 for the mid's move over the next HORIZON_MS; 0 when flat or unknown."""
    ts = batch.column("ts_event").to_numpy()
    mid = batch.column("mid").to_numpy()
    j = np.searchsorted(ts, ts + HORIZON_MS * 1_000_000, side="left")
    ok = j < ts.size
    y = np.zeros(ts.size)
    y[ok] = np.sign(mid[j[ok]] - mid[ok])
    return y


def fit_logistic(x: np.ndarray, y01: np.ndarray, l2: float = 1e-3, steps: int = 3000,
                 lr: float = 0.5) -> tuple[np.ndarray, float]:
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        g = p - y01
        w -= lr * (x.T @ g / len(g) + l2 * w)
        b -= lr * float(g.mean())
    return w, b


def hit_rate(score: np.ndarray, y: np.ndarray, min_conf: float) -> tuple[float, int]:
    """Share of rows with |score| >= min_conf whose sign matches the move; and their count."""
    act = (np.abs(score) >= min_conf) & (y != 0)
    if not act.any():
        return float("nan"), 0
    return float((np.sign(score[act]) == y[act]).mean()), int(act.sum())


def export(path: Path, w: np.ndarray, b: float, mean: np.ndarray, std: np.ndarray) -> None:
    k = w.size
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Mul", ["z", "half"], ["zh"]),
             helper.make_node("Tanh", ["zh"], ["score"])]
    inits = [numpy_helper.from_array(w.astype(np.float32).reshape(k, 1), "w"),
             numpy_helper.from_array(np.array([b], np.float32), "b"),
             numpy_helper.from_array(np.array([0.5], np.float32), "half")]
    graph = helper.make_graph(nodes, "imbalance_logit",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT,
                                                             ["rows", 1])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="flightdesk-onnx-imbalance")
    model.ir_version = 8
    helper.set_model_props(model, {"flightdesk.features": json.dumps(FEATURES),
                                   "flightdesk.mean": json.dumps(mean.tolist()),
                                   "flightdesk.std": json.dumps(std.tolist()),
                                   "flightdesk.output": "score"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    batch = read_book_ticker(args.data)
    x = flightdesk.FeatureSet(FEATURES).compute(batch)
    y = labels(batch)
    usable = (y != 0) & np.isfinite(x).all(axis=1)
    cut = int(batch.num_rows * 0.7)
    train = usable & (np.arange(batch.num_rows) < cut)
    test = usable & (np.arange(batch.num_rows) >= cut)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-12
    w, b = fit_logistic((x[train] - mean) / std, (y[train] > 0).astype(float))
    score = np.tanh(((x - mean) / std @ w + b) / 2)
    report = {"data": args.data.name, "rows": batch.num_rows, "features": FEATURES,
              "horizon_ms": HORIZON_MS, "train_rows": int(train.sum()),
              "test_rows": int(test.sum()), "min_confidence": MIN_CONFIDENCE}
    for name, mask in (("train", train), ("test", test)):
        for conf in (0.0, MIN_CONFIDENCE):
            rate, n = hit_rate(np.where(mask, score, 0.0), np.where(mask, y, 0), conf)
            report[f"{name}_hit_rate@{conf:g}"] = round(rate, 4)
            report[f"{name}_rows@{conf:g}"] = n
    export(args.out / "model.onnx", w, b, mean, std)
    write_slice(batch, y, args.out.parent / "tests" / "data")
    (args.out / "model_report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


def write_slice(batch: pa.RecordBatch, y: np.ndarray, where: Path) -> None:
    """The last SLICE_ROWS out-of-sample quotes with their labels, for the package's tests."""
    where.mkdir(parents=True, exist_ok=True)
    start = max(0, batch.num_rows - SLICE_ROWS - 2000)  # leave the unlabeled tail out
    part = batch.slice(start, SLICE_ROWS)
    label = pa.array(y[start:start + part.num_rows])
    table = pa.Table.from_batches([part]).append_column("label", label)
    with pa.OSFile(str(where / "quotes_slice.arrow"), "wb") as sink:
        opts = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(sink, table.schema, options=opts) as writer:
            writer.write_table(table)


if __name__ == "__main__":
    main()
