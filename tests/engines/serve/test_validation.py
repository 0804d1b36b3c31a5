"""Signature validation of request inputs: every mistake is a 4xx naming what is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from groundwork.core.signatures import Signature, TensorSpec
from groundwork.engines.serve.validation import Validator, envelope_inputs
from groundwork.errors import InvalidInput, UnprocessableInput

ROWS = Signature((TensorSpec(None, "float64", (-1, 4)),), (TensorSpec(None, "int64", (-1,)),))
TABLE = Signature((TensorSpec("age", "int64", (-1,)), TensorSpec("city", "str", (-1,))), (), True)


def test_rows_are_converted_to_the_runtime_dtype() -> None:
    batch, rows = Validator(ROWS, np.dtype(np.float32))([[1, 2, 3, 4], [5.5, 6, 7, 8]])
    assert rows == 2 and batch.dtype == np.float32 and batch.shape == (2, 4)
    batch, _ = Validator(ROWS)({"input": [[1, 2, 3, 4]]})  # a single named tensor
    assert batch.dtype == np.float64


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[1, 2, 3]], "each row must have 4 values; these rows have 3"),
        ([[1, 2, 3, 4], [1, 2, 3]], "row 1 has 3 values; the model takes 4"),
        ([1, 2, 3, 4], "single flat list"),
        ([[[1, 2, 3, 4]]], "nested 3 levels deep"),
        ([["a", 2, 3, 4]], r"hold text \(row 0, column 0: 'a'\)"),
        ([[None, 2, 3, 4]], "mixed values"),
        ([[True, False, True, False]], "hold true/false"),
        ([], "holds no rows"),
        ("rows", '"inputs" must be a list of rows, not a string'),
        ({"a": [[1, 2, 3, 4]], "b": [[1, 2, 3, 4]]}, "not named columns"),
        ([[1, 2, 3, 4], 5], "row 1 is a number, not a list"),
        ([[10**30, 1, 1, 1]], "out of range|hold mixed"),
    ],
)
def test_bad_rows_are_422_with_what_is_wrong(inputs: Any, message: str) -> None:
    with pytest.raises(UnprocessableInput, match=message) as caught:
        Validator(ROWS, np.dtype(np.float32))(inputs)
    assert caught.value.http_status == 422 and caught.value.hint


def test_whole_numbers_for_integer_models() -> None:
    ints = Signature((TensorSpec(None, "int64", (-1, 2)),))
    batch, _ = Validator(ints)([[1, 2.0]])
    assert batch.dtype == np.int64
    with pytest.raises(UnprocessableInput, match="whole numbers"):
        Validator(ints)([[1, 2.5]])


def test_tables_take_columns_or_records() -> None:
    validate = Validator(TABLE)
    batch, rows = validate({"age": [30, 40], "city": ["Oslo", "Rome"]})
    assert rows == 2 and batch["age"].dtype == np.int64 and list(batch["city"]) == ["Oslo", "Rome"]
    batch, rows = validate([{"age": 30, "city": "Oslo"}, {"age": 41, "city": "Rome"}])
    assert rows == 2 and list(batch["age"]) == [30, 41]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"age": [30]}, "missing column 'city'"),
        ({"age": [30], "city": ["x"], "zip": [1]}, "unknown column 'zip'"),
        ({"age": ["old"], "city": ["x"]}, "column 'age' takes int64 numbers, but holds text"),
        ({"age": [30], "city": [5]}, "column 'city' takes text, got 5"),
        ({"age": [30, 31], "city": ["x"]}, "columns differ in length"),
        ({"age": [], "city": []}, "holds no rows"),
        ([[1, "x"]], '"inputs" must map column names to values, not an array'),
        ([{"age": 1, "city": "x"}, {"age": 2}], "record 1 has no column 'city'"),
    ],
)
def test_bad_tables_are_422(inputs: Any, message: str) -> None:
    with pytest.raises(UnprocessableInput, match=message):
        Validator(TABLE)(inputs)


@pytest.mark.parametrize(
    ("document", "message"),
    [([1], "must be a JSON object, not an array"), ({"rows": []}, r"has no \"inputs\" key \(keys: 'rows'\)"),
     ("x", "not a string")],
)
def test_the_envelope_is_400(document: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        envelope_inputs(document)
    assert caught.value.http_status == 400


def test_without_a_signature_any_numeric_rows_pass() -> None:
    batch, rows = Validator(None)([[1, 2], [3, 4]])
    assert rows == 2 and batch.dtype == np.float64
    with pytest.raises(UnprocessableInput, match="hold text"):
        Validator(None)([["a"]])


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([[True, 0, 0, 0]], r"row 0, column 0 is true \(JSON true/false is not a number\)"),
        ([[1, 2, 3, 4], [0.5, 1, False, 2]], "row 1, column 2 is false"),
        ([[True, False, True, True]], r"hold true/false \(row 0, column 0: true\)"),
    ],
)
def test_booleans_anywhere_among_numbers_are_422_naming_the_column(inputs: Any, message: str) -> None:
    with pytest.raises(UnprocessableInput, match=message):
        Validator(ROWS, np.dtype(np.float32))(inputs)
    table = Signature((TensorSpec("a", "float64", (-1,)), TensorSpec("b", "int64", (-1,))), (), True)
    with pytest.raises(UnprocessableInput, match="column 'b' takes int64 numbers, but value 1 is true"):
        Validator(table)({"a": [1.0, 2.0], "b": [3, True]})


def test_the_server_skips_the_boolean_walk_only_when_the_body_has_no_true_or_false() -> None:
    batch, _ = Validator(ROWS)([[True, 0, 0, 0]], False)  # what booleans=False promises: no true/false in the body
    assert batch.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    bools = Signature((TensorSpec(None, "bool", (-1, 2)),))
    batch, _ = Validator(bools)([[True, False]])  # a model that takes true/false gets them
    assert batch.dtype == np.bool_


@pytest.mark.parametrize(
    ("signature", "dtype", "inputs", "message"),
    [
        (ROWS, np.float32, [[1, 2, 3, 4], [1e300, 0, 0, 0]],
         r"row 1, column 0 is 1e\+300, outside what the model's input type float32 holds \(-3.403e\+38 to 3.403e\+38\)"),
        (ROWS, np.float32, [[0, 0, 0, -3.5e38]], "row 0, column 3 is -3.5e"),
        (ROWS, np.float32, [[1e200, 1e200, 0, 0]], "row 0, column 0 is 1e\\+200"),  # its square overflows float64 too
        (ROWS, np.float16, [[1, 2, 70000, 4]], r"row 0, column 2 is 70000, .* float16 holds \(-6.55e\+04 to 6.55e\+04\)"),
        (Signature((TensorSpec(None, "int32", (-1, 2)),)), None, [[1, 3_000_000_000]],
         r"row 0, column 1 is 3000000000, outside .* int32 holds \(-2147483648 to 2147483647\)"),
        (Signature((TensorSpec(None, "uint8", (-1, 2)),)), None, [[1, -1]], r"row 0, column 1 is -1, .* uint8 holds \(0 to 255\)"),
        (Signature((TensorSpec("w", "float32", (-1,)),), (), True), None, {"w": [1.0, 1e39]},
         "column 'w': value 1 is 1e\\+39, outside"),
    ],
)
def test_numbers_the_model_type_cannot_hold_are_422_not_infinity(signature: Signature, dtype: Any, inputs: Any,
                                                                  message: str) -> None:
    validate = Validator(signature, np.dtype(dtype) if dtype else None)
    with pytest.raises(UnprocessableInput, match=message):
        validate(inputs)


def test_the_largest_numbers_a_type_holds_pass() -> None:
    top = float(np.finfo(np.float32).max)
    batch, _ = Validator(ROWS, np.dtype(np.float32))([[top, -top, 0, 1e-300]])
    assert np.isfinite(batch).all() and batch[0, 0] == np.float32(top)
    batch, _ = Validator(ROWS)([[1e300, 0, 0, 0]])  # float64 holds it
    assert batch[0, 0] == 1e300
