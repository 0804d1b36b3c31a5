"""Mergeable summaries of many values: log-bucketed histograms for numbers, counts for categories.

A :class:`NumberSketch` puts every finite value into a fixed bucket taken from its float32
bits: the sign, the exponent and the top :data:`MANTISSA_BITS` bits of the mantissa (an
HDR histogram's idea). A bucket spans 1/64 of its binade, so a value's bucket says it to
within 0.8% whatever the data's range; magnitudes below 2^-30 (about 1e-9) count as zero
and above 2^40 share the top bucket. The buckets are the same for every sketch: two
sketches merge by adding their counts, so the summary of a day is the sum of its
segments' summaries, and a reference and a stream are compared bucket by bucket (their
CDFs at each bucket boundary, exactly, for the bucketed data). Positions run in
ascending order of value: negative buckets (most negative first), zero, positive buckets.

:class:`BlockSketch` is the same for ``k`` features at once, updated from an ``(n, k)``
array with integer arithmetic and one ``bincount`` (about 6 ns a value: what the
prediction log does per flush). :class:`CategoryCounts` counts the values of a category
(at most :data:`MAX_CATEGORIES` distinct ones; the rest are counted as other).

Their JSON forms (``to_json`` / ``from_json``) are what segment summaries hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

#: Mantissa bits a bucket keeps: 6 gives 64 buckets per power of two (a bucket is 1.6% wide).
MANTISSA_BITS = 6
_SHIFT = 23 - MANTISSA_BITS
_LOW = int(np.array(2.0**-30, dtype=np.float32).view(np.int32)) >> _SHIFT
_HIGH = int(np.array(2.0**40, dtype=np.float32).view(np.int32)) >> _SHIFT
#: Magnitude buckets: zero and SPAN - 1 others (per sign).
SPAN = _HIGH - _LOW + 1
#: Positions per sketch: SPAN - 1 negative buckets, zero, SPAN - 1 positive buckets.
WIDTH = 2 * SPAN - 1
ZERO = SPAN - 1
#: Distinct values a category keeps; more are counted together as "other".
MAX_CATEGORIES = 200


def _representatives() -> np.ndarray[Any, np.dtype[np.float64]]:
    bits = np.arange(_LOW, _HIGH + 1, dtype=np.int32)
    lower = (bits << _SHIFT).view(np.float32).astype(np.float64)
    upper = ((bits + 1) << _SHIFT).view(np.float32).astype(np.float64)
    middle = (lower + upper) / 2.0
    middle[0] = 0.0  # magnitudes below 2^-30 are zero (their bucket is merged into it)
    return np.concatenate([-middle[:0:-1], [0.0], middle[1:]])


#: The value each position stands for (ascending).
VALUES = _representatives()


def positions(values: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.int32]]:
    """The bucket position of each value (any shape; values must be finite)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.int32)
    bucket = bits & 0x7FFFFFFF
    bucket >>= _SHIFT
    np.clip(bucket, _LOW, _HIGH, out=bucket)
    bucket -= _LOW  # 0: zero (below 2^-30), then 1 .. SPAN - 1 (the top one holds everything above 2^40)
    sign = bits >> 31  # 0, or -1 for a negative value
    bucket ^= sign
    bucket -= sign  # negated where negative
    bucket += ZERO
    return bucket


class NumberSketch:
    """Counts per bucket plus count, sum, sum of squares, minimum, maximum and non-finite values."""

    __slots__ = ("counts", "count", "total", "squares", "low", "high", "nonfinite")

    def __init__(self) -> None:
        self.counts = np.zeros(WIDTH, dtype=np.int64)
        self.count = 0
        self.total = 0.0
        self.squares = 0.0
        self.low = math.inf
        self.high = -math.inf
        self.nonfinite = 0

    @classmethod
    def of(cls, values: Iterable[float] | np.ndarray[Any, Any]) -> NumberSketch:
        sketch = cls()
        sketch.add(np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=np.float64))
        return sketch

    def add(self, values: np.ndarray[Any, Any]) -> None:
        x = np.asarray(values, dtype=np.float64).ravel()
        finite = np.isfinite(x)
        if not finite.all():
            self.nonfinite += int((~finite).sum())
            x = x[finite]
        if not x.size:
            return
        self.counts += np.bincount(positions(x), minlength=WIDTH)
        self.count += int(x.size)
        self.total += float(x.sum(dtype=np.float64))
        # einsum, not np.dot: dot goes to BLAS, whose second thread then spins on a serving process's CPU
        self.squares += float(np.einsum("i,i->", x, x))
        self.low = min(self.low, float(x.min()))
        self.high = max(self.high, float(x.max()))

    def merge(self, other: NumberSketch) -> NumberSketch:
        self.counts += other.counts
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)
        self.nonfinite += other.nonfinite
        return self

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """The population standard deviation (NumPy's default)."""
        if not self.count:
            return math.nan
        mean = self.total / self.count
        return math.sqrt(max(0.0, self.squares / self.count - mean * mean))

    def quantile(self, q: float) -> float:
        """The value at quantile ``q`` (within 1%, clamped to the observed range)."""
        if not self.count:
            return math.nan
        rank = q * (self.count - 1)
        position = int(np.searchsorted(np.cumsum(self.counts), rank, side="right"))
        position = min(position, WIDTH - 1)
        return float(min(max(VALUES[position], self.low), self.high))

    def to_json(self) -> dict[str, Any]:
        where = np.flatnonzero(self.counts)
        return {
            "type": "number", "n": self.count, "nonfinite": self.nonfinite,
            "sum": self.total, "sumsq": self.squares,
            "min": self.low if self.count else None, "max": self.high if self.count else None,
            # positions as gaps from the previous one: short numbers in JSON
            "at": np.diff(where, prepend=0).tolist(), "counts": self.counts[where].tolist(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NumberSketch:
        sketch = cls()
        where = np.cumsum(np.asarray(data.get("at", []), dtype=np.int64))
        if where.size:
            sketch.counts[where] = np.asarray(data["counts"], dtype=np.int64)
        sketch.count = int(data.get("n", 0))
        sketch.nonfinite = int(data.get("nonfinite", 0))
        sketch.total = float(data.get("sum", 0.0))
        sketch.squares = float(data.get("sumsq", 0.0))
        low, high = data.get("min"), data.get("max")
        sketch.low = math.inf if low is None else float(low)
        sketch.high = -math.inf if high is None else float(high)
        return sketch


class BlockSketch:
    """:class:`NumberSketch` es of ``k`` features, updated together from ``(n, k)`` arrays.

    The bucket keys of each block are kept and counted together once they reach
    ``FOLD_KEYS`` (or when the counts are read): counting touches all ``k`` x ``WIDTH``
    counters, a fixed cost that small blocks (a prediction log's flush of a few thousand
    rows) would otherwise pay every time.
    """

    #: pending bucket keys counted together (16 MiB of int32)
    FOLD_KEYS = 1 << 22

    def __init__(self, k: int) -> None:
        self.k = k
        self._counts = np.zeros((k, WIDTH), dtype=np.int64)
        self._pending: list[np.ndarray[Any, Any]] = []
        self._pending_keys = 0
        self.count = np.zeros(k, dtype=np.int64)
        self.total = np.zeros(k, dtype=np.float64)
        self.squares = np.zeros(k, dtype=np.float64)
        self.low = np.full(k, math.inf)
        self.high = np.full(k, -math.inf)
        self.nonfinite = np.zeros(k, dtype=np.int64)
        self._base = np.arange(k, dtype=np.int32) * WIDTH

    def add(self, block: np.ndarray[Any, Any]) -> None:
        x = np.asarray(block)
        if x.dtype.kind not in "f":
            x = x.astype(np.float64)
        if x.ndim == 1:
            x = x.reshape(-1, 1)
        if not x.size:
            return
        finite = np.isfinite(x)
        if finite.all():
            keys = positions(x) + self._base
            self._keep(keys.ravel())
            self.count += x.shape[0]
            self.total += x.sum(axis=0, dtype=np.float64)
            self.squares += np.einsum("ij,ij->j", x, x, dtype=np.float64)
            np.minimum(self.low, x.min(axis=0), out=self.low)
            np.maximum(self.high, x.max(axis=0), out=self.high)
            return
        keys = positions(np.where(finite, x, 0.0)) + self._base
        self._keep(keys[finite])
        self.count += finite.sum(axis=0)
        self.nonfinite += (~finite).sum(axis=0)
        clean = np.where(finite, x, 0.0)
        self.total += clean.sum(axis=0, dtype=np.float64)
        self.squares += np.einsum("ij,ij->j", clean, clean, dtype=np.float64)
        np.minimum(self.low, np.where(finite, x, math.inf).min(axis=0), out=self.low)
        np.maximum(self.high, np.where(finite, x, -math.inf).max(axis=0), out=self.high)

    def _keep(self, keys: np.ndarray[Any, Any]) -> None:
        self._pending.append(keys)
        self._pending_keys += keys.size
        if self._pending_keys >= self.FOLD_KEYS:
            self._fold()

    def _fold(self) -> None:
        if self._pending:
            keys = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._counts += np.bincount(keys, minlength=self.k * WIDTH).reshape(self.k, WIDTH)
            self._pending = []
            self._pending_keys = 0

    @property
    def counts(self) -> np.ndarray[Any, Any]:
        """Counts per feature and bucket, ``(k, WIDTH)``."""
        self._fold()
        return self._counts

    def sketch(self, j: int) -> NumberSketch:
        out = NumberSketch()
        out.counts = self.counts[j].copy()
        out.count = int(self.count[j])
        out.total = float(self.total[j])
        out.squares = float(self.squares[j])
        out.low = float(self.low[j])
        out.high = float(self.high[j])
        out.nonfinite = int(self.nonfinite[j])
        return out

    def sketches(self) -> list[NumberSketch]:
        return [self.sketch(j) for j in range(self.k)]


class CategoryCounts:
    """How often each value of a category occurred (values kept as text)."""

    __slots__ = ("values", "count", "other")

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.count = 0
        self.other = 0

    @classmethod
    def of(cls, values: Iterable[Any] | np.ndarray[Any, Any]) -> CategoryCounts:
        counts = cls()
        counts.add(np.asarray(values if isinstance(values, np.ndarray) else list(values)))
        return counts

    def add(self, values: np.ndarray[Any, Any]) -> None:
        array = np.asarray(values).ravel()
        if not array.size:
            return
        if array.dtype.kind == "O":
            array = np.array([category_text(v) for v in array.tolist()])
        found, counts = np.unique(array, return_counts=True)
        self.add_counts(zip((category_text(v) for v in found.tolist()), counts.tolist(), strict=True))

    def add_counts(self, pairs: Iterable[tuple[str, int]]) -> None:
        values = self.values
        for key, n in pairs:
            self.count += n
            if key in values:
                values[key] += n
            elif len(values) < MAX_CATEGORIES:
                values[key] = n
            else:
                self.other += n

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        self.add_counts(other.values.items())
        self.count += other.other
        self.other += other.other
        return self

    def to_json(self) -> dict[str, Any]:
        return {"type": "category", "n": self.count, "values": dict(self.values), "other": self.other}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CategoryCounts:
        counts = cls()
        counts.values = {str(k): int(v) for k, v in (data.get("values") or {}).items()}
        counts.count = int(data.get("n", 0))
        counts.other = int(data.get("other", 0))
        return counts


def category_text(value: Any) -> str:
    """The text a category value is counted under (``3`` and ``3.0`` are one class)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


Summary = NumberSketch | CategoryCounts


def from_json(data: Mapping[str, Any]) -> Summary:
    """A sketch or counts from its JSON form."""
    return CategoryCounts.from_json(data) if data.get("type") == "category" else NumberSketch.from_json(data)


def merge_into(target: Summary | None, other: Summary) -> Summary:
    """``target`` merged with ``other`` (a copy of ``other`` when ``target`` is None)."""
    if target is None:
        target = CategoryCounts() if isinstance(other, CategoryCounts) else NumberSketch()
    if isinstance(target, CategoryCounts) and isinstance(other, CategoryCounts):
        return target.merge(other)
    if isinstance(target, NumberSketch) and isinstance(other, NumberSketch):
        return target.merge(other)
    return target  # a feature whose type changed between versions: keep the first kind


__all__ = ["VALUES", "WIDTH", "BlockSketch", "CategoryCounts", "NumberSketch", "Summary", "category_text",
           "from_json", "merge_into", "positions"]
