"""Downsampling metric series for charts: Largest-Triangle-Three-Buckets (LTTB).

A chart is a few hundred to a few thousand pixels wide, so drawing a 1,000,000-point
series means throwing away 99.9% of the points. *How* they are thrown away decides
whether the picture tells the truth:

:func:`lttb` (Steinarsson, "Downsampling Time Series for Visual Representation",
2013) keeps the first and last points and, from each of ``n - 2`` equal buckets of
the points between them, the point that forms the largest triangle with the point
kept from the previous bucket and the mean of the next bucket. Peaks, dips and the
overall shape survive, unlike taking every k-th point or averaging.

Pure NumPy on arrays, no I/O: one vectorized pass per bucket, so a 1,000,000-point
series reduces to 1,500 points in a few tens of milliseconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["lttb", "lttb_indices"]

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]


def _as_float(values: npt.ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, not of shape {array.shape}")
    return array


def lttb_indices(x: npt.ArrayLike, y: npt.ArrayLike, n_out: int) -> IndexArray:
    """Indices (ascending) of the ``n_out`` points that LTTB keeps from ``(x, y)``.

    ``x`` must be sorted ascending (ties allowed). Points whose ``y`` is not finite
    (NaN, inf) are never chosen as the representative of a bucket; the first and
    last points are always kept. With ``n_out >= len(x)`` every index is returned.
    """
    xs = _as_float(x, "x")
    ys = _as_float(y, "y")
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length ({xs.size} and {ys.size})")
    if n_out < 0:
        raise ValueError(f"n_out must not be negative, not {n_out}")
    n = xs.size
    if n_out >= n or n <= 2:
        return np.arange(n, dtype=np.intp)
    if n_out == 0:
        return np.zeros(0, dtype=np.intp)
    if n_out == 1:
        return np.zeros(1, dtype=np.intp)
    if n_out == 2:
        return np.array([0, n - 1], dtype=np.intp)

    finite = np.isfinite(ys)
    # Buckets over the inner points 1 .. n-2: bucket i is [edges[i], edges[i + 1]).
    edges = (np.linspace(1, n - 1, n_out - 1)).astype(np.intp)
    buckets = n_out - 2
    # Mean point of every bucket (the "third point" of the triangle for the bucket before it),
    # over finite values only; an all-NaN bucket falls back to its middle x and the previous y.
    y_clean = np.where(finite, ys, 0.0)
    csum_x = np.concatenate(([0.0], np.cumsum(xs)))
    csum_y = np.concatenate(([0.0], np.cumsum(y_clean)))
    csum_n = np.concatenate(([0], np.cumsum(finite)))
    starts, ends = edges[:-1], edges[1:]
    counts = (csum_n[ends] - csum_n[starts]).astype(np.float64)
    widths = (ends - starts).astype(np.float64)
    mean_x = (csum_x[ends] - csum_x[starts]) / np.maximum(widths, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_y = (csum_y[ends] - csum_y[starts]) / counts
    last_y = ys[n - 1] if finite[n - 1] else np.nan

    out = np.empty(n_out, dtype=np.intp)
    out[0] = 0
    out[-1] = n - 1
    ax, ay = xs[0], ys[0] if finite[0] else 0.0
    for i in range(buckets):
        lo, hi = starts[i], ends[i]
        if i + 1 < buckets:
            cx, cy = mean_x[i + 1], mean_y[i + 1]
        else:
            cx, cy = xs[n - 1], last_y
        if not np.isfinite(cy):
            cy = ay
        bx = xs[lo:hi]
        by = ys[lo:hi]
        # Twice the triangle area; the constant factor does not change the argmax.
        area = np.abs((ax - cx) * (by - ay) - (ax - bx) * (cy - ay))
        area = np.where(finite[lo:hi], area, -1.0)
        pick = int(np.argmax(area))
        chosen = lo + pick
        out[i + 1] = chosen
        if finite[chosen]:
            ax, ay = xs[chosen], ys[chosen]
        else:
            ax = xs[chosen]
    return out


def lttb(x: npt.ArrayLike, y: npt.ArrayLike, n_out: int) -> tuple[FloatArray, FloatArray]:
    """The ``n_out`` LTTB points of ``(x, y)`` as two arrays (see :func:`lttb_indices`)."""
    xs = _as_float(x, "x")
    ys = _as_float(y, "y")
    keep = lttb_indices(xs, ys, n_out)
    return xs[keep], ys[keep]
