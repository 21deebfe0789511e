"""The ONNX strategy: metadata and config specs, dtypes, clear errors, signals, in a desk."""

import numpy as np
import pytest
from onnx import TensorProto

import flightdesk
from flightdesk.core.errors import ConfigError, StrategyError
from flightdesk.plugins.strategies.onnx import OnnxStrategy
from tests.fixtures.factories import quotes
from tests.fixtures.flight import desk_config
from tests.fixtures.onnx_models import linear_model
from tests.fixtures.waiting import wait_for

MS = 1_000_000


def make(path, **cfg):
    return OnnxStrategy("nn", {**OnnxStrategy.DEFAULTS, "model_path": str(path),
                               "holding_period_ms": 0, **cfg})


def batch(imbs, ts_ms=None):
    n = len(imbs)
    ts = np.asarray(ts_ms if ts_ms is not None else range(n)) * MS
    return quotes(ts, [("sim", "X")] * n, [100.0] * n, imbs)


def test_features_and_normalization_from_metadata(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [2.0], features=["imbalance"], mean=[0.5],
                        std=[0.25])
    s = make(path)
    assert s.model.features == ["imbalance"] and s.model.dtype is np.float32
    sig = s.on_batch(batch([0.5, 0.9, 0.1]))
    # z = (imb - 0.5) / 0.25 * 2 -> tanh: 0, tanh(3.2) buy, tanh(-3.2) sell
    assert sig.column("side").to_pylist() == ["buy", "sell"]
    assert sig.column("strength")[0].as_py() == pytest.approx(np.tanh(3.2), rel=1e-6)


def test_config_overrides_metadata_and_float64_models(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [1.0, 0.0], elem=TensorProto.DOUBLE,
                        features=["spread_bps", "mid"])
    s = make(path, features=["imbalance", "momentum@10"], std=[0.5, 1.0])
    assert s.model.dtype is np.float64
    sig = s.on_batch(batch([0.0, 0.4]))
    assert sig.column("side").to_pylist() == ["buy"]
    assert sig.column("strength")[0].as_py() == pytest.approx(np.tanh(0.8))


def test_probability_output(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [10.0], op="Sigmoid", features=["imbalance"],
                        output="probability")
    sig = make(path).on_batch(batch([-0.5]))
    assert sig.column("side").to_pylist() == ["sell"]
    p = 1 / (1 + np.exp(5.0))
    assert sig.column("strength")[0].as_py() == pytest.approx(2 * p - 1, rel=1e-5)


def test_non_finite_features_give_no_opinion(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [5.0], features=["imbalance"])
    s = make(path)
    assert s.on_batch(batch([np.nan, np.nan])) is None
    assert s.skipped_rows == 2


def test_missing_file_and_missing_features_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"strategies.nn.model_path: model file .*nope.onnx "
                                          "does not exist"):
        make(tmp_path / "nope.onnx")
    with pytest.raises(ConfigError, match="model_path is empty"):
        make("")
    path = linear_model(tmp_path / "m.onnx", [1.0])
    with pytest.raises(ConfigError, match="features is empty and the model has no"):
        make(path)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="is not a loadable ONNX model"):
        make(tmp_path / "junk.onnx", features=["mid"])


def test_wrong_input_shape_and_dtype_are_clear(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [1.0, 1.0], features=["imbalance", "mid"])
    with pytest.raises(ConfigError, match=r"shape \['rows', 2\]; expected \[rows, 1\]"):
        make(path, features=["imbalance"])
    path = linear_model(tmp_path / "i.onnx", [1, 1], elem=TensorProto.INT64, op="Identity",
                        features=["imbalance", "mid"])
    with pytest.raises(ConfigError, match=r"tensor\(int64\); expected tensor\(float\)"):
        make(path)
    path = linear_model(tmp_path / "m2.onnx", [1.0], features=["imbalance"], mean=[0, 1])
    with pytest.raises(ConfigError, match="mean has 2 values; expected 1"):
        make(path)


def test_nan_output_is_a_strategy_error(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [1.0], op="Sqrt", features=["imbalance"])
    s = make(path)
    with pytest.raises(StrategyError, match=r"strategy nn: model .* output is NaN for 1 row"
                                            r".*'imbalance': -0.5"):
        s.on_batch(batch([0.5, -0.5]))


def test_onnx_strategy_trades_in_a_desk(tmp_path):
    path = linear_model(tmp_path / "m.onnx", [3.0], features=["imbalance"])
    cfg = desk_config(tmp_path, nn={"type": "onnx", "venue": "sim", "model_path": str(path)})
    with flightdesk.Engine(cfg) as eng:
        assert wait_for(lambda: eng.status()["trading"].get("fills", 0) > 0)
        slots = eng.status()["strategies"]
    assert slots[0]["name"] == "nn" and slots[0]["signals"] > 0 and not slots[0]["quarantined"]


@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_model_input_is_the_normalized_matrix_at_any_batch_size(tmp_path, dtype):
    path = linear_model(tmp_path / "m.onnx", [1.0, -1.0], features=["imbalance", "mid"],
                        mean=[0.1, 100.0], std=[0.3, 7.0], elem=dtype)
    model = make(path).model
    seen = []

    class Recording:  # the real session, with its inputs kept
        def run(self, names, feeds):
            seen.append(feeds[model.input_name].copy())
            return real.run(names, feeds)

    real, model.session = model.session, Recording()
    x = np.random.default_rng(3).normal(size=(300, 2)) * [1.0, 50.0]
    for rows in (300, 3):  # the column-by-column path and the broadcast one
        model.score(x[:rows])
        want = ((x[:rows] - model.mean) / model.std).astype(model.dtype)
        assert seen[-1].dtype == want.dtype and seen[-1].tobytes() == want.tobytes()
