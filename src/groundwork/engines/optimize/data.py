"""Eval and calibration data: named input arrays (first axis = batch) and optional labels.

Accepted forms, from the CLI or the API:

* a ``.npz`` file: one array per model input, named like the inputs; an array named
  ``labels`` (or ``label``, ``y``, ``target``) holds the labels;
* a ``.npy`` file: the single input;
* ``module:function`` (or ``path/to/file.py:function``): a function returning one
  of the forms below;
* in Python: a NumPy array, a mapping of name to array, or a pair
  ``(inputs, labels)`` of those.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.engines.optimize.loading import load_callable
from groundwork.errors import InvalidInput

LABEL_KEYS = ("labels", "label", "y", "target")


@dataclass(frozen=True)
class Dataset:
    """Model inputs by name, all with the same number of rows, and optional labels."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None = None
    origin: str = "data"

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    @property
    def names(self) -> list[str]:
        return list(self.inputs)

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {name: value[start:stop] for name, value in self.inputs.items()}

    def batch(self, size: int) -> dict[str, np.ndarray]:
        """The first ``size`` rows, repeated when the data set has fewer."""
        n = len(self)
        if size <= n:
            return self.rows(0, size)
        reps = -(-size // n)
        return {name: np.concatenate([value] * reps, axis=0)[:size] for name, value in self.inputs.items()}

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        for start in range(0, len(self), size):
            yield self.rows(start, start + size)

    def head(self, n: int) -> Dataset:
        labels = None if self.labels is None else self.labels[:n]
        return Dataset({k: v[:n] for k, v in self.inputs.items()}, labels, self.origin)


def load_data(spec: Any, *, role: str = "eval") -> Dataset:
    """A :class:`Dataset` from a path, a ``module:function`` reference, or in-memory arrays."""
    if isinstance(spec, Dataset):
        return spec
    origin = f"{role} data"
    if isinstance(spec, str | Path):
        text = str(spec)
        path = Path(text)
        origin = f"{role} data {text!r}"
        if path.suffix in (".npz", ".npy"):
            if not path.is_file():
                raise InvalidInput(f"{role} data file {text!r} does not exist")
            spec = _read_numpy(path, role)
        elif ":" in text:
            spec = load_callable(text, what=f"{role} data function")()
        else:
            raise InvalidInput(
                f"cannot read {role} data {text!r}",
                hint="pass a .npz file (one array per input, plus 'labels'), a .npy file, or module:function",
            )
    return _from_python(spec, role, origin)


def _read_numpy(path: Path, role: str) -> Any:
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read {role} data {str(path)!r}: {exc}") from exc


def _from_python(value: Any, role: str, origin: str) -> Dataset:
    labels: Any = None
    if isinstance(value, tuple) and len(value) == 2:
        value, labels = value
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        inputs = {"input": value}
    elif isinstance(value, Mapping):
        inputs = {}
        for key, array in value.items():
            if hasattr(array, "detach"):
                array = array.detach().cpu().numpy()
            if str(key) in LABEL_KEYS and labels is None:
                labels = np.asarray(array)
            else:
                inputs[str(key)] = np.asarray(array)
    else:
        raise InvalidInput(
            f"{origin} must be an array, a mapping of input name to array, or (inputs, labels); "
            f"got {type(value).__name__}"
        )
    if not inputs:
        raise InvalidInput(f"{origin} holds no input arrays")
    sizes = {name: (arr.shape[0] if arr.ndim else 0) for name, arr in inputs.items()}
    if len(set(sizes.values())) != 1 or 0 in sizes.values():
        raise InvalidInput(f"{origin}: every input needs the same, non-zero number of rows; got {sizes}")
    n = next(iter(sizes.values()))
    if labels is not None:
        if hasattr(labels, "detach"):
            labels = labels.detach().cpu().numpy()
        labels = np.asarray(labels)
        if labels.ndim == 0 or labels.shape[0] != n:
            raise InvalidInput(f"{origin}: {n} rows of inputs but labels of shape {labels.shape}")
    return Dataset(inputs, labels, origin)
