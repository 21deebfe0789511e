"""The ONNX strategy: any model whose input is a float feature matrix.

The model takes one input of shape ``[rows, len(features)]`` (float32 or float64) and its
first output holds one score per row (shape ``[rows]`` or ``[rows, 1]``): with
``output = "score"`` a value in [-1, 1] (sign = direction, magnitude = confidence), with
``output = "probability"`` the probability that the price goes up (mapped to ``2p - 1``).

Feature names (see :mod:`flightdesk.sdk.features`) and the normalization
``(x - mean) / std`` come from the strategy's config or, when the config leaves them empty,
from the model's metadata: ``flightdesk.features``, ``flightdesk.mean``, ``flightdesk.std``
(JSON lists) and ``flightdesk.output``. Rows whose features are not finite get no opinion.
Opinions become signals through :class:`flightdesk.sdk.policy.SignalPolicy`.

The onnxruntime session is tuned for small batches: one intra-op and one inter-op thread,
sequential execution, all graph optimizations (``run`` releases the GIL).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from flightdesk.core.errors import ConfigError, StrategyError
from flightdesk.plugins.hookspecs import hookimpl
from flightdesk.sdk.features import FeatureSet, instrument_groups
from flightdesk.sdk.policy import apply_policy, side_names
from flightdesk.sdk.strategy import Strategy, signals_batch

logger = logging.getLogger(__name__)

_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
OUTPUTS = ("score", "probability")


def make_session(path: str | Path) -> Any:
    """An onnxruntime session for small batches (see the module docstring)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=opts,
                                providers=["CPUExecutionProvider"])


class OnnxModel:
    """A loaded model, its checked input and its feature/normalization spec."""

    def __init__(self, where: str, path: str, config: Mapping[str, Any]) -> None:
        if not path:
            raise ConfigError(f"{where}.model_path is empty: set it to an .onnx file",
                              key=f"{where}.model_path")
        if not Path(path).is_file():
            raise ConfigError(f"{where}.model_path: model file {path} does not exist",
                              key=f"{where}.model_path")
        try:
            self.session = make_session(path)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ConfigError(f"{where}.model_path: {path} is not a loadable ONNX model: "
                              f"{exc}", key=f"{where}.model_path") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        self.features = list(config.get("features") or _meta_list(meta, "flightdesk.features"))
        if not self.features:
            raise ConfigError(f"{where}.features is empty and the model has no "
                              "'flightdesk.features' metadata", key=f"{where}.features")
        k = len(self.features)
        self.mean = _vector(config.get("mean") or _meta_list(meta, "flightdesk.mean"), k, 0.0,
                            f"{where}.mean")
        self.std = _vector(config.get("std") or _meta_list(meta, "flightdesk.std"), k, 1.0,
                           f"{where}.std")
        self.output = str(config.get("output") or meta.get("flightdesk.output", "score"))
        if self.output not in OUTPUTS:
            raise ConfigError(f"{where}.output must be one of {', '.join(OUTPUTS)}, got "
                              f"{self.output!r}", key=f"{where}.output")
        self.input_name, self.dtype = self._check_input(where, path, k)
        self.output_name = self.session.get_outputs()[0].name
        self.path = path

    def _check_input(self, where: str, path: str, k: int) -> tuple[str, Any]:
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ConfigError(f"{where}: model {path} has {len(inputs)} inputs; expected one "
                              f"float matrix [rows, {k}]", key=f"{where}.model_path")
        inp = inputs[0]
        if inp.type not in _DTYPES:
            raise ConfigError(f"{where}: model input {inp.name!r} is {inp.type}; expected "
                              "tensor(float) or tensor(double)", key=f"{where}.model_path")
        shape = list(inp.shape)
        if len(shape) != 2 or (isinstance(shape[1], int) and shape[1] != k):
            raise ConfigError(f"{where}: model input {inp.name!r} has shape {shape}; expected "
                              f"[rows, {k}] for features {self.features}",
                              key=f"{where}.model_path")
        return inp.name, _DTYPES[inp.type]

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score in [-1, 1] per row of the raw feature matrix ``x``."""
        z = np.empty(x.shape, self.dtype)  # computed in float64, rounded once (as astype)
        if x.shape[0] >= 256:  # column by column: long inner loops instead of k-long ones
            tmp = np.empty(x.shape[0])
            for j in range(x.shape[1]):
                np.subtract(x[:, j], self.mean[j], out=tmp)
                np.divide(tmp, self.std[j], out=z[:, j])
        else:
            np.divide(x - self.mean, self.std, out=z)
        out = self.session.run([self.output_name], {self.input_name: z})[0]
        out = np.asarray(out, dtype=np.float64).reshape(x.shape[0], -1)[:, 0]
        return out * 2.0 - 1.0 if self.output == "probability" else out


class OnnxStrategy(Strategy):
    """Scores quotes rows with an ONNX model (see the module docstring)."""

    DEFAULTS: dict[str, Any] = {
        "type": "onnx",
        "venue": "",
        "symbols": [],
        "enabled": True,
        "model_path": "",
        "features": [],
        "mean": [],
        "std": [],
        "output": "",
        "feature_window_ms": 1000.0,
        "min_confidence": 0.2,
        "holding_period_ms": 500,
        "signal_decay_ms": 2000.0,
        "order_size_fraction": 0.25,
        "time_budget_ms": 1000.0,
    }

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        super().__init__(name, config)
        cfg = self.config
        self.model = OnnxModel(f"strategies.{name}", str(cfg["model_path"]), cfg)
        self.features = FeatureSet(self.model.features,
                                   self.number("feature_window_ms", 0.0, lo_open=True))
        self.policy = self.policy_from_config()
        self.size_fraction = self.number("order_size_fraction", 0.0, 1.0, lo_open=True)
        self.skipped_rows = 0

    def on_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch | None:
        groups = instrument_groups(batch)
        x = self.features.compute(batch, groups=groups)
        if math.isfinite(x.sum()):  # a finite total: every feature is finite (one pass)
            score = self.model.score(x)
            if not math.isfinite(score.sum()):
                self._check_scores(score, np.ones(x.shape[0], bool), x)
        else:
            finite = np.isfinite(x).all(axis=1)
            bad = int(x.shape[0] - np.count_nonzero(finite))
            score = self.model.score(np.where(finite[:, None], x, 0.0))
            self._check_scores(score, finite, x)
            score[~finite] = np.nan  # no opinion
            self.skipped_rows += bad
        ts = batch.column("ts_event").to_numpy()
        with np.errstate(invalid="ignore"):
            confidence = np.minimum(np.abs(score), 1.0)
        d = apply_policy(self.policy, groups, ts, score, confidence)
        if d.rows.size == 0:
            return None
        qty = np.where(d.sides != 0, self.order_qty(), 0.0)
        if len(groups) == 1:  # one instrument: its names, broadcast
            venue, symbol = groups[0][0]
        else:
            idx = pa.array(d.rows)
            venue, symbol = batch.column("venue").take(idx), batch.column("symbol").take(idx)
        return signals_batch(ts[d.rows], venue, symbol, side_names(d.sides),
                             strength=score[d.rows], confidence=d.confidence,
                             holding_period_ms=int(self.config["holding_period_ms"]), qty=qty,
                             strategy=self.name)

    def _check_scores(self, score: np.ndarray, finite: np.ndarray, x: np.ndarray) -> None:
        bad = np.flatnonzero(~np.isfinite(score) & finite)
        if bad.size:
            row = int(bad[0])
            feats = dict(zip(self.model.features, x[row].tolist(), strict=True))
            raise StrategyError(f"strategy {self.name}: model {self.model.path} output is NaN "
                                f"for {bad.size} row(s) with finite features, e.g. row {row} "
                                f"{feats}", plugin=self.name)

    def order_qty(self) -> float:
        max_position = float(self.ctx.risk["max_position"]) if self.ctx else 1.0
        return self.size_fraction * max_position


def _meta_list(meta: Mapping[str, str], key: str) -> list[Any]:
    raw = meta.get(key)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"model metadata {key!r} is not a JSON list: {raw[:80]!r}") from exc
    if not isinstance(value, list):
        raise ConfigError(f"model metadata {key!r} must be a JSON list, got {raw[:80]!r}")
    return value


def _vector(values: list[Any], k: int, default: float, where: str) -> np.ndarray:
    if not values:
        return np.full(k, default)
    if len(values) != k:
        raise ConfigError(f"{where} has {len(values)} values; expected {k} (one per feature)",
                          key=where)
    return np.asarray(values, dtype=np.float64)


@hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("onnx", OnnxStrategy)
