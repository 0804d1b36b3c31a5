"""LTTB downsampling (groundwork.core.downsample) against a plain reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from groundwork.core.downsample import lttb, lttb_indices


def reference_lttb(xs: list[float], ys: list[float], n_out: int) -> list[int]:
    """Steinarsson's algorithm, written out loop by loop (the textbook version)."""
    n = len(xs)
    if n_out >= n or n <= 2:
        return list(range(n))
    every = (n - 2) / (n_out - 2)
    out = [0]
    a = 0
    for i in range(n_out - 2):
        start = int(math.floor(i * every)) + 1
        end = int(math.floor((i + 1) * every)) + 1
        nxt_start, nxt_end = end, min(int(math.floor((i + 2) * every)) + 1, n)
        if i == n_out - 3:
            cx, cy = xs[n - 1], ys[n - 1]
        else:
            cx = sum(xs[nxt_start:nxt_end]) / (nxt_end - nxt_start)
            cy = sum(ys[nxt_start:nxt_end]) / (nxt_end - nxt_start)
        best, best_area = start, -1.0
        for j in range(start, end):
            area = abs((xs[a] - cx) * (ys[j] - ys[a]) - (xs[a] - xs[j]) * (cy - ys[a]))
            if area > best_area:
                best, best_area = j, area
        out.append(best)
        a = best
    out.append(n - 1)
    return out


@settings(max_examples=150, deadline=None)
@given(
    ys=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=300),
    n_out=st.integers(3, 80),
)
def test_same_points_as_the_reference(ys: list[float], n_out: int) -> None:
    xs = [float(i) for i in range(len(ys))]
    got = lttb_indices(xs, ys, n_out).tolist()
    want = reference_lttb(xs, ys, n_out)
    if got != want:  # float ties between equal areas may break differently; the areas must match
        for g, w in zip(got, want, strict=True):
            assert ys[g] == ys[w] or g == w
    assert len(got) == min(n_out, len(ys))


def test_keeps_ends_and_spikes_and_is_sorted() -> None:
    x = np.arange(1_000_000, dtype=np.float64)
    y = np.sin(x / 10_000)
    y[654_321] = 100.0
    y[123_456] = -100.0
    keep = lttb_indices(x, y, 1500)
    assert len(keep) == 1500 and keep[0] == 0 and keep[-1] == 999_999
    assert np.all(np.diff(keep) > 0)
    assert 654_321 in keep and 123_456 in keep


def test_small_inputs_and_bounds() -> None:
    assert lttb_indices([1, 2, 3], [1, 2, 3], 10).tolist() == [0, 1, 2]
    assert lttb_indices([1, 2, 3, 4], [1, 5, 2, 3], 2).tolist() == [0, 3]
    assert lttb_indices([1, 2, 3, 4], [1, 5, 2, 3], 1).tolist() == [0]
    assert lttb_indices([1, 2, 3, 4], [1, 5, 2, 3], 0).tolist() == []
    assert lttb_indices([], [], 5).tolist() == []
    with pytest.raises(ValueError, match="differ in length"):
        lttb_indices([1, 2], [1], 5)
    with pytest.raises(ValueError, match="negative"):
        lttb_indices([1, 2], [1, 2], -1)
    with pytest.raises(ValueError, match="one-dimensional"):
        lttb_indices(np.zeros((2, 2)), np.zeros((2, 2)), 3)


def test_nan_points_are_never_chosen_inside() -> None:
    x = np.arange(100, dtype=np.float64)
    y = np.where(x % 2 == 0, np.nan, x)
    keep = lttb_indices(x, y, 10)
    inner = keep[1:-1]
    assert not np.isnan(y[inner]).any()
    xs, ys = lttb(x, y, 10)
    assert len(xs) == len(ys) == 10


def test_uneven_x() -> None:
    x = np.cumsum(np.random.default_rng(0).exponential(size=5000))
    y = np.random.default_rng(1).normal(size=5000)
    keep = lttb_indices(x, y, 200)
    assert len(keep) == 200 and np.all(np.diff(keep) > 0)
