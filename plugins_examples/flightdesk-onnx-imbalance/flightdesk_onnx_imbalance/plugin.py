"""The ``onnx_imbalance`` strategy: flightdesk's ONNX strategy with the shipped model.

``model.onnx`` (trained by ``train.py`` on the recorded Binance BTCUSDT session) carries its
feature names and standardization in its metadata, so the only config a desk needs is
``type = "onnx_imbalance"``; every key of the ONNX strategy can still be overridden.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flightdesk

MODEL = Path(__file__).resolve().with_name("model.onnx")


class OnnxImbalance(flightdesk.OnnxStrategy):
    DEFAULTS: dict[str, Any] = {**flightdesk.OnnxStrategy.DEFAULTS, "type": "onnx_imbalance",
                                "model_path": str(MODEL)}


@flightdesk.hookimpl
def flightdesk_register_strategies(register: Any) -> None:
    register("onnx_imbalance", OnnxImbalance)
