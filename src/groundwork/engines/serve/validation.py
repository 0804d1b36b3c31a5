"""Request validation against a model's signature: bad input answers 4xx, never 5xx.

=======  ==========================================================================
status   when
=======  ==========================================================================
400      the body is not JSON (NaN, Infinity and numbers beyond a double's range are
         not JSON numbers), not a JSON object, or has no ``"inputs"`` key
413      the body is larger than the limit (``--max-body-mb``)
415      the ``Content-Type`` is not JSON (missing, ``text/plain``, a form): a web page
         can send those cross-origin without asking, so they are never read
422      ``inputs`` is JSON but does not fit the signature: wrong shape (row length,
         nesting), wrong dtype (text, or true/false anywhere among numbers), a number
         the model's input type cannot hold (``1e300`` for float32), a missing or
         unknown column, columns of different lengths, no rows at all
=======  ==========================================================================

Every answer's body is :func:`groundwork.errors.error_body`: ``{"ok": false,
"status", "error", "message", "hint"}``, where ``message`` names what is wrong
(``row 3 has 63 values; the model takes 64``).

A :class:`Validator` turns the parsed ``inputs`` of one request into what the
predictor's ``predict_array`` takes (a NumPy array of rows in the runtime's dtype,
or a dict of column arrays) plus its row count, so the batcher only concatenates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from groundwork.core.signatures import Signature, TensorSpec
from groundwork.errors import InvalidInput, PayloadTooLarge, UnprocessableInput

_NUMERIC = "iuf"
_KIND_NAMES = {"U": "text", "S": "text", "O": "mixed values (null, objects or text among numbers)", "b": "true/false"}


class UnsupportedMediaType(InvalidInput):
    headline = "Unsupported media type"
    http_status = 415


def body_not_json(detail: str, body: bytes = b"") -> InvalidInput:
    if b"NaN" in body or b"Infinity" in body:
        detail = f"NaN and Infinity are not JSON numbers ({detail})"
    return InvalidInput(
        f"the request body is not valid JSON: {detail}",
        hint='send {"inputs": [[...], ...]} of finite numbers with Content-Type: application/json',
    )


def not_json_content(content_type: bytes | None) -> UnsupportedMediaType | None:
    """None when ``content_type`` says JSON; else the 415 answer.

    Only JSON is read: ``text/plain``, forms and a missing type are what a web page may
    send to another origin without a CORS preflight, so refusing them keeps pages on other
    sites from posting predictions.
    """
    if content_type is not None:
        if content_type == b"application/json":
            return None
        media = content_type.split(b";", 1)[0].strip().lower()
        if media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json")):
            return None
    said = "no Content-Type" if content_type is None else f"Content-Type {content_type.decode('latin-1')[:80]!r}"
    return UnsupportedMediaType(
        f"predictions take a JSON body; this request has {said}",
        hint="send it with Content-Type: application/json (curl --json, or -H 'Content-Type: application/json')",
    )


def too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {size} bytes; this server accepts at most {limit} bytes",
        hint="send fewer rows per request, or start the server with a larger --max-body-mb",
    )


def envelope_inputs(document: Any) -> Any:
    """``document["inputs"]``, or a 400 saying what the body should look like."""
    if not isinstance(document, dict):
        raise InvalidInput(
            f"the request body must be a JSON object, not {_json_type(document)}",
            hint='send {"inputs": [[...], ...]} (rows) or {"inputs": {"column": [...]}}',
        )
    if "inputs" not in document:
        keys = ", ".join(repr(k) for k in list(document)[:5]) or "none"
        raise InvalidInput(
            f'the request body has no "inputs" key (keys: {keys})',
            hint='send {"inputs": [[...], ...]} (rows) or {"inputs": {"column": [...]}}',
        )
    return document["inputs"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _unprocessable(message: str, hint: str | None = None) -> UnprocessableInput:
    return UnprocessableInput(message, hint=hint)


class Validator:
    """Checks one request's ``inputs`` against a signature and converts them for the runtime.

    ``dtype`` is the runtime's preferred input dtype (ONNX graphs usually take float32
    where the signature, inferred from NumPy data, says float64): numbers are checked
    as numbers and then cast once.
    """

    def __init__(self, signature: Signature | None, dtype: np.dtype[Any] | None = None) -> None:
        self.signature = signature
        self.columnar = bool(signature and signature.columnar)
        self.spec: TensorSpec | None = None
        if signature is not None and not signature.columnar and len(signature.inputs) == 1:
            self.spec = signature.inputs[0]
        want = dtype if dtype is not None else (
            np.dtype(self.spec.dtype) if self.spec is not None and self.spec.dtype != "str" else None)
        self.dtype: np.dtype[Any] = want if want is not None else np.dtype(np.float64)
        self.kind = self.dtype.kind
        #: float64 rows whose sum of squares is at most this fit the (narrower) float dtype: no value check
        self._squares = _FLOAT_MAX[self.dtype.itemsize] ** 2 if self.kind == "f" and self.dtype.itemsize < 8 else None
        self.row_shape = tuple(self.spec.shape[1:]) if self.spec is not None else None
        self.columns = {s.name or "": s for s in signature.inputs} if self.columnar and signature else {}
        #: a model that takes one list of texts (``str[N]``, a Python model's sentences)
        self.text = self.spec is not None and self.spec.dtype == "str" and len(self.spec.shape) == 1
        self._rows_hint = self._describe_rows()

    def _describe_rows(self) -> str:
        if self.spec is None or self.row_shape is None:
            return 'send {"inputs": [[...], ...]}: a list of rows of numbers'
        if len(self.row_shape) == 1 and self.row_shape[0] > 0:
            return f'send {{"inputs": [[...], ...]}}: a list of rows, each {self.row_shape[0]} numbers'
        return f"send a list of rows shaped {self.spec.describe()} (N is the number of rows)"

    def __call__(self, inputs: Any, booleans: bool = True) -> tuple[Any, int]:
        """Check and convert ``inputs``; ``booleans=False`` says the body holds no ``true``/``false``.

        JSON ``true`` among numbers becomes 1 in a NumPy array without a trace, so finding one
        means walking the values; the server skips that walk when the raw body has neither word.
        """
        if self.columnar:
            return self._columns(inputs, booleans)
        if self.text:
            return self._texts(inputs)
        return self._rows(inputs, booleans)

    def _texts(self, inputs: Any) -> tuple[np.ndarray[Any, Any], int]:
        hint = 'send {"inputs": ["a text", "another text", ...]}'
        if isinstance(inputs, Mapping) and len(inputs) == 1:
            inputs = next(iter(inputs.values()))
        if isinstance(inputs, str):
            raise _unprocessable('"inputs" is one text; the model takes a list of texts', 'wrap it in a list: {"inputs": ["..."]}')
        if not isinstance(inputs, list):
            raise _unprocessable(f'"inputs" must be a list of texts, not {_json_type(inputs)}', hint)
        if not inputs:
            raise _unprocessable('"inputs" holds no texts', hint)
        for i, value in enumerate(inputs):
            if not isinstance(value, str):
                raise _unprocessable(f"inputs must be texts, but item {i} is {_json_type(value)}", hint)
        return np.array(inputs, dtype=object), len(inputs)

    # -- one tensor of rows ---------------------------------------------------------------
    def _rows(self, inputs: Any, booleans: bool = True) -> tuple[np.ndarray[Any, Any], int]:
        if isinstance(inputs, Mapping):
            if len(inputs) == 1:
                inputs = next(iter(inputs.values()))
            else:
                raise _unprocessable("this model takes a list of rows, not named columns", self._rows_hint)
        if not isinstance(inputs, list):
            raise _unprocessable(f'"inputs" must be a list of rows, not {_json_type(inputs)}', self._rows_hint)
        if not inputs:
            raise _unprocessable('"inputs" holds no rows', self._rows_hint)
        try:
            arr = np.array(inputs)
        except (ValueError, OverflowError) as exc:
            raise self._ragged(inputs, exc) from None
        kind = arr.dtype.kind
        if kind not in _NUMERIC and not (kind == "b" and self.kind == "b"):
            raise _unprocessable(
                f"inputs must be numbers, but hold {_KIND_NAMES.get(kind, arr.dtype.name)}"
                + self._first_bad(inputs),
                self._rows_hint,
            )
        if booleans and self.kind != "b" and kind != "b":
            where = _first_boolean(inputs)
            if where is not None:
                raise _unprocessable(
                    f"inputs must be numbers, but {_position(where)} is {_json_value(_at(inputs, where))}"
                    " (JSON true/false is not a number)",
                    self._rows_hint,
                )
        if self.row_shape is not None:
            if arr.ndim != len(self.row_shape) + 1:
                raise self._rank(arr)
            for axis, want in enumerate(self.row_shape, start=1):
                if want > 0 and arr.shape[axis] != want:
                    if axis == 1:
                        raise _unprocessable(
                            f"each row must have {want} values; these rows have {arr.shape[1]}", self._rows_hint)
                    raise _unprocessable(
                        f"inputs are shaped {list(arr.shape)}; the model takes {self.spec.describe() if self.spec else '?'}",
                        self._rows_hint,
                    )
        elif arr.ndim < 1:
            raise _unprocessable('"inputs" must be a list of rows', self._rows_hint)
        if kind == "f" and self.kind in "iu" and not np.all(np.mod(arr, 1) == 0):
            raise _unprocessable(f"inputs must be whole numbers (the model takes {self.dtype.name})", self._rows_hint)
        if arr.dtype != self.dtype:
            if kind == "f" and self._squares is not None and np.vdot(arr, arr) <= self._squares:
                arr = arr.astype(self.dtype)  # the hot path of a float32 model: see _cast
            else:
                arr = _cast(arr, self.dtype, "inputs", _position, self._rows_hint)
        return arr, len(arr)

    def _rank(self, arr: np.ndarray[Any, Any]) -> UnprocessableInput:
        want = len(self.row_shape or ()) + 1
        if arr.ndim == want - 1 and want == 2:
            return _unprocessable(
                "inputs is a single flat list; the model takes a list of rows",
                'wrap one row in a list: {"inputs": [[...]]}',
            )
        return _unprocessable(
            f"inputs are nested {arr.ndim} levels deep; the model takes {want} "
            f"({self.spec.describe() if self.spec else '?'})",
            self._rows_hint,
        )

    def _ragged(self, inputs: list[Any], exc: Exception) -> UnprocessableInput:
        if isinstance(exc, OverflowError):
            return _unprocessable(f"a number in inputs is out of range: {exc}", self._rows_hint)
        want = self.row_shape[0] if self.row_shape and self.row_shape[0] > 0 else None
        lengths = [len(r) if isinstance(r, list) else None for r in inputs]
        for i, n in enumerate(lengths):
            if n is None:
                return _unprocessable(f"row {i} is {_json_type(inputs[i])}, not a list of values", self._rows_hint)
            if want is not None and n != want:
                return _unprocessable(f"row {i} has {n} values; the model takes {want}", self._rows_hint)
        first = lengths[0]
        for i, n in enumerate(lengths):
            if n != first:
                return _unprocessable(f"rows differ in length: row 0 has {first} values, row {i} has {n}", self._rows_hint)
        return _unprocessable("inputs are ragged: nested lists of different lengths", self._rows_hint)

    def _first_bad(self, inputs: list[Any]) -> str:
        for i, row in enumerate(inputs[:1000]):
            values = row if isinstance(row, list) else [row]
            for j, value in enumerate(values):
                if isinstance(value, bool) or not isinstance(value, (int, float, list)):
                    return f" ({_position((i, j))}: {_json_value(value)})"
        return ""

    # -- a table of named columns -----------------------------------------------------------
    def _columns(self, inputs: Any, booleans: bool = True) -> tuple[dict[str, np.ndarray[Any, Any]], int]:
        names = ", ".join(self.columns)
        hint = f'send {{"inputs": {{"column": [values...]}}}} with the columns {names}'
        if isinstance(inputs, list) and inputs and all(isinstance(r, dict) for r in inputs):
            inputs = {name: [r.get(name, _MISSING) for r in inputs] for name in {k for r in inputs for k in r}}
            for name, values in inputs.items():
                if any(v is _MISSING for v in values):
                    row = next(i for i, v in enumerate(values) if v is _MISSING)
                    raise _unprocessable(f"record {row} has no column {name!r}", hint)
        if not isinstance(inputs, dict):
            raise _unprocessable(f'"inputs" must map column names to values, not {_json_type(inputs)}', hint)
        missing = [n for n in self.columns if n not in inputs]
        if missing:
            raise _unprocessable(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}", hint)
        unknown = [n for n in inputs if n not in self.columns]
        if unknown:
            raise _unprocessable(f"unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}", hint)
        out: dict[str, np.ndarray[Any, Any]] = {}
        length = None
        for name, spec in self.columns.items():
            values = inputs[name]
            if not isinstance(values, list):
                values = [values]
            out[name] = self._column(name, spec, values, hint, booleans)
            if length is None:
                length = len(values)
            elif len(values) != length:
                raise _unprocessable(f"columns differ in length: {len(values)} values in {name!r}, {length} before", hint)
        if not length:
            raise _unprocessable('"inputs" holds no rows', hint)
        return out, length

    def _column(self, name: str, spec: TensorSpec, values: list[Any], hint: str, booleans: bool) -> np.ndarray[Any, Any]:
        if spec.dtype == "str":
            bad = next((v for v in values if not isinstance(v, str)), _MISSING)
            if bad is not _MISSING:
                raise _unprocessable(f"column {name!r} takes text, got {bad!r:.40}", hint)
            return np.array(values, dtype=object)
        try:
            arr = np.array(values)
        except (ValueError, OverflowError):
            raise _unprocessable(f"column {name!r} holds values of different shapes", hint) from None
        want = np.dtype(spec.dtype)
        if arr.dtype.kind not in _NUMERIC and not (arr.dtype.kind == "b" and want.kind == "b"):
            raise _unprocessable(
                f"column {name!r} takes {spec.dtype} numbers, but holds {_KIND_NAMES.get(arr.dtype.kind, arr.dtype.name)}",
                hint,
            )
        if booleans and want.kind != "b" and arr.dtype.kind != "b":
            where = _first_boolean(values)
            if where is not None:
                raise _unprocessable(
                    f"column {name!r} takes {spec.dtype} numbers, but {_position(where, 'value')} is "
                    f"{_json_value(_at(values, where))} (JSON true/false is not a number)", hint)
        if arr.ndim != len(spec.shape):
            raise _unprocessable(f"column {name!r} is shaped {list(arr.shape)}; it takes {spec.describe()}", hint)
        if arr.dtype.kind == "f" and want.kind in "iu" and not np.all(np.mod(arr, 1) == 0):
            raise _unprocessable(f"column {name!r} takes whole numbers ({spec.dtype})", hint)
        if arr.dtype == want:
            return arr
        return _cast(arr, want, f"column {name!r}", lambda index: _position(index, "value"), hint)


def _cast(arr: np.ndarray[Any, Any], dtype: np.dtype[Any], what: str, position: Any, hint: str) -> np.ndarray[Any, Any]:
    """``arr`` as ``dtype``, or a 422 naming the first value that type cannot hold.

    NumPy casts silently: 1e300 becomes inf in float32, 3e9 wraps around in int32. JSON
    cannot carry NaN or Infinity (the parser refuses them with 400), so every number that
    arrives is finite, and one that the model's type cannot hold is refused rather than
    turned into infinity. The common case (float64 rows for a float32 model) costs one ``vdot``.
    """
    kind = dtype.kind
    if kind in "iu" and arr.dtype.kind in "iuf":
        info = np.iinfo(dtype)
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            index = tuple(int(i) for i in np.argwhere((arr < info.min) | (arr > info.max))[0])
            raise _unprocessable(
                f"{what}: {position(index)} is {arr[index].item()!r:.40}, outside what the model's input type "
                f"{dtype.name} holds ({info.min} to {info.max})", hint)
    elif kind == "f" and dtype.itemsize < 8 and arr.dtype.kind in "iuf":
        top = _FLOAT_MAX[dtype.itemsize]
        if arr.dtype == np.float64:
            # One BLAS call, no temporary: the sum of squares is at least the largest square
            # (or overflows to inf), so it can only miss nothing; a hit is checked value by value.
            suspect = bool(np.vdot(arr, arr) > top * top)
        else:  # integers: only float16's small range can be exceeded
            suspect = bool(arr.size) and float(np.iinfo(arr.dtype).max) > top and np.abs(arr).max() > top
        if suspect and np.abs(arr).max() > top:
            index = tuple(int(i) for i in np.argwhere(np.abs(arr) > top)[0])
            raise _unprocessable(
                f"{what}: {position(index)} is {float(arr[index]):g}, outside what the model's input type "
                f"{dtype.name} holds (-{top:.4g} to {top:.4g})", hint)
    return arr.astype(dtype)


_FLOAT_MAX = {2: float(np.finfo(np.float16).max), 4: float(np.finfo(np.float32).max)}


def _first_boolean(values: list[Any]) -> tuple[int, ...] | None:
    """Where the first JSON true/false is in nested lists (first 10,000 top-level items)."""
    for i, value in enumerate(values[:10_000]):
        if type(value) is bool:
            return (i,)
        if isinstance(value, list):
            inner = _first_boolean(value)
            if inner is not None:
                return (i, *inner)
    return None


def _at(values: Any, index: tuple[int, ...]) -> Any:
    for i in index:
        values = values[i]
    return values


def _position(index: tuple[int, ...], first: str = "row") -> str:
    """``row 0, column 3`` in rows of values; ``row 0, position [1, 2]`` deeper down (``value 4`` in a column)."""
    if len(index) == 1:
        return f"{first} {index[0]}"
    if len(index) == 2 and first == "row":
        return f"{first} {index[0]}, column {index[1]}"
    return f"{first} {index[0]}, position {list(index[1:])}"


def _json_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return f"{value!r:.40}"


_MISSING: Any = object()


def concat(parts: list[Any]) -> Any:
    """One batch from validated request parts (arrays of rows, or dicts of column arrays)."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, dict):
        return {name: np.concatenate([p[name] for p in parts]) for name in first}
    return np.concatenate(parts)
