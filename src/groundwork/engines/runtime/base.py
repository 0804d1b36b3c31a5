"""The :class:`Session` protocol every runtime implements, and shared helpers.

A session takes one request, a mapping of input name to NumPy array whose first
axis is the batch, and returns the model's outputs as a list of NumPy arrays.
A request larger than the session's micro-batch is split into micro-batches and,
where the session has several streams, run on them in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from groundwork.engines.runtime.manifest import TensorSpec, VariantManifest
from groundwork.errors import InvalidInput

Inputs = Mapping[str, np.ndarray]
Outputs = list[np.ndarray]


@runtime_checkable
class Session(Protocol):
    """A loaded model variant, ready to run on this machine."""

    manifest: VariantManifest

    def run(self, inputs: Inputs) -> Outputs:
        """Run one request (any batch size); outputs in the manifest's output order."""
        ...

    def close(self) -> None:
        """Release threads and memory held by the engine."""
        ...


def batch_size_of(inputs: Inputs) -> int:
    sizes = {int(np.shape(v)[0]) if np.ndim(v) else 1 for v in inputs.values()}
    if len(sizes) != 1:
        raise InvalidInput(f"inputs disagree on the batch size: {sorted(sizes)}")
    return sizes.pop()


def slice_inputs(inputs: Inputs, start: int, stop: int) -> dict[str, np.ndarray]:
    return {name: value[start:stop] for name, value in inputs.items()}


def split(inputs: Inputs, micro_batch: int, parts: int = 1) -> list[dict[str, np.ndarray]]:
    """Cut a request into chunks of at most ``micro_batch`` rows, at least ``parts`` of them."""
    n = batch_size_of(inputs)
    if n <= 1:
        return [dict(inputs)]
    size = max(1, min(micro_batch, -(-n // max(1, parts))))
    return [slice_inputs(inputs, i, min(n, i + size)) for i in range(0, n, size)]


def concat(chunks: Sequence[Outputs]) -> Outputs:
    if len(chunks) == 1:
        return chunks[0]
    return [np.concatenate([chunk[i] for chunk in chunks], axis=0) for i in range(len(chunks[0]))]


def check_inputs(inputs: Inputs, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """The request with each input present, cast to its dtype, and of the expected rank/shape."""
    names = [spec.name for spec in specs]
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InvalidInput(f"missing model input(s) {missing}; the model takes {names}")
    extra = [n for n in inputs if n not in names]
    if extra:
        raise InvalidInput(f"unknown model input(s) {extra}; the model takes {names}")
    out: dict[str, np.ndarray] = {}
    for spec in specs:
        value = np.asarray(inputs[spec.name])
        if value.ndim != len(spec.shape):
            raise InvalidInput(
                f"input {spec.name!r} has shape {value.shape}, the model expects rank {len(spec.shape)} "
                f"(shape {_shape_text(spec.shape)})"
            )
        for axis, (got, want) in enumerate(zip(value.shape, spec.shape, strict=True)):
            if axis > 0 and want > 0 and got != want:
                raise InvalidInput(
                    f"input {spec.name!r} has shape {value.shape}, the model expects {_shape_text(spec.shape)}"
                )
        out[spec.name] = np.ascontiguousarray(value, dtype=np.dtype(spec.dtype))
    return out


def _shape_text(shape: Sequence[int]) -> str:
    return "(" + ", ".join("batch" if i == 0 else ("?" if d < 0 else str(d)) for i, d in enumerate(shape)) + ")"


def flatten_outputs(value: Any) -> list[Any]:
    """A model's outputs (tensor, tuple, dict, ModelOutput) as a flat list, in order."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [leaf for item in value.values() for leaf in flatten_outputs(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in flatten_outputs(item)]
    if hasattr(value, "to_tuple") and callable(value.to_tuple):  # transformers ModelOutput
        return flatten_outputs(value.to_tuple())
    return [value]


def run_split(
    inputs: Inputs,
    micro_batch: int,
    streams: int,
    run_one: Callable[[dict[str, np.ndarray]], Outputs],
    run_many: Callable[[list[dict[str, np.ndarray]]], list[Outputs]] | None,
) -> Outputs:
    """Run a request whole when it fits one micro-batch, else split it over the streams."""
    n = batch_size_of(inputs)
    if n <= 1 or (streams <= 1 and n <= micro_batch):
        return run_one(dict(inputs))
    chunks = split(inputs, micro_batch, parts=streams if run_many is not None else 1)
    if run_many is None or streams <= 1 or len(chunks) == 1:
        return concat([run_one(chunk) for chunk in chunks])
    return concat(run_many(chunks))
