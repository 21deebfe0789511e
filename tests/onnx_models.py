"""Tiny ONNX models built with onnx.helper for the ONNX strategy tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_model(path: Path, weights, bias=0.0, features=None, mean=None, std=None,
                 elem=TensorProto.FLOAT, rows="rows", op="Tanh", output=None) -> Path:
    """``op(x @ weights + bias)`` with input ``x: [rows, k]``; metadata when given."""
    k = len(weights)
    np_type = onnx.helper.tensor_dtype_to_np_dtype(elem)
    w = numpy_helper.from_array(np.asarray(weights, np_type).reshape(k, 1), "w")
    b = numpy_helper.from_array(np.asarray([bias], np_type), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node(op, ["z"], ["y"])]
    graph = helper.make_graph(nodes, "linear",
                              [helper.make_tensor_value_info("x", elem, [rows, k])],
                              [helper.make_tensor_value_info("y", elem, [rows, 1])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"flightdesk.features": features, "flightdesk.mean": mean, "flightdesk.std": std,
            "flightdesk.output": output}
    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v)
                                   for k, v in meta.items() if v is not None})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
