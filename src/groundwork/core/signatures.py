"""Signatures: what a model takes and returns (names, dtypes, shapes), inferred from examples.

    gw.Signature.infer(x_train[:5], y_train[:5]).describe()   # 'float64[N, 64] -> int64[N]'

The registry stores one with every version; serving validates requests against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from groundwork.errors import InvalidInput

#: How many rows of an input example a version keeps.
EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: a name (None for a lone unnamed tensor), a dtype and a shape.

    ``dtype`` is a NumPy dtype name (``float32``, ``float64``, ``int64``, ``bool``) or
    ``str`` for text. ``shape`` counts the batch as its first dimension; ``-1`` means
    any size.
    """

    name: str | None
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(data.get("name"), str(data["dtype"]), tuple(int(d) for d in data.get("shape", (-1,))))

    def describe(self) -> str:
        dims = ", ".join("N" if i == 0 and d == -1 else ("?" if d == -1 else str(d)) for i, d in enumerate(self.shape))
        return f"{self.dtype}[{dims}]"


@dataclass(frozen=True)
class Signature:
    """What a model takes and returns: names, dtypes and shapes.

    ``columnar`` models take a table (one spec per named column, as a pandas
    DataFrame or a ``{"column": [...]}`` mapping); the others take one tensor whose
    first dimension is the batch (rows).

    >>> gw.Signature.infer(x_train[:5], y_train[:5])   # doctest: +SKIP
    """

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    columnar: bool = False

    @classmethod
    def infer(cls, x: Any, y: Any = None) -> Signature:
        """The signature of example inputs ``x`` (and outputs ``y``).

        ``x`` may be a NumPy array, a nested list, a PyTorch tensor, a pandas DataFrame
        or a mapping of column name to values.
        """
        inputs, columnar = _specs_of(x, "inputs")
        outputs: tuple[TensorSpec, ...] = ()
        if y is not None:
            outputs, _ = _specs_of(y, "outputs")
        return cls(inputs, outputs, columnar)

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.to_dict() for s in self.inputs],
            "outputs": [s.to_dict() for s in self.outputs],
            "columnar": self.columnar,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        try:
            return cls(
                tuple(TensorSpec.from_dict(s) for s in data.get("inputs", ())),
                tuple(TensorSpec.from_dict(s) for s in data.get("outputs", ())),
                bool(data.get("columnar", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a model signature: {exc}", hint="build one with gw.Signature.infer(x, y)") from None

    def with_outputs(self, y: Any) -> Signature:
        return Signature(self.inputs, _specs_of(y, "outputs")[0], self.columnar)

    @property
    def input_names(self) -> list[str]:
        return [s.name or "input" for s in self.inputs]

    def describe(self) -> str:
        """``float64[N, 64] -> int64[N]``, or ``(a: float64, b: str) -> ...`` for tables."""
        if self.columnar:
            left = "(" + ", ".join(f"{s.name}: {s.describe()}" for s in self.inputs) + ")"
        else:
            left = ", ".join(s.describe() for s in self.inputs)
        right = ", ".join((f"{s.name}: " if s.name and len(self.outputs) > 1 else "") + s.describe() for s in self.outputs)
        return f"{left} -> {right or '?'}"


def dtype_name(dtype: Any) -> str:
    """The signature's name for a NumPy (or pandas) dtype: text and objects are ``str``."""
    import numpy as np

    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        return "str"  # pandas extension dtypes (string, category)
    if np_dtype.kind in ("U", "S", "O"):
        return "str"
    return str(np_dtype.name)


def _specs_of(value: Any, what: str) -> tuple[tuple[TensorSpec, ...], bool]:
    import numpy as np

    module = type(value).__module__
    if module.startswith("pandas"):
        if hasattr(value, "columns"):  # DataFrame
            return tuple(TensorSpec(str(c), dtype_name(value[c].dtype), (-1,)) for c in value.columns), True
        return (TensorSpec(getattr(value, "name", None) and str(value.name), dtype_name(value.dtype), (-1,)),), False
    if isinstance(value, Mapping):
        specs = []
        for key, column in value.items():
            arr = _as_array(column)
            specs.append(TensorSpec(str(key), dtype_name(arr.dtype), (-1, *arr.shape[1:])))
        if not specs:
            raise InvalidInput(f"cannot infer a signature from an empty mapping of {what}")
        return tuple(specs), True
    if isinstance(value, (tuple, list)) and value and all(_is_tensor(v) for v in value):
        arrays = [_as_array(v) for v in value]
        return tuple(TensorSpec(f"{what[:-1]}_{i}", dtype_name(a.dtype), (-1, *a.shape[1:])) for i, a in enumerate(arrays)), False
    arr = _as_array(value)
    if arr.ndim == 0:
        raise InvalidInput(f"cannot infer a signature from a scalar example of {what}", hint="give a batch of rows")
    if arr.dtype == np.dtype("O"):
        raise InvalidInput(
            f"the example {what} are ragged or mixed (NumPy made an object array of them)",
            hint="give rows of equal length and one type, or a pandas DataFrame",
        )
    return (TensorSpec(None, dtype_name(arr.dtype), (-1, *arr.shape[1:])),), False


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def _as_array(value: Any) -> Any:
    import numpy as np

    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except ValueError:  # ragged
        return np.asarray(value, dtype=object)


def example_rows(example: Any, limit: int = EXAMPLE_ROWS) -> Any:
    """The first ``limit`` rows of an example as JSON-able data (rows, or columns for tables)."""
    module = type(example).__module__
    if module.startswith("pandas") and hasattr(example, "columns"):
        head = example.head(limit)
        return {str(c): _as_array(head[c]).tolist() for c in head.columns}
    if isinstance(example, Mapping):
        return {str(k): _as_array(v)[:limit].tolist() for k, v in example.items()}
    return _as_array(example)[:limit].tolist()


__all__ = ["EXAMPLE_ROWS", "Signature", "TensorSpec", "dtype_name", "example_rows"]
