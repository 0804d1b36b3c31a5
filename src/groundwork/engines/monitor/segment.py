"""One segment of a model's prediction log: its Parquet table, and the summary kept as it fills.

A segment holds the requests one serving process answered for one model over a while
(up to a size or an age). Each Parquet row is one input row of one request:

=================  ====================================================================
column             what
=================  ====================================================================
``ts``             when the request was answered (UNIX seconds)
``request_id``     the request (a shadow copy carries its primary request's id)
``row``            the row's index within its request (-1: a request logged without rows)
``route``          the route that answered: the alias served, or a ``--route`` target
``alias``          the alias the answering version was served under (null: pinned)
``version``        the model version that answered
``shadow``         true for a shadow copy (its answer was never returned)
``status``         the HTTP status of the answer (200, 4xx, 500)
``error``          the error kind of a failed request (null when it succeeded)
``latency_ms``     server time of the request, body read to answer sent
``inputs``         the row's inputs: a fixed-size list of numbers (``in.NAME`` columns for
                   a model that takes named columns, ``text`` for text, ``inputs_json``
                   for anything else)
``prediction``     the row's output (``predictions``: a fixed-size list, for vectors;
                   ``outputs_json`` for anything else)
=================  ====================================================================

The summary is built while rows arrive (so closing costs no second pass): per group of
(route, alias, version, shadow) it counts requests, rows, statuses and errors, keeps a
latency sketch, and sketches every input feature and the predictions (numbers) or counts
them (categories). :func:`summary_groups` reads it back; sketches of many segments merge
by addition (:mod:`.sketch`). Shadow copies are paired with their primary requests
when the segment closes: ``pairs`` says how often the two answers agreed.
"""

from __future__ import annotations

import io
import math
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import orjson

from groundwork.engines.monitor.sketch import BlockSketch, CategoryCounts, NumberSketch, Summary, from_json

SUMMARY_FORMAT = 1
#: Inputs wider than this many values a row are logged whole but not summarized per feature.
MAX_FEATURES = 1024
#: Outputs wider than this many values a row are logged whole but not summarized.
MAX_OUTPUTS = 64

# A record, as queued by the prediction log: a plain tuple (building one is the request path's only cost).
TS, MODEL, ALIAS, VERSION, ROUTE, SHADOW, REQUEST_ID, INPUTS, ROWS, OUTPUTS, LATENCY_S, STATUS, ERROR = range(13)

_NUMERIC = "iufb"


@dataclass(frozen=True)
class Layout:
    """How a model's inputs and outputs become columns (fixed for a segment)."""

    inputs: str  # tensor | columns | text | json
    names: tuple[str, ...]  # the features summarized: x0, x1, ... ; column names; ("text_length",)
    kinds: tuple[str, ...]  # number | category, per feature
    input_dtype: str  # of a tensor's values, or of each column ("" when mixed)
    outputs: str  # vector | matrix | json
    output_names: tuple[str, ...]
    output_kind: str  # number | category
    output_dtype: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layout:
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    @property
    def width(self) -> int:
        return len(self.names) if self.inputs == "tensor" else 0


def _kind_of(dtype: np.dtype[Any]) -> str:
    return "number" if dtype.kind in "iuf" else "category"


def layout_of(inputs: Any, outputs: Any) -> Layout:
    """The layout that logs a request with these (validated) inputs and outputs."""
    names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    in_kind, in_dtype = "json", ""
    if isinstance(inputs, np.ndarray) and inputs.ndim >= 1 and inputs.dtype.kind in _NUMERIC:
        width = int(np.prod(inputs.shape[1:])) if inputs.ndim > 1 else 1
        if width <= MAX_FEATURES:
            in_kind, in_dtype = "tensor", inputs.dtype.str
            names = tuple(f"x{i}" for i in range(width))
            kinds = ("number",) * width
    elif isinstance(inputs, dict) and inputs and all(isinstance(v, np.ndarray) and v.ndim == 1 for v in inputs.values()):
        in_kind, names = "columns", tuple(str(k) for k in inputs)
        kinds = tuple(_kind_of(v.dtype) for v in inputs.values())
    elif _is_text(inputs):
        in_kind, names, kinds = "text", ("text_length",), ("number",)
    out_names: tuple[str, ...] = ()
    out_kind, out_value, out_dtype = "json", "number", ""
    array = _as_array(outputs)
    if array is not None and array.dtype.kind in _NUMERIC + "OUS":
        if array.ndim == 1:
            out_kind, out_names = "vector", ("prediction",)
        elif array.ndim == 2 and array.shape[1] <= MAX_OUTPUTS:
            out_kind, out_names = "matrix", tuple(f"prediction_{i}" for i in range(array.shape[1]))
        if out_kind != "json":
            out_value = "number" if array.dtype.kind in "f" else "category"
            out_dtype = array.dtype.str if array.dtype.kind in _NUMERIC else "str"
    return Layout(in_kind, names, kinds, in_dtype, out_kind, out_names, out_value, out_dtype)


def layout_from_signature(signature: Any) -> Layout | None:
    """The layout a version's requests will be logged in, from its signature (None when it cannot say)."""
    if signature is None or not signature.inputs:
        return None
    inputs = signature.inputs
    outputs = signature.outputs
    out_names: tuple[str, ...] = ()
    out_kind, out_value, out_dtype = "json", "number", ""
    if len(outputs) == 1 and outputs[0].dtype != "str" and len(outputs[0].shape) in (1, 2):
        spec = outputs[0]
        dtype = np.dtype(spec.dtype)
        out_value = "number" if dtype.kind == "f" else "category"
        out_dtype = dtype.str
        if len(spec.shape) == 1:
            out_kind, out_names = "vector", ("prediction",)
        elif 0 < spec.shape[1] <= MAX_OUTPUTS:
            out_kind, out_names = "matrix", tuple(f"prediction_{i}" for i in range(spec.shape[1]))
    if signature.columnar:
        names = tuple(s.name or "" for s in inputs)
        kinds = tuple("category" if s.dtype == "str" or np.dtype(s.dtype).kind not in "iuf" else "number" for s in inputs)
        return Layout("columns", names, kinds, "", out_kind, out_names, out_value, out_dtype)
    spec = inputs[0]
    if len(inputs) != 1 or spec.dtype == "str" or any(d <= 0 for d in spec.shape[1:]):
        return None
    width = int(np.prod(spec.shape[1:])) if len(spec.shape) > 1 else 1
    if width > MAX_FEATURES:
        return None
    return Layout("tensor", tuple(f"x{i}" for i in range(width)), ("number",) * width, np.dtype(spec.dtype).str,
                  out_kind, out_names, out_value, out_dtype)


def _is_text(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "OUS" and all(isinstance(v, str) for v in value[:8].tolist())
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value[:8])


def _as_array(value: Any) -> np.ndarray[Any, Any] | None:
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, list):
        try:
            array = np.asarray(value)
        except ValueError:
            return None
        return array if array.dtype.kind != "O" or array.ndim == 1 else None
    return None


# -- the summary of one group ----------------------------------------------------------------------------
@dataclass
class Group:
    """What one (route, alias, version, shadow) answered within a segment."""

    route: str
    alias: str | None
    version: int
    shadow: bool
    requests: int = 0
    rows: int = 0
    first_ts: float = math.inf
    last_ts: float = -math.inf
    statuses: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latency: NumberSketch = field(default_factory=NumberSketch)
    features: dict[str, Summary] = field(default_factory=dict)
    outputs: dict[str, Summary] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str | None, int, bool]:
        return (self.route, self.alias, self.version, self.shadow)

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route, "alias": self.alias, "version": self.version, "shadow": self.shadow,
            "requests": self.requests, "rows": self.rows,
            "first_ts": self.first_ts if self.requests else None, "last_ts": self.last_ts if self.requests else None,
            "statuses": dict(self.statuses), "errors": dict(self.errors), "latency_ms": self.latency.to_json(),
            "features": {k: v.to_json() for k, v in self.features.items()},
            "outputs": {k: v.to_json() for k, v in self.outputs.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Group:
        group = cls(str(data["route"]), data.get("alias"), int(data["version"]), bool(data["shadow"]),
                    int(data["requests"]), int(data["rows"]),
                    math.inf if data.get("first_ts") is None else float(data["first_ts"]),
                    -math.inf if data.get("last_ts") is None else float(data["last_ts"]),
                    Counter({str(k): int(v) for k, v in data.get("statuses", {}).items()}),
                    Counter({str(k): int(v) for k, v in data.get("errors", {}).items()}),
                    NumberSketch.from_json(data.get("latency_ms") or {}))
        group.features = {k: from_json(v) for k, v in (data.get("features") or {}).items()}
        group.outputs = {k: from_json(v) for k, v in (data.get("outputs") or {}).items()}
        return group


class _GroupAccumulator:
    """A :class:`Group` being filled: numeric features in one :class:`BlockSketch`, flushed at the end."""

    def __init__(self, key: tuple[str, str | None, int, bool], layout: Layout) -> None:
        self.group = Group(*key)
        self.layout = layout
        numbers = [i for i, kind in enumerate(layout.kinds) if kind == "number"]
        self.number_columns = numbers
        self.block = BlockSketch(len(numbers)) if layout.inputs in ("tensor", "text") else None
        self.column_sketches: dict[str, Summary] = {}
        self.out_block = BlockSketch(len(layout.output_names)) if layout.output_kind == "number" and \
            layout.outputs != "json" else None
        self.out_counts: dict[str, CategoryCounts] = {}

    def add_rows(self, inputs: Any, outputs: Any) -> None:
        layout = self.layout
        if layout.inputs in ("tensor", "text") and self.block is not None:
            self.block.add(inputs)
        elif layout.inputs == "columns":
            for name, kind in zip(layout.names, layout.kinds, strict=True):
                sketch = self.column_sketches.get(name)
                if sketch is None:
                    sketch = self.column_sketches[name] = NumberSketch() if kind == "number" else CategoryCounts()
                sketch.add(inputs[name])
        if layout.outputs == "json":
            return
        if self.out_block is not None:
            self.out_block.add(outputs)
        else:
            values = outputs.reshape(len(outputs), -1)
            for j, name in enumerate(layout.output_names):
                self.out_counts.setdefault(name, CategoryCounts()).add(values[:, j])

    def finish(self) -> Group:
        group = self.group
        layout = self.layout
        if self.block is not None:
            group.features = dict(zip(layout.names, self.block.sketches(), strict=True))
        else:
            group.features = dict(self.column_sketches)
        if self.out_block is not None:
            group.outputs = dict(zip(layout.output_names, self.out_block.sketches(), strict=True))
        else:
            group.outputs = dict(self.out_counts)
        return group


# -- building a segment ------------------------------------------------------------------------------------
class SegmentBuilder:
    """The open segment of one model: Arrow record batches and the summary, filled per flush."""

    def __init__(self, model: str, layout: Layout, *, opened_at: float) -> None:
        self.id = uuid.uuid4().hex
        self.model = model
        self.layout = layout
        self.opened_at = opened_at
        self.batches: list[Any] = []
        self.rows = 0
        self.requests = 0
        self.nbytes = 0
        self.first_ts = math.inf
        self.last_ts = -math.inf
        self._groups: dict[tuple[str, str | None, int, bool], _GroupAccumulator] = {}
        self._shadowed = False
        self._schema = arrow_schema(layout)

    def fits(self, inputs: Any, outputs: Any) -> bool:
        """Whether a request with these inputs and outputs is logged in this segment's layout."""
        return layout_of(inputs, outputs) == self.layout

    def add(self, records: list[tuple[Any, ...]], fields: list[tuple[Any, ...]] | None = None) -> None:
        """Log records (all of this model, in this layout or without inputs).

        Field by field over all records at once (``zip(*records)``, or ``fields`` when the
        caller has it already): the per-record Python work is a few tuple reads, so a flush of
        thousands of requests costs milliseconds.
        """
        if not records:
            return
        if fields is None:
            fields = list(zip(*records, strict=True))
        statuses = set(fields[STATUS])
        if statuses == {200}:
            self._add_answered(records, fields)
        else:
            answered = [r for r in records if r[STATUS] == 200 and r[OUTPUTS] is not None and r[ROWS] > 0]
            failed = [r for r in records if not (r[STATUS] == 200 and r[OUTPUTS] is not None and r[ROWS] > 0)]
            if answered:
                self._add_answered(answered, list(zip(*answered, strict=True)))
            self._add_failed(failed)
        self.first_ts = min(self.first_ts, min(fields[TS]))
        self.last_ts = max(self.last_ts, max(fields[TS]))
        self.requests += len(records)

    def _accumulator(self, key: tuple[str, str | None, int, bool]) -> _GroupAccumulator:
        acc = self._groups.get(key)
        if acc is None:
            acc = self._groups[key] = _GroupAccumulator(key, self.layout)
        return acc

    def _add_answered(self, records: list[tuple[Any, ...]], fields: list[tuple[Any, ...]]) -> None:
        import pyarrow as pa

        layout = self.layout
        counts = np.array(fields[ROWS], dtype=np.int64)
        total = int(counts.sum())
        inputs = _concat_inputs(layout, fields[INPUTS], total)
        outputs = _concat_outputs(layout, fields[OUTPUTS], total)
        per_request = _request_columns(fields)
        single = all(len(set(fields[i])) == 1 for i in (ROUTE, ALIAS, VERSION, SHADOW))
        if single:
            key = (fields[ROUTE][0], fields[ALIAS][0], int(fields[VERSION][0]), bool(fields[SHADOW][0]))
            self._fill(key, counts, slice(None), slice(None), inputs, outputs, per_request)
        else:
            keys = list(zip(fields[ROUTE], fields[ALIAS], fields[VERSION], fields[SHADOW], strict=True))
            codes = {key: i for i, key in enumerate(dict.fromkeys(keys))}
            request_code = np.array([codes[k] for k in keys], dtype=np.int64)
            row_code = np.repeat(request_code, counts)
            for (route, alias, version, shadow), code in codes.items():
                self._fill((route, alias, int(version), bool(shadow)), counts, request_code == code, row_code == code,
                           inputs, outputs, per_request)
        starts = np.cumsum(counts) - counts
        one_row = total == len(records)
        row_index = np.zeros(total, dtype=np.int32) if one_row else \
            (np.arange(total, dtype=np.int64) - np.repeat(starts, counts)).astype(np.int32)
        columns = per_request if one_row else {k: _repeat(v, counts) for k, v in per_request.items()}
        if not self._shadowed and per_request["shadow"].any():
            self._shadowed = True
        arrays = _base_arrays(columns, row_index)
        arrays += _input_arrays(layout, inputs, starts, total)
        arrays += _output_arrays(layout, outputs, starts, total)
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self.batches.append(batch)
        self.rows += total
        self.nbytes += batch.nbytes

    def _fill(self, key: tuple[str, str | None, int, bool], counts: np.ndarray[Any, Any], requests: Any, rows: Any,
              inputs: Any, outputs: Any, per_request: dict[str, np.ndarray[Any, Any]]) -> None:
        acc = self._accumulator(key)
        group = acc.group
        latency = per_request["latency_ms"][requests]
        ts = per_request["ts"][requests]
        group.requests += len(latency)
        group.statuses["200"] += len(latency)
        group.first_ts = min(group.first_ts, float(ts.min()))
        group.last_ts = max(group.last_ts, float(ts.max()))
        group.latency.add(latency)
        chosen_in = _take(inputs, rows)
        chosen_out = outputs[rows] if isinstance(outputs, np.ndarray) else outputs
        group.rows += int(counts[requests].sum())
        acc.add_rows(chosen_in, chosen_out)

    def _add_failed(self, records: list[tuple[Any, ...]]) -> None:
        import pyarrow as pa

        if not records:
            return
        per_request = _request_columns(list(zip(*records, strict=True)))
        for record in records:
            acc = self._accumulator((record[ROUTE], record[ALIAS], int(record[VERSION]), bool(record[SHADOW])))
            group = acc.group
            group.requests += 1
            group.statuses[str(record[STATUS])] += 1
            if record[ERROR]:
                group.errors[str(record[ERROR])] += 1
            group.first_ts = min(group.first_ts, record[TS])
            group.last_ts = max(group.last_ts, record[TS])
        n = len(records)
        arrays = _base_arrays(per_request, np.full(n, -1, dtype=np.int32))
        arrays += [pa.nulls(n, self._schema.field(i).type) for i in range(len(arrays), len(self._schema))]
        batch = pa.RecordBatch.from_arrays(arrays, schema=self._schema)
        self.batches.append(batch)
        self.rows += n
        self.nbytes += batch.nbytes

    # -- closing ---------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The segment's summary (JSON-able): layout, groups, shadow pairs."""
        return {
            "format": SUMMARY_FORMAT,
            "layout": self.layout.to_dict(),
            "rows": self.rows,
            "requests": self.requests,
            "groups": [acc.finish().to_json() for acc in self._groups.values()],
            "pairs": self._pairs(),
        }

    def _pairs(self) -> list[dict[str, Any]]:
        """How often each shadow agreed with the primary answer to the same request and row."""
        if not self._shadowed or self.layout.outputs == "json":
            return []
        import pyarrow as pa
        import pyarrow.compute as pc

        table = pa.Table.from_batches(self.batches, schema=self._schema)
        table = table.filter(pc.greater_equal(table.column("row"), 0))
        rid = table.column("request_id").to_numpy()
        row = table.column("row").to_numpy()
        shadow = table.column("shadow").to_numpy(zero_copy_only=False)
        route = table.column("route").to_numpy(zero_copy_only=False)
        column = table.column("prediction" if self.layout.outputs == "vector" else "predictions")
        if self.layout.outputs == "matrix":
            out = column.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(rid), -1)
        else:
            out = column.to_numpy(zero_copy_only=False)
        key = (rid.astype(np.int64) << 20) | (row.astype(np.int64) & 0xFFFFF)
        primary = np.flatnonzero(~shadow)
        copies = np.flatnonzero(shadow)
        if not len(primary) or not len(copies):
            return []
        order = primary[np.argsort(key[primary], kind="stable")]
        sorted_keys = key[order]
        found = np.searchsorted(sorted_keys, key[copies])
        found = np.minimum(found, len(order) - 1)
        matched = sorted_keys[found] == key[copies]
        copies, partner = copies[matched], order[found[matched]]
        if not len(copies):
            return []
        values = out.reshape(len(out), -1)
        a, b = values[partner], values[copies]
        if self.layout.output_kind == "category" or a.dtype.kind not in "f":
            same = np.all(a == b, axis=1)
            diff = None
        else:
            same = np.all(np.isclose(a, b, rtol=1e-3, atol=1e-6), axis=1)
            diff = np.abs(a.astype(np.float64) - b).mean(axis=1)
        out_pairs: dict[tuple[str, str], dict[str, Any]] = {}
        for primary_route, shadow_route in dict.fromkeys(zip(route[partner].tolist(), route[copies].tolist(),
                                                             strict=True)):
            mask = (route[partner] == primary_route) & (route[copies] == shadow_route)
            entry = {"primary": primary_route, "shadow": shadow_route, "rows": int(mask.sum()),
                     "agree": int(same[mask].sum())}
            if diff is not None:
                entry["abs_diff_sum"] = float(diff[mask].sum())
            out_pairs[(primary_route, shadow_route)] = entry
        return list(out_pairs.values())

    def to_parquet(self) -> bytes:
        """The segment's rows as one Parquet file (zstd)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_batches(self.batches, schema=self._schema)
        buffer = io.BytesIO()
        metadata = {b"groundwork.segment": orjson.dumps({"id": self.id, "model": self.model,
                                                         "layout": self.layout.to_dict()})}
        # Dictionary encoding only for the text columns: tried on random floats it is slow and gives up.
        pq.write_table(table.replace_schema_metadata(metadata), buffer, compression="zstd", compression_level=1,
                       use_dictionary=["route", "alias", "error"])
        return buffer.getvalue()


def summary_groups(summary: dict[str, Any]) -> list[Group]:
    """The groups of a segment summary, decoded."""
    return [Group.from_json(g) for g in summary.get("groups", [])]


# -- columns -----------------------------------------------------------------------------------------------
def arrow_schema(layout: Layout) -> Any:
    import pyarrow as pa

    _TEXT = pa.dictionary(pa.int32(), pa.string())
    fields = [
        pa.field("ts", pa.float64()), pa.field("request_id", pa.int64()), pa.field("row", pa.int32()),
        pa.field("route", _TEXT), pa.field("alias", _TEXT), pa.field("version", pa.int32()),
        pa.field("shadow", pa.bool_()), pa.field("status", pa.int16()), pa.field("error", _TEXT),
        pa.field("latency_ms", pa.float32()),
    ]
    if layout.inputs == "tensor":
        fields.append(pa.field("inputs", pa.list_(pa.from_numpy_dtype(np.dtype(layout.input_dtype)), len(layout.names))))
    elif layout.inputs == "columns":
        for name, kind in zip(layout.names, layout.kinds, strict=True):
            fields.append(pa.field(f"in.{name}", pa.float64() if kind == "number" else pa.string()))
    elif layout.inputs == "text":
        fields.append(pa.field("text", pa.string()))
    else:
        fields.append(pa.field("inputs_json", pa.binary()))
    if layout.outputs in ("vector", "matrix"):
        value = pa.string() if layout.output_dtype == "str" else pa.from_numpy_dtype(np.dtype(layout.output_dtype))
        if layout.outputs == "vector":
            fields.append(pa.field("prediction", value))
        else:
            fields.append(pa.field("predictions", pa.list_(value, len(layout.output_names))))
    else:
        fields.append(pa.field("outputs_json", pa.binary()))
    return pa.schema(fields)


def _request_columns(fields: list[tuple[Any, ...]]) -> dict[str, Any]:
    """Per-request columns from the records' fields; text fields as (codes, values) for dictionary arrays."""
    return {
        "ts": np.array(fields[TS], dtype=np.float64),
        "request_id": np.array(fields[REQUEST_ID], dtype=np.int64),
        "route": _encoded(fields[ROUTE]),
        "alias": _encoded(fields[ALIAS]),
        "version": np.array(fields[VERSION], dtype=np.int32),
        "shadow": np.array(fields[SHADOW], dtype=np.bool_),
        "status": np.array(fields[STATUS], dtype=np.int16),
        "error": _encoded(fields[ERROR]),
        "latency_ms": np.array(fields[LATENCY_S], dtype=np.float32) * np.float32(1000.0),
    }


def _encoded(values: tuple[Any, ...]) -> tuple[np.ndarray[Any, Any], list[Any]]:
    """Dictionary codes of a text field (-1 for null): one value for every record is the common case."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        codes = np.full(len(values), -1 if distinct[0] is None else 0, dtype=np.int32)
        return codes, [] if distinct[0] is None else [str(distinct[0])]
    names = [v for v in distinct if v is not None]
    index: dict[Any, int] = {v: i for i, v in enumerate(names)}
    index[None] = -1
    return np.array([index[v] for v in values], dtype=np.int32), [str(v) for v in names]


def _repeat(values: Any, counts: np.ndarray[Any, Any]) -> Any:
    if isinstance(values, tuple):
        return (np.repeat(values[0], counts), values[1])
    return np.repeat(values, counts)


def _base_arrays(columns: dict[str, Any], row_index: np.ndarray[Any, Any]) -> list[Any]:
    import pyarrow as pa

    return [pa.array(columns["ts"]), pa.array(columns["request_id"]), pa.array(row_index),
            _dictionary(columns["route"]), _dictionary(columns["alias"]), pa.array(columns["version"]),
            pa.array(columns["shadow"]), pa.array(columns["status"]), _dictionary(columns["error"]),
            pa.array(columns["latency_ms"])]


def _dictionary(encoded: tuple[np.ndarray[Any, Any], list[Any]]) -> Any:
    import pyarrow as pa

    codes, names = encoded
    indices = pa.array(codes, mask=codes < 0) if (codes < 0).any() else pa.array(codes)
    return pa.DictionaryArray.from_arrays(indices, pa.array(names, type=pa.string()))


def _concat_inputs(layout: Layout, parts: tuple[Any, ...], total: int) -> Any:
    if layout.inputs == "tensor":
        try:
            joined = np.concatenate(parts)
        except ValueError:
            joined = np.concatenate([np.asarray(p).reshape(len(p), -1) for p in parts])
        return joined.reshape(total, len(layout.names))
    if layout.inputs == "columns":
        return {name: np.concatenate([p[name] for p in parts]) for name in layout.names}
    if layout.inputs == "text":
        texts = [t for p in parts for t in (p.tolist() if isinstance(p, np.ndarray) else p)]
        return np.array(texts, dtype=object)
    return [orjson.dumps(p, option=orjson.OPT_SERIALIZE_NUMPY, default=_listed) for p in parts]


def _concat_outputs(layout: Layout, parts: tuple[Any, ...], total: int) -> Any:
    if layout.outputs == "json":
        return [orjson.dumps(p, option=orjson.OPT_SERIALIZE_NUMPY, default=_listed) for p in parts]
    try:
        joined = np.concatenate(parts)
    except ValueError:
        joined = np.concatenate([np.asarray(p).reshape(len(p), -1) for p in parts])
    if layout.outputs == "vector":
        return joined.reshape(total)
    return joined.reshape(total, len(layout.output_names))


def _listed(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _take(inputs: Any, rows: Any) -> Any:
    if isinstance(rows, slice):
        return inputs if not isinstance(inputs, np.ndarray) or inputs.dtype != object else _text_lengths(inputs)
    if isinstance(inputs, dict):
        return {k: v[rows] for k, v in inputs.items()}
    if isinstance(inputs, np.ndarray):
        chosen = inputs[rows]
        return _text_lengths(chosen) if chosen.dtype == object else chosen
    return inputs


def _text_lengths(texts: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.fromiter((len(t) for t in texts.tolist()), dtype=np.float64, count=len(texts))


def _input_arrays(layout: Layout, inputs: Any, starts: np.ndarray[Any, Any], total: int) -> list[Any]:
    import pyarrow as pa

    if layout.inputs == "tensor":
        flat = np.ascontiguousarray(inputs).reshape(-1)
        return [pa.FixedSizeListArray.from_arrays(pa.array(flat), len(layout.names))]
    if layout.inputs == "columns":
        out = []
        for name, kind in zip(layout.names, layout.kinds, strict=True):
            values = inputs[name]
            out.append(pa.array(values.astype(np.float64)) if kind == "number" else
                       pa.array([None if v is None else str(v) for v in values.tolist()], type=pa.string()))
        return out
    if layout.inputs == "text":
        return [pa.array(inputs.tolist(), type=pa.string())]
    return [pa.array(_spread(inputs, starts, total), type=pa.binary())]


def _output_arrays(layout: Layout, outputs: Any, starts: np.ndarray[Any, Any], total: int) -> list[Any]:
    import pyarrow as pa

    if layout.outputs == "json":
        return [pa.array(_spread(outputs, starts, total), type=pa.binary())]
    values = outputs.reshape(-1) if layout.outputs == "matrix" else outputs
    if layout.output_dtype == "str":
        array = pa.array([str(v) for v in values.tolist()], type=pa.string())
    else:
        array = pa.array(np.ascontiguousarray(values).astype(np.dtype(layout.output_dtype), copy=False))
    if layout.outputs == "vector":
        return [array]
    return [pa.FixedSizeListArray.from_arrays(array, len(layout.output_names))]


def _spread(documents: list[bytes] | tuple[bytes, ...], starts: np.ndarray[Any, Any], total: int) -> list[bytes | None]:
    """Per-request JSON documents over ``total`` rows: each on its request's first row, null on the others."""
    out: list[bytes | None] = [None] * total
    for start, document in zip(starts.tolist(), documents, strict=True):
        out[start] = document
    return out


def read_segment(data: bytes) -> Any:
    """A segment's Parquet bytes as a ``pyarrow.Table``.

    Read on this thread (``use_threads=False``): after a threaded read, pyarrow's thread pool
    can abort the interpreter as it exits ("terminate called without an active exception",
    exit 134: apache/arrow#34314), which would turn a finished command into a failed one.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data), use_threads=False)


__all__ = ["MAX_FEATURES", "Group", "Layout", "SegmentBuilder", "arrow_schema", "layout_from_signature", "layout_of",
           "read_segment",
           "summary_groups"]
