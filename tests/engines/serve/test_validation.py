"""Signature validation of request inputs: every mistake is a 4xx naming what is wrong."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from groundwork.core.registry import Signature, TensorSpec
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
        ([["a", 2, 3, 4]], r"hold text \(row 0, position 0: 'a'\)"),
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
