"""Predictors (a loaded model version) and access to the files of a model artifact.

A :class:`Predictor` turns inputs into outputs with one runtime: ONNX Runtime, or the
model's native library. ``predict(x)`` accepts what a user has at hand (NumPy arrays,
nested lists, pandas DataFrames, ``{"column": [...]}`` mappings, torch tensors) and
returns a NumPy array: the model's first output (class labels for a classifier).
``predict_array`` is the server's fast path: its input is already validated and in
the predictor's own dtype.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from groundwork.core.registry import EXAMPLE_FILE, MODEL_FILE, read_model_document
from groundwork.core.signatures import Signature
from groundwork.errors import InvalidInput, UnprocessableInput
from groundwork.storage.artifacts import ArtifactStore

#: Where whole model folders are restored when a runtime needs real files (optimized variants).
CACHE_ENV = "GROUNDWORK_MODEL_CACHE"


class ModelFiles:
    """The files of one model artifact, each read (and verified) on demand."""

    def __init__(self, artifacts: ArtifactStore, digest: str) -> None:
        self.artifacts = artifacts
        self.digest = digest
        entries = artifacts.manifest(digest)
        if entries is None:
            raise InvalidInput(f"artifact {digest[:12]} is a file, not a model folder")
        self._entries = {e.path: e.digest for e in entries}

    def names(self) -> list[str]:
        return sorted(self._entries)

    def digest_of(self, name: str) -> str:
        try:
            return self._entries[name]
        except KeyError:
            raise InvalidInput(f"model artifact {self.digest[:12]} has no file {name!r}") from None

    def read(self, name: str) -> bytes:
        return self.artifacts.get_bytes(self.digest_of(name))

    def document(self) -> dict[str, Any]:
        return read_model_document(self.read(MODEL_FILE), self.digest)

    def example(self) -> Any | None:
        if EXAMPLE_FILE not in self._entries:
            return None
        return json.loads(self.read(EXAMPLE_FILE))

    def folder(self) -> Path:
        """The whole artifact restored as a folder (cached by digest; restored atomically once)."""
        root = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "groundwork-models")
        final = root / self.digest
        if (final / MODEL_FILE).exists():
            return final
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.digest[:12]}-", dir=root))
        try:
            self.artifacts.restore(self.digest, staging)
            try:
                os.rename(staging, final)
            except OSError:  # another process restored it first
                if not (final / MODEL_FILE).exists():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return final


class Predictor:
    """A loaded model version. Subclasses implement :meth:`predict_array`."""

    #: which runtime answers: "onnxruntime", "sklearn", "torch", or an optimized engine's name
    backend: str = "?"

    def __init__(self, signature: Signature | None, flavor: str) -> None:
        self.signature = signature
        self.flavor = flavor
        self.name: str | None = None
        self.version: int | None = None

    def __repr__(self) -> str:
        ref = f"{self.name}/{self.version}" if self.name else "unregistered"
        return f"<{type(self).__name__} {ref} flavor={self.flavor} backend={self.backend}>"

    @property
    def columnar(self) -> bool:
        return bool(self.signature and self.signature.columnar)

    @property
    def input_dtype(self) -> np.dtype[Any] | None:
        """The dtype :meth:`predict_array` wants for a tensor input (None: any, or a table)."""
        if self.signature and not self.signature.columnar and len(self.signature.inputs) == 1:
            dtype = self.signature.inputs[0].dtype
            if dtype != "str":
                return np.dtype(dtype)
        return None

    def predict(self, x: Any) -> Any:
        """Predictions for the rows of ``x`` (the model's first output, as a NumPy array)."""
        return self.predict_array(self.prepare(x))

    def prepare(self, x: Any) -> Any:
        """``x`` as :meth:`predict_array` takes it: an array of rows, or a mapping of column arrays."""
        if type(x).__module__.startswith("torch"):
            x = x.detach().cpu().numpy()
        if self.columnar:
            return columns_of(x)
        if isinstance(x, Mapping):
            if len(x) == 1:
                x = next(iter(x.values()))
            else:
                raise InvalidInput("this model takes one tensor of rows, not a mapping of columns")
        if type(x).__module__.startswith("pandas"):
            x = x.to_numpy()
        dtype = self.input_dtype
        try:
            arr = np.asarray(x, dtype=dtype) if dtype is not None else np.asarray(x)
        except (ValueError, TypeError) as exc:
            raise UnprocessableInput(f"cannot make an array of the inputs: {exc}") from None
        return arr

    def predict_array(self, batch: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release the runtime's resources (optional)."""


def columns_of(x: Any) -> dict[str, np.ndarray[Any, Any]]:
    """A table (DataFrame or mapping of column -> values) as a dict of NumPy arrays."""
    if type(x).__module__.startswith("pandas") and hasattr(x, "columns"):
        return {str(c): x[c].to_numpy() for c in x.columns}
    if isinstance(x, Mapping):
        return {str(k): np.asarray(v) for k, v in x.items()}
    raise InvalidInput(
        "this model takes a table: give a pandas DataFrame or a mapping of column name to values",
    )


def to_numpy(value: Any) -> Any:
    """A runtime's output as a NumPy array (torch tensors, lists and tuples' first element)."""
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
        value = value[0]
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def agreement(native: Any, converted: Any) -> tuple[bool, str]:
    """Whether a converted model's outputs match the native ones, and how closely (for ``info``)."""
    a, b = np.asarray(native), np.asarray(converted)
    if a.shape != b.shape:
        if a.size == b.size:
            b = b.reshape(a.shape)
        else:
            return False, f"output shapes differ: native {a.shape}, converted {b.shape}"
    if a.dtype.kind in "iubUSO" or b.dtype.kind in "iubUSO":
        same = float(np.mean(a.astype(str) == b.astype(str))) if a.size else 1.0
        return same >= 0.99, f"same label on {same:.1%} of {len(a)} rows"
    if not a.size:
        return True, "no rows to compare"
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    ok = bool(np.allclose(a, b, rtol=1e-3, atol=1e-4))
    return ok, f"max abs difference {diff:.2e} on {len(a)} rows"


def synthetic_input(signature: Signature, rows: int = 16) -> Any:
    """Random inputs matching a tensor signature (to check a conversion without an example)."""
    spec = signature.inputs[0]
    shape = (rows, *[d if d > 0 else 1 for d in spec.shape[1:]])
    rng = np.random.default_rng(0)
    kind = np.dtype(spec.dtype).kind if spec.dtype != "str" else "U"
    if kind == "f":
        return rng.normal(size=shape).astype(spec.dtype)
    if kind in "iu":
        return rng.integers(0, 10, size=shape).astype(spec.dtype)
    if kind == "b":
        return rng.integers(0, 2, size=shape).astype(bool)
    return None


@contextlib.contextmanager
def quiet_warnings() -> Any:
    """Silence the deprecation chatter of converters (kept out of the user's run logs)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
