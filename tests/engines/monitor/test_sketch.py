"""Sketches: values land in the right bucket, quantiles within 1%, merging is adding, JSON round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from groundwork.engines.monitor.sketch import (
    VALUES,
    WIDTH,
    BlockSketch,
    CategoryCounts,
    NumberSketch,
    from_json,
    merge_into,
    positions,
)


def test_positions_are_ordered_like_the_values_and_within_one_percent() -> None:
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 5000), rng.lognormal(0, 6, 5000), -rng.lognormal(0, 6, 5000), [0.0]])
    values = values[(np.abs(values) < 2**39) & ((np.abs(values) > 1e-8) | (values == 0))]
    at = positions(values)
    assert at.min() >= 0 and at.max() < WIDTH
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(at[order]) >= 0), "a larger value must never land in a lower bucket"
    nonzero = values != 0
    relative = np.abs(VALUES[at[nonzero]] - values[nonzero]) / np.abs(values[nonzero])
    assert relative.max() < 0.01


def test_extremes_go_to_zero_and_the_outer_buckets() -> None:
    at = positions(np.array([0.0, 1e-12, -1e-12, 1e20, -1e20]))
    zero = positions(np.array([0.0]))[0]
    assert list(at) == [zero, zero, zero, WIDTH - 1, 0]


def test_quantiles_mean_and_std_match_numpy() -> None:
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 3.0, 50_000)
    sketch = NumberSketch.of(x)
    for q in (0.01, 0.5, 0.9, 0.99):
        assert sketch.quantile(q) == pytest.approx(np.quantile(x, q), rel=0.02)
    assert sketch.mean == pytest.approx(x.mean())
    assert sketch.std == pytest.approx(x.std())
    assert sketch.count == len(x)


def test_block_sketch_equals_one_sketch_per_column_and_counts_nonfinite() -> None:
    rng = np.random.default_rng(2)
    block = rng.normal(size=(3000, 5)).astype(np.float32)
    block[7, 2] = np.nan
    block[9, 4] = np.inf
    sketches = BlockSketch(5)
    sketches.add(block[:1000])
    sketches.add(block[1000:])
    for j in range(5):
        alone = NumberSketch.of(block[:, j])
        got = sketches.sketch(j)
        assert np.array_equal(got.counts, alone.counts)
        assert got.count == alone.count and got.nonfinite == alone.nonfinite
        assert got.total == pytest.approx(alone.total)
    assert sketches.sketch(2).nonfinite == 1 and sketches.sketch(4).nonfinite == 1


def test_merging_two_halves_is_the_sketch_of_the_whole() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(5, 2, 10_000)
    whole = NumberSketch.of(x)
    merged = merge_into(NumberSketch.of(x[:4000]), NumberSketch.of(x[4000:]))
    assert isinstance(merged, NumberSketch)
    assert np.array_equal(merged.counts, whole.counts)
    assert merged.low == whole.low and merged.high == whole.high


def test_json_round_trips() -> None:
    rng = np.random.default_rng(4)
    sketch = NumberSketch.of(rng.normal(size=1000))
    back = from_json(sketch.to_json())
    assert isinstance(back, NumberSketch)
    assert np.array_equal(back.counts, sketch.counts) and back.std == pytest.approx(sketch.std)
    counts = CategoryCounts.of(np.array(["a", "b", "b", "c"]))
    again = from_json(counts.to_json())
    assert isinstance(again, CategoryCounts) and again.values == {"a": 1, "b": 2, "c": 1} and again.count == 4


def test_categories_cap_distinct_values_and_treat_3_and_3_0_alike() -> None:
    counts = CategoryCounts.of(np.arange(500) % 250)
    assert counts.count == 500 and len(counts.values) == 200 and counts.other == 100
    assert CategoryCounts.of(np.array([3.0, 3.0])).values == {"3": 2}
    assert CategoryCounts.of(np.array([True, False, True])).values == {"true": 2, "false": 1}
