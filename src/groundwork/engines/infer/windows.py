"""The window grid, the output chunk grid, and the blending weights.

The grid is MONAI's ``sliding_window_inference`` grid, so that a streamed run
gives MONAI's answer: along each spatial axis the windows start every
``int(window * (1 - overlap))`` voxels (at least 1; the whole axis when the window
fills it), and the last window is moved back to end at the volume's edge
(``monai.data.utils.dense_patch_slices``). Windows are numbered in C order over
(volume, axis 0, axis 1, ...), which is MONAI's order; batch ``b`` is windows
``b*batch ... b*batch + batch - 1`` of that order, for every run of the same plan,
so that a resumed run gives the model exactly the batches an uninterrupted one did.

The output is cut into chunks (the unit of progress and of writing). A chunk is
finished when the last window touching it has been blended in; the weights a
chunk's voxels are divided by are summed over the windows touching it, in window
order, as MONAI sums its count map.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from groundwork.errors import InvalidInput

BLENDS = ("gaussian", "constant")


def scan_interval(size: Sequence[int], window: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Voxels between window starts on each axis (MONAI's ``_get_scan_interval``)."""
    out = []
    for s, w in zip(size, window, strict=True):
        if w == s:
            out.append(int(w))
        else:
            step = int(w * (1 - overlap))
            out.append(step if step > 0 else 1)
    return tuple(out)


def axis_starts(size: int, window: int, interval: int) -> list[int]:
    """Window starts along one axis (MONAI's ``dense_patch_slices``, duplicates kept as MONAI keeps them)."""
    num = int(math.ceil(float(size) / interval))
    count = next((d + 1 for d in range(num) if d * interval + window >= size), 1)
    starts = []
    for idx in range(count):
        start = idx * interval
        start -= max(start + window - size, 0)
        starts.append(start)
    return starts


def importance_map(window: Sequence[int], blend: str = "gaussian", sigma_scale: float = 0.125) -> np.ndarray:
    """The weight of each voxel of a window's output (MONAI's ``compute_importance_map``), float32."""
    if blend == "constant":
        weights = np.ones(tuple(window), dtype=np.float32)
    elif blend == "gaussian":
        weights = np.ones((), dtype=np.float32)
        for i, w in enumerate(window):
            sigma = np.float32(w * sigma_scale)
            x = np.arange(-(w - 1) / 2.0, (w - 1) / 2.0 + 1, dtype=np.float32)
            g = np.exp(x**2 / (np.float32(-2) * sigma**2)).astype(np.float32)
            weights = weights[..., None] * g if i > 0 else g
        floor = max(float(weights.min()), 1e-3)
        weights = np.maximum(weights, np.float32(floor)).astype(np.float32)
    else:
        raise InvalidInput(f"unknown blend {blend!r}", hint=f"use one of {', '.join(BLENDS)}")
    return weights


def default_chunks(window: Sequence[int], interval: Sequence[int], size: Sequence[int]) -> tuple[int, ...]:
    """Output chunk edge per axis: the largest power of two up to the window step (16 at least).

    Smaller chunks waste less memory at the edges of a batch's windows; larger ones cost
    less per chunk (each is a file in a zarr store, a line in the journal).
    """
    out = []
    for w, step, s in zip(window, interval, size, strict=True):
        edge = 2 ** int(math.floor(math.log2(max(16, step))))
        out.append(max(1, min(s, edge, w)))
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    """Windows over ``volumes`` volumes of spatial ``size``, and the chunks of the output."""

    volumes: int
    size: tuple[int, ...]
    window: tuple[int, ...]
    overlap: float
    chunks: tuple[int, ...]
    batch: int

    @classmethod
    def plan(
        cls,
        volumes: int,
        size: Sequence[int],
        window: Sequence[int],
        overlap: float,
        batch: int,
        chunks: Sequence[int] | None = None,
    ) -> Grid:
        size_t, window_t = tuple(int(s) for s in size), tuple(int(w) for w in window)
        if len(window_t) != len(size_t):
            raise InvalidInput(f"window {window_t} has {len(window_t)} axes, the volume {len(size_t)} ({size_t})")
        if any(w < 1 for w in window_t):
            raise InvalidInput(f"window sizes must be positive, got {window_t}")
        bigger = [f"axis {i}: {w} > {s}" for i, (w, s) in enumerate(zip(window_t, size_t, strict=True)) if w > s]
        if bigger:
            raise InvalidInput(
                f"window {window_t} is larger than the volume {size_t} ({'; '.join(bigger)})",
                hint="choose a window no larger than the volume on every axis",
            )
        if not (isinstance(overlap, int | float) and 0 <= overlap < 1):
            raise InvalidInput(f"overlap must be at least 0 and below 1, got {overlap!r}")
        if batch < 1:
            raise InvalidInput(f"batch must be at least 1, got {batch}")
        interval = scan_interval(size_t, window_t, overlap)
        if chunks is None:
            chunk_t = default_chunks(window_t, interval, size_t)
        else:
            chunk_t = tuple(int(c) for c in chunks)
            if len(chunk_t) != len(size_t) or any(c < 1 for c in chunk_t):
                raise InvalidInput(f"chunks {chunk_t} must be {len(size_t)} positive sizes, one per spatial axis")
            chunk_t = tuple(min(c, s) for c, s in zip(chunk_t, size_t, strict=True))
        return cls(int(volumes), size_t, window_t, float(overlap), chunk_t, int(batch))

    # -- windows ---------------------------------------------------------------
    @cached_property
    def interval(self) -> tuple[int, ...]:
        return scan_interval(self.size, self.window, self.overlap)

    @cached_property
    def starts(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(axis_starts(s, w, i)) for s, w, i in zip(self.size, self.window, self.interval, strict=True))

    @cached_property
    def per_axis(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.starts)

    @cached_property
    def per_volume(self) -> int:
        return math.prod(self.per_axis)

    @property
    def total_windows(self) -> int:
        return self.volumes * self.per_volume

    @property
    def total_batches(self) -> int:
        return -(-self.total_windows // self.batch)

    def window_at(self, g: int) -> tuple[int, tuple[int, ...]]:
        """Window ``g``: its volume and its start on every axis."""
        n, rest = divmod(g, self.per_volume)
        return n, tuple(starts[i] for starts, i in zip(self.starts, _unravel(rest, self.per_axis), strict=True))

    def batch_windows(self, b: int) -> range:
        return range(b * self.batch, min(self.total_windows, (b + 1) * self.batch))

    # -- chunks ----------------------------------------------------------------
    @cached_property
    def chunks_per_axis(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.size, self.chunks, strict=True))

    @cached_property
    def chunks_per_volume(self) -> int:
        return math.prod(self.chunks_per_axis)

    @property
    def total_chunks(self) -> int:
        return self.volumes * self.chunks_per_volume

    def chunk_index(self, cid: int) -> tuple[int, tuple[int, ...]]:
        """Chunk ``cid``: its volume and its index on every axis."""
        n, rest = divmod(cid, self.chunks_per_volume)
        return n, _unravel(rest, self.chunks_per_axis)

    def chunk_id(self, n: int, index: Sequence[int]) -> int:
        return n * self.chunks_per_volume + _ravel(index, self.chunks_per_axis)

    def chunk_box(self, cid: int) -> tuple[int, tuple[slice, ...]]:
        """The volume and the spatial region chunk ``cid`` covers."""
        n, idx = self.chunk_index(cid)
        return n, tuple(
            slice(i * c, min(s, (i + 1) * c)) for i, c, s in zip(idx, self.chunks, self.size, strict=True)
        )

    def chunks_of_window(self, g: int) -> Iterator[int]:
        """The chunks window ``g`` touches, in C order."""
        n, start = self.window_at(g)
        ranges = [
            range(s // c, (s + w - 1) // c + 1) for s, w, c in zip(start, self.window, self.chunks, strict=True)
        ]
        base = n * self.chunks_per_volume
        for idx in itertools.product(*ranges):
            yield base + _ravel(idx, self.chunks_per_axis)

    @cached_property
    def _axis_touch(self) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """Per axis, for each chunk index, the first and last window index (on that axis) touching it."""
        out = []
        for starts, w, c, k in zip(self.starts, self.window, self.chunks, self.chunks_per_axis, strict=True):
            arr = np.asarray(starts)
            lo_edge = np.arange(k) * c
            hi_edge = np.minimum((np.arange(k) + 1) * c, np.iinfo(np.int64).max)
            first = np.searchsorted(arr + w, lo_edge, side="right")  # first start with start + w > lo_edge
            last = np.searchsorted(arr, hi_edge, side="left") - 1  # last start with start < hi_edge
            out.append((first, last))
        return tuple(out)

    def windows_of_chunk(self, cid: int) -> list[int]:
        """The windows touching chunk ``cid``, in window order."""
        n, idx = self.chunk_index(cid)
        ranges = [range(int(t[0][i]), int(t[1][i]) + 1) for t, i in zip(self._axis_touch, idx, strict=True)]
        base = n * self.per_volume
        return [base + _ravel(w, self.per_axis) for w in itertools.product(*ranges)]

    def chunks_of_batch(self, b: int) -> set[int]:
        return {cid for g in self.batch_windows(b) for cid in self.chunks_of_window(g)}

    def batches_of_chunk(self, cid: int) -> list[int]:
        """The batches with a window touching chunk ``cid``, ascending."""
        return sorted({g // self.batch for g in self.windows_of_chunk(cid)})

    def local(self, g: int, cid: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
        """Where window ``g`` and chunk ``cid`` overlap: slices into the window, and into the chunk."""
        _, start = self.window_at(g)
        _, box = self.chunk_box(cid)
        in_window, in_chunk = [], []
        for s, w, b in zip(start, self.window, box, strict=True):
            lo, hi = max(s, b.start), min(s + w, b.stop)
            in_window.append(slice(lo - s, hi - s))
            in_chunk.append(slice(lo - b.start, hi - b.start))
        return tuple(in_window), tuple(in_chunk)

    def to_dict(self) -> dict[str, object]:
        return {
            "volumes": self.volumes, "size": list(self.size), "window": list(self.window),
            "overlap": self.overlap, "chunks": list(self.chunks), "batch": self.batch,
        }


def _ravel(index: Sequence[int], shape: Sequence[int]) -> int:
    flat = 0
    for i, n in zip(index, shape, strict=True):
        flat = flat * n + int(i)
    return flat


def _unravel(flat: int, shape: Sequence[int]) -> tuple[int, ...]:
    out = []
    for n in reversed(shape):
        flat, i = divmod(flat, n)
        out.append(i)
    return tuple(reversed(out))
