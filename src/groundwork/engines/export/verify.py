"""What an export is checked on, and how its answers are compared with the source model's.

The rows: the version's registered input example first, then a verification set (a
``.npz``/``.npy`` file or ``module:function``, as ``groundwork optimize`` takes them; by
default rows made from the example: resampled, with noise at the example's scale for
floats and swapped values for integers, seeded). The reference answers come from the
source model in Python (its native flavor: the PyTorch module, the scikit-learn
estimator; the ONNX form where the native one cannot load here).

The comparison is on the first output. Integer outputs (labels) are compared as
*label agreement* (the share of rows with the same label); float outputs as the mean
*cosine* similarity of each row's values (rows of one value: the share within 1% of
the reference). A row where the export answers NaN or infinity counts as a
disagreement, whatever the measure.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from groundwork.errors import InvalidInput

#: Rows made from the example when no verification set is given.
DEFAULT_ROWS = 64
#: At most this many rows of a verification set are used (the first ones).
MAX_ROWS = 2000

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
               "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(string)": "str"}


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str
    shape: tuple[int | str | None, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype,
                "shape": [d if isinstance(d, int) and d > 0 else -1 for d in self.shape]}


def graph_io(model: bytes) -> tuple[list[InputSpec], list[InputSpec]]:
    """The inputs and outputs an ONNX graph declares (via ONNX Runtime)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InvalidInput(f"ONNX Runtime cannot load the model's ONNX form: {str(exc).splitlines()[0][:300]}") from None

    def specs(nodes: Any) -> list[InputSpec]:
        return [InputSpec(n.name, _ORT_DTYPES.get(n.type, "float32"), tuple(n.shape or ())) for n in nodes]

    return specs(session.get_inputs()), specs(session.get_outputs())


@dataclass
class CheckData:
    """Rows to check on, by graph input name; the first ``example_rows`` are the registered example."""

    inputs: dict[str, np.ndarray]
    example_rows: int
    origin: str

    def __len__(self) -> int:
        return int(next(iter(self.inputs.values())).shape[0])

    def rows(self, start: int, stop: int) -> dict[str, np.ndarray]:
        return {k: v[start:stop] for k, v in self.inputs.items()}


def _as_inputs(value: Any, specs: list[InputSpec], what: str) -> dict[str, np.ndarray]:
    if isinstance(value, Mapping):
        if len(specs) == 1 and len(value) == 1:
            value = next(iter(value.values()))
        else:
            out = {}
            for spec in specs:
                if spec.name not in value:
                    raise InvalidInput(f"{what} has no input {spec.name!r} (it has {', '.join(map(str, value))})")
                out[spec.name] = _array(value[spec.name], spec)
            return out
    if len(specs) != 1:
        raise InvalidInput(f"{what} is one array, but the model takes {len(specs)} inputs ({', '.join(s.name for s in specs)})",
                           hint="give a .npz file with one array per input name")
    return {specs[0].name: _array(value, specs[0])}


def _array(value: Any, spec: InputSpec) -> np.ndarray:
    if spec.dtype == "str":
        raise InvalidInput(f"input {spec.name!r} is text: web and edge exports take tensors only",
                           hint="export a model whose graph starts from numbers (token ids, features)")
    try:
        arr = np.asarray(value, dtype=spec.dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"cannot read input {spec.name!r} as {spec.dtype}: {exc}") from None
    if len(spec.shape) == 2 and arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    return arr


def check_data(example: Any, specs: list[InputSpec], data: Any = None, *, rows: int = DEFAULT_ROWS,
               seed: int = 0) -> CheckData:
    """The rows an export is checked on: the example, then ``data`` (or rows made from the example)."""
    if example is None and data is None:
        raise InvalidInput("this version was registered without an input example, and no verification data was given",
                           hint="pass --data FILE.npz (one array per input), or log the model with example=...")
    parts: list[dict[str, np.ndarray]] = []
    example_rows = 0
    if example is not None:
        parts.append(_as_inputs(example, specs, "the registered example"))
        example_rows = len(next(iter(parts[0].values())))
    if data is not None:
        from groundwork.engines.optimize.data import load_data

        dataset = load_data(data, role="verification")
        given = dict(dataset.inputs)
        extra = _as_inputs(given if len(given) > 1 else next(iter(given.values())), specs, dataset.origin)
        parts.append({k: v[:MAX_ROWS] for k, v in extra.items()})
        origin = f"{dataset.origin} ({min(len(dataset), MAX_ROWS)} rows)"
    else:
        parts.append(_made_from(parts[0], rows, seed))
        origin = f"{rows} rows made from the example (seed {seed})"
    inputs: dict[str, np.ndarray] = {}
    for spec in specs:
        arrays = [p[spec.name] for p in parts]
        widths = {a.shape[1:] for a in arrays}
        if len(widths) > 1:
            raise InvalidInput(f"input {spec.name!r}: the example's rows are {arrays[0].shape[1:]}, the data's "
                               f"{arrays[-1].shape[1:]}", hint="give verification data shaped like the example")
        inputs[spec.name] = np.concatenate(arrays)
    return CheckData(inputs, example_rows, f"the registered example ({example_rows} rows) + {origin}"
                     if example_rows else origin)


def _made_from(example: dict[str, np.ndarray], rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = len(next(iter(example.values())))
    pick = rng.integers(0, n, size=rows)
    out = {}
    for name, arr in example.items():
        base = arr[pick].copy()
        if base.dtype.kind == "f":
            spread = float(np.std(arr)) or 1.0
            noisy = base + rng.normal(0.0, 0.1 * spread, size=base.shape)
            base = np.clip(noisy, float(arr.min()), float(arr.max())).astype(arr.dtype)
        elif base.dtype.kind in "iu":
            values = np.unique(arr)
            swap = rng.random(base.shape) < 0.15
            base[swap] = rng.choice(values, size=int(swap.sum()))
        elif base.dtype.kind == "b":
            flip = rng.random(base.shape) < 0.1
            base[flip] = ~base[flip]
        out[name] = base
    return out


def reference_outputs(predictor: Any, data: CheckData, batch: int = 64) -> np.ndarray:
    """The source model's first output on every row (in batches)."""
    from groundwork.engines.flavors.base import to_numpy

    names = list(data.inputs)
    outs = []
    for start in range(0, len(data), batch):
        chunk = data.rows(start, start + batch)
        value = chunk if len(names) > 1 or predictor.columnar else chunk[names[0]]
        outs.append(np.asarray(to_numpy(predictor.predict(value))))
    return np.concatenate(outs)


def compare(reference: np.ndarray, exported: Any, threshold: float, example_rows: int) -> dict[str, Any]:
    """How closely ``exported`` answers like ``reference`` (row by row); ``passed`` against ``threshold``."""
    ref = np.asarray(reference)
    try:
        got = np.asarray(exported, dtype=np.float64 if ref.dtype.kind == "f" else None)
    except (TypeError, ValueError):
        return {"measure": "shape", "value": 0.0, "threshold": threshold, "rows": len(ref), "passed": False,
                "detail": "the export's outputs are ragged (not one array)"}
    if got.shape != ref.shape:
        if got.size == ref.size:
            got = got.reshape(ref.shape)
        else:
            return {"measure": "shape", "value": 0.0, "threshold": threshold, "rows": len(ref), "passed": False,
                    "detail": f"the export answers shape {got.shape}, the source model {ref.shape}"}
    rows = len(ref)
    flat_ref = ref.reshape(rows, -1)
    flat_got = got.reshape(rows, -1)
    bad = ~np.isfinite(flat_got.astype(np.float64)).all(axis=1) if flat_got.dtype.kind in "fc" else np.zeros(rows, bool)
    if ref.dtype.kind in "iub" or (ref.dtype.kind == "O"):
        per_row = (flat_ref.astype(str) == flat_got.astype(str)).all(axis=1).astype(np.float64)
        measure = "label"
    elif flat_ref.shape[1] == 1:
        a, b = flat_ref[:, 0].astype(np.float64), flat_got[:, 0].astype(np.float64)
        per_row = (np.abs(a - b) <= 0.01 * np.maximum(1.0, np.abs(a))).astype(np.float64)
        measure = "within 1%"
    else:
        a, b = flat_ref.astype(np.float64), flat_got.astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_row = np.where(norms > 0, (a * b).sum(axis=1) / norms, np.where(
                (np.abs(a).sum(axis=1) == 0) & (np.abs(b).sum(axis=1) == 0), 1.0, 0.0))
        measure = "cosine"
    per_row = np.where(bad | ~np.isfinite(per_row), 0.0, per_row)
    value = float(per_row.mean()) if rows else 1.0
    out: dict[str, Any] = {
        "measure": measure, "value": value, "threshold": threshold, "rows": rows, "passed": bool(value >= threshold),
        "min": float(per_row.min()) if rows else 1.0, "non_finite_rows": int(bad.sum()),
    }
    if example_rows:
        out["example_rows"] = example_rows
        out["example_value"] = float(per_row[:example_rows].mean())
    if measure == "cosine" and flat_ref.shape[1] > 1:
        out["argmax_agreement"] = float((flat_ref.argmax(axis=1) == flat_got.argmax(axis=1)).mean())
    if bad.any():
        out["passed"] = False
        out["detail"] = f"the export answers NaN or infinity on {int(bad.sum())} of {rows} rows"
    return out


def describe(agreement: Mapping[str, Any]) -> str:
    """``label agreement 100.0% on 69 rows (threshold 99.0%)``."""
    if agreement.get("measure") == "shape":
        return str(agreement.get("detail"))
    value, threshold = agreement["value"], agreement["threshold"]
    if agreement["measure"] == "cosine":
        text = f"mean cosine {value:.4f} on {agreement['rows']} rows (min {agreement['min']:.4f}; threshold {threshold})"
    else:
        name = "label agreement" if agreement["measure"] == "label" else "rows within 1%"
        text = f"{name} {value:.1%} on {agreement['rows']} rows (threshold {threshold:.1%})"
    if agreement.get("detail"):
        text += f"; {agreement['detail']}"
    return text


def ort_latency(model: bytes | str, inputs: dict[str, np.ndarray], threads: int, repeat: int) -> float:
    """Median milliseconds of one ONNX Runtime (Python, CPU) call on ``inputs`` with ``threads`` threads."""
    import onnxruntime as ort

    from groundwork.engines.flavors.onnx import session_options

    session = ort.InferenceSession(model, session_options(threads), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()][:1]
    for _ in range(3):
        session.run(names, inputs)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        session.run(names, inputs)
        times.append((time.perf_counter() - started) * 1000)
    return float(statistics.median(times))


def ort_outputs(model: bytes | str, data: CheckData, batch: int = 64, *, precision: str = "fp32",
                operators: set[tuple[str, str]] | None = None) -> np.ndarray:
    """The first output of ``model`` on ONNX Runtime (Python, CPU) for every row of ``data``."""
    import onnxruntime as ort

    from groundwork.engines.flavors.onnx import session_options

    try:
        session = ort.InferenceSession(model, session_options(None), providers=["CPUExecutionProvider"])
    except Exception as exc:
        problem = unsupported_error(f"onnxruntime {ort.__version__}", str(exc), operators, precision)
        if problem is not None:
            raise problem from None
        raise InvalidInput(f"ONNX Runtime cannot load the exported model: {str(exc).splitlines()[0][:300]}") from None
    name = session.get_outputs()[0].name
    return np.concatenate([session.run([name], data.rows(s, s + batch))[0] for s in range(0, len(data), batch)])


_NO_KERNEL = re.compile(r"(?:implementation for|kernel for)\s+'?([A-Za-z][\w.]*)'?(?:\((\d+)\))?", re.IGNORECASE)
_BAD_TYPE = re.compile(r"Type '([^']+)' of input parameter \([^)]*\) of operator \(([A-Za-z][\w.]*)\)")


def unsupported_operator(message: str, operators: set[tuple[str, str]] | None = None) -> str | None:
    """The operator a runtime's load error names as unsupported (``Celu (ai.onnx) on tensor(float16)``), or None."""
    domains = {op: domain for domain, op in sorted(operators or set())}
    match = _NO_KERNEL.search(message)
    if match:
        name = match.group(1)
        opset = f", opset {match.group(2)}" if match.group(2) else ""
        return f"{name} ({domains.get(name, 'ai.onnx')}{opset})"
    match = _BAD_TYPE.search(message)
    if match:
        name = match.group(2)
        return f"{name} ({domains.get(name, 'ai.onnx')}) on {match.group(1)}"
    return None


def unsupported_error(runtime: str, message: str, operators: set[tuple[str, str]] | None, precision: str) -> InvalidInput | None:
    """The one-line error for a runtime that cannot run an operator of the exported graph (None: another problem)."""
    missing = unsupported_operator(message, operators)
    if missing is None:
        return None
    hint = ("export at fp32 or int8 (this operator has no half-precision kernel)" if precision == "fp16" and " on " in missing
            else "export with --target onnx or ort-mobile (the full ONNX Runtime), or convert the model without it")
    return InvalidInput(f"{runtime} cannot run this {precision} model: it has no kernel for the operator {missing}",
                        hint=hint)
