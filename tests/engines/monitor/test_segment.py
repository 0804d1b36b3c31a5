"""Segments: the Parquet rows say what was logged, the summary counts it, shadow copies are paired."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from groundwork.engines.monitor.segment import SegmentBuilder, layout_of, read_segment, summary_groups
from groundwork.engines.monitor.sketch import NumberSketch


def record(rid: int, x: np.ndarray | None, y: np.ndarray | None, *, route: str = "production", shadow: bool = False,
           version: int = 1, latency_s: float = 0.002, status: int = 200, error: str | None = None) -> tuple[Any, ...]:
    return (time.time(), "digits", "production" if route == "production" else None, version, route, shadow, rid,
            x, len(x) if x is not None else 0, y, latency_s, status, error)


def test_rows_and_summary_of_requests_of_several_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = np.arange(10) % 3
    records = [record(0, x[:3], y[:3]), record(1, x[3:4], y[3:4], latency_s=0.010), record(2, x[4:], y[4:])]
    records.append(record(3, None, None, status=422, error="unprocessable"))  # refused before it had rows
    builder = SegmentBuilder("digits", layout_of(x[:3], y[:3]), opened_at=time.time())
    builder.add(records[:2])
    builder.add(records[2:])
    table = read_segment(builder.to_parquet())
    assert table.num_rows == 11 and builder.rows == 11 and builder.requests == 4
    assert table.column("request_id").to_pylist() == [0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 3]
    assert table.column("row").to_pylist() == [0, 1, 2, 0, 0, 1, 2, 3, 4, 5, -1]
    logged = np.array(table.column("inputs").to_pylist()[:10], dtype=np.float32)
    assert np.array_equal(logged, x)
    assert table.column("prediction").to_pylist()[:10] == y.tolist()
    assert table.column("status").to_pylist()[-1] == 422 and table.column("error").to_pylist()[-1] == "unprocessable"
    (group,) = summary_groups(builder.summary())
    assert (group.route, group.version, group.shadow) == ("production", 1, False)
    assert group.requests == 4 and group.rows == 10
    assert dict(group.statuses) == {"200": 3, "422": 1} and dict(group.errors) == {"unprocessable": 1}
    assert group.latency.count == 3 and group.latency.quantile(1.0) == pytest.approx(10.0, rel=0.01)
    assert sorted(group.features) == ["x0", "x1", "x2", "x3"]
    assert group.features["x2"].count == 10
    assert isinstance(group.features["x2"], NumberSketch)
    assert group.features["x2"].mean == pytest.approx(float(x[:, 2].mean()), rel=1e-5)
    assert group.outputs["prediction"].to_json()["values"] == {"0": 4, "1": 3, "2": 3}


def test_routes_make_groups_and_shadow_copies_are_paired_with_their_primaries() -> None:
    rng = np.random.default_rng(1)
    records = []
    for rid in range(200):
        x = rng.normal(size=(1, 3))
        label = np.array([rid % 4])
        records.append(record(rid, x, label, route="production" if rid % 10 else "candidate"))
        if rid % 2 == 0:  # the shadow answers differently on every 5th of its copies
            records.append(record(rid, x, label if rid % 5 else label + 1, route="staging", shadow=True, version=2))
    builder = SegmentBuilder("digits", layout_of(records[0][7], records[0][9]), opened_at=time.time())
    builder.add(records)
    summary = builder.summary()
    groups = {(g.route, g.shadow): g for g in summary_groups(summary)}
    assert groups[("production", False)].requests == 180
    assert groups[("candidate", False)].requests == 20
    assert groups[("staging", True)].requests == 100 and groups[("staging", True)].version == 2
    pairs = {(p["primary"], p["shadow"]): p for p in summary["pairs"]}
    assert pairs[("production", "staging")]["rows"] == 80
    assert pairs[("candidate", "staging")]["rows"] == 20
    agree = sum(p["agree"] for p in pairs.values())
    assert agree == 80  # 20 of the 100 copies answered otherwise


def test_named_columns_and_text_are_logged_and_summarized() -> None:
    columns = {"age": np.array([30.0, 40.0, 50.0]), "city": np.array(["a", "b", "a"], dtype=object)}
    builder = SegmentBuilder("table", layout_of(columns, np.array([0.5, 0.7, 0.9])), opened_at=time.time())
    builder.add([record(0, None, None)[:7] + (columns, 3, np.array([0.5, 0.7, 0.9])) + (0.001, 200, None)])
    table = read_segment(builder.to_parquet())
    assert table.column("in.city").to_pylist() == ["a", "b", "a"] and table.column("in.age").to_pylist()[1] == 40.0
    (group,) = summary_groups(builder.summary())
    assert group.features["city"].to_json()["values"] == {"a": 2, "b": 1}
    assert group.features["age"].count == 3 and group.outputs["prediction"].count == 3
    texts = ["a sentence", "another one"]
    vectors = np.ones((2, 384), dtype=np.float32)
    text_builder = SegmentBuilder("embed", layout_of(texts, vectors), opened_at=time.time())
    text_builder.add([record(0, None, None)[:7] + (texts, 2, vectors) + (0.001, 200, None)])
    (text_group,) = summary_groups(text_builder.summary())
    assert text_group.features["text_length"].count == 2
    text_table = read_segment(text_builder.to_parquet())
    assert text_table.column("text").to_pylist() == texts
    assert len(text_table.column("outputs_json").to_pylist()[0]) > 384  # too wide to summarize: kept whole


def test_reading_a_segment_or_a_reference_lets_the_interpreter_exit_cleanly(tmp_path: Any) -> None:
    """After a threaded Parquet read, pyarrow could abort the interpreter as it exited (exit 134,
    "terminate called without an active exception") while the table was still alive: 6 in 10
    fresh interpreters did, for the docs' segment-reading snippet, after the data was printed."""
    import subprocess
    import sys

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1800, 64)).astype(np.float32)
    builder = SegmentBuilder("digits", layout_of(x[:2], np.zeros(2, dtype=np.int64)), opened_at=time.time())
    builder.add([record(i, x[i:i + 2], np.arange(2) % 10) for i in range(0, 1800, 2)])
    (tmp_path / "segment.parquet").write_bytes(builder.to_parquet())
    pd = pytest.importorskip("pandas")
    pd.DataFrame(x, columns=[f"pixel_{i}" for i in range(64)]).to_parquet(tmp_path / "train.parquet")
    scripts = {  # each as a command would: read, keep the result until the interpreter exits
        "segment.parquet": "from groundwork.engines.monitor.segment import read_segment as read\n"
                           "table = read(data)\nprint(table.num_rows)\n",
        "train.parquet": "from groundwork.engines.monitor.reference import read_table\n"
                         "columns = read_table(data, 'train.parquet')\nprint(len(columns['pixel_0']))\n",
    }
    for name, script in scripts.items():
        for _ in range(6):
            done = subprocess.run([sys.executable, "-c", f"import sys, pathlib\ndata = pathlib.Path(sys.argv[1]).read_bytes()\n"
                                   f"{script}", str(tmp_path / name)], capture_output=True, text=True, timeout=120)
            assert (done.returncode, done.stdout.strip()) == (0, "1800"), f"{name}: {done.stderr[-500:]}"
