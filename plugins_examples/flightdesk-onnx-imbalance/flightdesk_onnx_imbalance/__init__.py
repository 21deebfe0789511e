"""flightdesk-onnx-imbalance: an ONNX strategy with a model trained on recorded BTCUSDT quotes."""
