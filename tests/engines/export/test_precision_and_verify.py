"""Precision conversion and the comparison rules, without a browser."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from groundwork.engines.export.precision import convert_opset, convert_precision, graph_operators, graph_opset
from groundwork.engines.export.verify import InputSpec, check_data, compare, describe, unsupported_operator
from groundwork.errors import InvalidInput


def _mlp(opset: int = 17) -> bytes:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(8, 256)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(256, 4)).astype(np.float32), "w2")
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model.SerializeToString()


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def test_fp16_halves_the_weights_and_keeps_fp32_inputs_and_outputs() -> None:
    source = _mlp()
    half = convert_precision(source, "fp16")
    x = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)
    assert len(half) < 0.6 * len(source)
    out = _run(half, x)
    assert out.dtype == np.float32
    ref = _run(source, x)
    cosine = compare(ref, out, 0.99, 0)
    assert cosine["measure"] == "cosine" and cosine["value"] > 0.999


def test_fp16_fixes_casts_to_float_that_feed_half_precision_nodes() -> None:
    # transformers' attention masks: Cast(int64 -> float) feeding float arithmetic.
    nodes = [helper.make_node("Cast", ["m"], ["mf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["x", "mf"], ["y"])]
    graph = helper.make_graph(nodes, "masked", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                                                helper.make_tensor_value_info("m", TensorProto.INT64, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    inferred = onnx.shape_inference.infer_shapes(model).SerializeToString()
    half = convert_precision(inferred, "fp16")
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    m = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], dtype=np.int64)
    out = ort.InferenceSession(half, providers=["CPUExecutionProvider"]).run(None, {"x": x, "m": m})[0]
    np.testing.assert_allclose(out, x * m)


def test_int8_quantizes_matmuls_and_stays_close() -> None:
    source = _mlp()
    quantized = convert_precision(source, "int8")
    assert ("ai.onnx", "MatMulInteger") in graph_operators(quantized) or ("ai.onnx", "DynamicQuantizeLinear") in graph_operators(quantized)
    x = np.random.default_rng(2).normal(size=(64, 8)).astype(np.float32)
    assert compare(_run(source, x), _run(quantized, x), 0.99, 0)["value"] > 0.99


def test_opset_conversion_and_bad_precision() -> None:
    source = _mlp(13)
    upgraded = convert_opset(source, 17)
    assert graph_opset(upgraded) == 17
    x = np.ones((2, 8), np.float32)
    np.testing.assert_allclose(_run(upgraded, x), _run(source, x), rtol=1e-6)
    with pytest.raises(InvalidInput, match="out of range"):
        convert_opset(source, 999)
    with pytest.raises(InvalidInput, match="unknown precision 'fp8'"):
        convert_precision(source, "fp8")


def test_compare_labels_cosine_nan_and_shape() -> None:
    labels = np.array([1, 2, 3, 4])
    assert compare(labels, [1, 2, 3, 4], 0.99, 2)["passed"]
    wrong = compare(labels, [1, 2, 0, 4], 0.99, 2)
    assert wrong["measure"] == "label" and wrong["value"] == 0.75 and not wrong["passed"]
    assert wrong["example_value"] == 1.0
    emb = np.eye(3, dtype=np.float32)
    assert compare(emb, emb * 2, 0.99, 0)["value"] == pytest.approx(1.0)  # cosine ignores scale
    nan = emb.copy()
    nan[1, 1] = np.nan
    broken = compare(emb, nan, 0.5, 0)
    assert not broken["passed"] and broken["non_finite_rows"] == 1 and "NaN" in describe(broken)
    assert compare(emb, np.ones((2, 2)), 0.9, 0)["measure"] == "shape"


def test_check_data_example_first_then_rows_made_from_it() -> None:
    specs = [InputSpec("x", "float32", ("N", 3))]
    example = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    data = check_data(example, specs, rows=10)
    assert data.example_rows == 2 and len(data) == 12
    np.testing.assert_array_equal(data.inputs["x"][:2], np.asarray(example, np.float32))
    assert data.inputs["x"].min() >= 0 and data.inputs["x"].max() <= 5  # noise stays in the example's range
    with pytest.raises(InvalidInput, match="without an input example"):
        check_data(None, specs)
    two = [InputSpec("ids", "int64", ("N", 4)), InputSpec("mask", "int64", ("N", 4))]
    with pytest.raises(InvalidInput, match="one array, but the model takes 2 inputs"):
        check_data([[1, 2, 3, 4]], two)


def test_unsupported_operator_is_named_from_runtime_messages() -> None:
    ops = {("ai.onnx.ml", "LinearClassifier"), ("ai.onnx", "Celu")}
    assert unsupported_operator("Could not find an implementation for LinearClassifier(1) node with name ''", ops) == \
        "LinearClassifier (ai.onnx.ml, opset 1)"
    message = "Type Error: Type 'tensor(float16)' of input parameter (h) of operator (Celu) in node () is invalid."
    assert unsupported_operator(message, ops) == "Celu (ai.onnx) on tensor(float16)"
    assert unsupported_operator("some other failure", ops) is None
