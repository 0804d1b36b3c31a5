"""The wire form of the store's records: what the HTTP stores send and the team server answers.

Every record must come back equal after ``to_wire``, JSON and ``from_wire``, with the
non-finite floats JSON cannot hold and the numpy arrays the metric series carry.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings, strategies as st

from groundwork.storage.records import (
    AliasMove,
    MetricSeries,
    RunCreate,
    RunRow,
    from_wire,
    to_wire,
)


def _through_json(value: Any) -> Any:
    return json.loads(json.dumps(to_wire(value), allow_nan=False))


def _run(i: int, **changes: Any) -> RunRow:
    fields: dict[str, Any] = dict(
        id=f"r{i}", name=f"run-{i}", kind="run", status="finished", parent_id=None, command=["python", "t.py"],
        cwd="/w", user="ann", host="h", pid=7, created_at=1.5 + i, ended_at=None, heartbeat_at=None,
        exit_code=0, error=None, git_commit=None, git_branch="main", git_dirty=False, diff_digest=None,
        env_digest=None, cache_key=None, cached_from=None, project="p",
        params={"lr": 0.01, "layers": 3, "name": "x", "flag": True, "nested": {"a": [1, 2]}, "none": None},
        tags={"team": "vision"}, metrics={"acc": 0.5, "loss": float("nan"), "up": float("inf"), "down": -math.inf})
    fields.update(changes)
    return RunRow(**fields)


def _same_floats(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_runs_come_back_equal_with_non_finite_metrics() -> None:
    rows = [_run(i) for i in range(3)] + [_run(9, parent_id="r0", ended_at=9.0, metrics={"acc": 1})]
    wire = _through_json(rows)
    assert wire[0]["metrics"]["loss"] == "NaN" and wire[0]["metrics"]["up"] == "Infinity"
    back = from_wire(list[RunRow], wire)
    assert [r.id for r in back] == ["r0", "r1", "r2", "r9"] and back[3].parent_id == "r0"
    for got, sent in zip(back, rows, strict=True):
        assert got.params == sent.params and got.tags == sent.tags and got.command == sent.command
        assert got.metrics.keys() == sent.metrics.keys()
        assert all(_same_floats(got.metrics[k], float(v)) for k, v in sent.metrics.items())
        assert all(type(v) is float for v in got.metrics.values())  # an int metric comes back a float
    assert back[3].metrics == {"acc": 1.0} and back[3].ended_at == 9.0


def test_arrays_keep_their_dtype_shape_and_values() -> None:
    series = MetricSeries(np.arange(5, dtype=np.int64), np.array([0.5, np.nan, np.inf, -1.0, 2.0]),
                          np.linspace(0, 1, 5))
    back = from_wire(MetricSeries, _through_json(series))
    assert back.steps.dtype == np.int64 and back.steps.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(back.values, series.values)  # NaN and infinities included
    np.testing.assert_array_equal(back.timestamps, series.timestamps)
    assert from_wire(np.ndarray, _through_json(np.ones((2, 3), dtype=np.float32))).shape == (2, 3)


def test_numpy_scalars_mappings_tuples_and_optional_records() -> None:
    create = RunCreate(row={"id": "r1", "step": np.int64(3), "score": np.float64(0.25)},
                       params={"t": (1, 2)}, environment=("lock", "abc"), links=({"name": "data"},))
    wire = _through_json(create)
    assert wire["row"] == {"id": "r1", "step": 3, "score": 0.25} and wire["environment"] == ["lock", "abc"]
    back = from_wire(RunCreate, wire)
    assert back.environment == ("lock", "abc") and back.params == {"t": [1, 2]} and list(back.links) == [{"name": "data"}]
    assert from_wire(RunCreate | None, None) is None and from_wire(float | None, "-Infinity") == -math.inf
    move = AliasMove(id=1, name="digits", alias="production", from_version=None, to_version=3, who="ann",
                     changed_at=2.0, reason=None)
    assert from_wire(list[AliasMove], _through_json([move])) == [move]
    assert to_wire(np.float32(1.5)) == 1.5 and to_wire(np.float64("nan")) == "NaN"


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.one_of(st.floats(), st.integers(-2**53, 2**53), st.text(max_size=5),
                                                      st.booleans(), st.none()), max_size=12),
       st.dictionaries(st.text(max_size=8), st.floats(), max_size=12))
def test_any_params_and_metrics_survive_the_wire(params: dict[str, Any], metrics: dict[str, float]) -> None:
    back = from_wire(RunRow, _through_json(_run(0, params=params, metrics=metrics)))
    assert back.metrics.keys() == metrics.keys()
    assert all(_same_floats(back.metrics[k], v) for k, v in metrics.items())
    assert back.params.keys() == params.keys()
    for key, value in params.items():
        got = back.params[key]
        if isinstance(value, float) and not math.isfinite(value):
            assert got == ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
        else:
            assert got == value and type(got) is type(value)
