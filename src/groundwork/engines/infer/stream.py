"""The streaming loop: read windows batch by batch, run the model, blend into chunk sums, write chunks.

Memory is a fixed pool of chunk-sized float32 sums, sized from the window, batch and
chunk sizes (not the volume), allocated once at the start. A sum lives in the pool from
the first batch that touches its chunk to the last; when the pool is full, the sum
whose next batch is furthest away is saved to the partial folder and read back when
that batch comes (Belady's choice: the fewest saves). A chunk is divided by its
weights, converted and handed to the writer thread as soon as its last batch is in.

Three threads overlap the work: a reader fetches the next batches' windows, the
caller's thread runs the model (which uses every core) and blends, a writer writes
finished chunks and journals them.

Resuming: a batch is computed only if it adds to a chunk that is not finished and
whose saved sum does not include it yet; batches are the same windows in every run,
sums are added in window order, so the output is byte-identical to an uninterrupted
run. Every ``checkpoint_s`` seconds the sums in the pool are saved, so a killed run
recomputes at most the batches since the last checkpoint.
"""

from __future__ import annotations

import heapq
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from groundwork.engines.infer.progress import Progress, State, chunk_digest
from groundwork.engines.infer.volume import Volume
from groundwork.engines.infer.windows import Grid
from groundwork.errors import GroundworkError, InvalidInput

OUTPUT_TYPES = ("float32", "float16", "labels")
ACTIVATIONS = ("none", "softmax", "sigmoid")
#: Finished chunks waiting for the writer, at most.
WRITE_QUEUE = 8
#: Batches read ahead, at most.
READ_AHEAD = 2


@dataclass(frozen=True)
class Blending:
    """How window outputs become the output: weights, activation, stored type."""

    weights: np.ndarray
    out_channels: int
    activation: str = "none"
    output_type: str = "float32"

    @property
    def stored_channels(self) -> int:
        return 1 if self.output_type == "labels" else self.out_channels

    @property
    def dtype(self) -> np.dtype[Any]:
        if self.output_type == "labels":
            return np.dtype(np.uint8 if self.out_channels <= 256 else np.int32)
        return np.dtype(self.output_type)

    def finish(self, total: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """A chunk's sum divided by its weights, activated and converted: ``(channels, *chunk)``."""
        out = total / weight
        if self.activation == "softmax":
            out = np.exp(out - out.max(axis=0, keepdims=True))
            out /= out.sum(axis=0, keepdims=True)
        elif self.activation == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-out))
        result: np.ndarray
        if self.output_type == "labels":
            labels = out > 0.5 if out.shape[0] == 1 else np.argmax(out, axis=0)[None]
            result = labels.astype(self.dtype)
        else:
            result = out.astype(self.dtype)
        return result


@dataclass
class StreamStats:
    windows: int = 0
    batches: int = 0
    chunks_written: int = 0
    chunks_skipped: int = 0
    chunks_redone: int = 0
    sums_saved: int = 0
    sums_loaded: int = 0
    seconds: float = 0.0
    redone: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Tick:
    """Progress after a batch: chunks finished (of ``chunks_total``), windows run, seconds."""

    chunks_done: int
    chunks_total: int
    windows: int
    windows_total: int
    seconds: float


def pool_slots(grid: Grid, out_channels: int, cache_bytes: int | None) -> int:
    """Chunk sums the pool holds: the cache budget (default: eight batches of window outputs),
    and never fewer than the most chunks one batch touches, plus one."""
    slot = out_channels * math.prod(grid.chunks) * 4
    budget = cache_bytes if cache_bytes is not None else 8 * grid.batch * out_channels * math.prod(grid.window) * 4
    widest = max(len(grid.chunks_of_batch(b)) for b in range(grid.total_batches))
    return max(budget // slot, widest + 1)


def memory_estimate(grid: Grid, in_channels: int, in_itemsize: int, blending: Blending, slots: int,
                    mapped: int = 0) -> dict[str, int]:
    """Bytes the loop holds at most, by part (the model's own working memory is not included).

    ``mapped``: bytes of memory-mapped file pages the volumes may hold at once.
    """
    window = math.prod(grid.window)
    chunk = math.prod(grid.chunks)
    parts = {
        "chunk sums": slots * blending.out_channels * chunk * 4,
        "windows read ahead": (READ_AHEAD + 3) * grid.batch * in_channels * window * max(4, in_itemsize),
        "model outputs": 3 * grid.batch * blending.out_channels * window * 4,
        "chunks being written": (WRITE_QUEUE + 2) * blending.stored_channels * chunk * blending.dtype.itemsize,
        "mapped file pages": mapped,
    }
    parts["total"] = sum(parts.values())
    return parts


class _Pool:
    """Chunk sums in a preallocated array; spills to the partial folder by furthest next use."""

    def __init__(self, grid: Grid, channels: int, slots: int, progress: Progress, saved: dict[int, int],
                 stats: StreamStats) -> None:
        self.grid = grid
        self.data = np.zeros((slots, channels, *grid.chunks), dtype=np.float32)
        self.data.fill(0.0)  # the pages are this run's from the start: memory is what was announced
        self.free = list(range(slots - 1, -1, -1))
        self.live: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.saved = saved  # chunk -> batch its saved sum runs through
        self.next_use: dict[int, int] = {}
        self.heap: list[tuple[int, int]] = []
        self.pinned: set[int] = set()
        self.progress = progress
        self.stats = stats

    def view(self, cid: int, slot: int) -> np.ndarray:
        _, box = self.grid.chunk_box(cid)
        key: tuple[Any, ...] = (slot, slice(None), *(slice(0, b.stop - b.start) for b in box))
        view: np.ndarray = self.data[key]
        return view

    def get(self, cid: int, batch: int, next_use: int) -> np.ndarray:
        slot = self.live.get(cid)
        if slot is None:
            slot = self.free.pop() if self.free else self._evict(batch)
            self.live[cid] = slot
            view = self.view(cid, slot)
            version = self.saved.get(cid, -1)
            if version >= 0:
                view[...] = self.progress.load_sum(cid, version)
                self.stats.sums_loaded += 1
            else:
                view.fill(0.0)
        self.dirty.add(cid)
        if self.next_use.get(cid) != next_use:
            self.next_use[cid] = next_use
            heapq.heappush(self.heap, (-next_use, cid))
        return self.view(cid, slot)

    def _evict(self, batch: int) -> int:
        held = []  # sums the current batch still adds to: back on the heap afterwards
        try:
            while self.heap:
                entry = heapq.heappop(self.heap)
                neg, cid = entry
                if cid not in self.live or self.next_use.get(cid) != -neg:
                    continue  # stale entry
                if cid in self.pinned:
                    held.append(entry)
                    continue
                self.save(cid, batch)
                slot = self.release(cid)
                self.free.remove(slot)  # handed straight to the caller
                return slot
        finally:
            for entry in held:
                heapq.heappush(self.heap, entry)
        raise RuntimeError("chunk pool too small for one batch")  # pool_slots() rules this out

    def save(self, cid: int, batch: int) -> None:
        if cid in self.dirty:
            previous = self.saved.get(cid)
            self.progress.save_sum(cid, batch, self.view(cid, self.live[cid]), previous)
            self.saved[cid] = batch
            self.dirty.discard(cid)
            self.stats.sums_saved += 1

    def release(self, cid: int) -> int:
        slot = self.live.pop(cid)
        self.dirty.discard(cid)
        self.next_use.pop(cid, None)
        self.free.append(slot)
        return slot

    def checkpoint(self, batch: int) -> None:
        for cid in list(self.dirty):
            self.save(cid, batch)


class _Writer(threading.Thread):
    """Writes finished chunks in order and journals them."""

    def __init__(self, target: Volume, progress: Progress, grid: Grid) -> None:
        super().__init__(name="gw-infer-writer", daemon=True)
        self.target = target
        self.progress = progress
        self.grid = grid
        self.queue: queue.Queue[tuple[int, np.ndarray] | None] = queue.Queue(WRITE_QUEUE)
        self.error: BaseException | None = None
        self.written = 0

    def run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                done = [self._write(item)]
                while True:  # journal what is already waiting in one append
                    try:
                        more = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        self.progress.finished(done)
                        return
                    done.append(self._write(more))
                self.progress.finished(done)
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
            while self.queue.get() is not None:
                pass

    def _write(self, item: tuple[int, np.ndarray]) -> tuple[int, str]:
        cid, block = item
        n, box = self.grid.chunk_box(cid)
        try:
            self.target.write(n, box, block)
        except OSError as exc:
            raise InvalidInput(f"cannot write the output ({self.target.path}): {exc.strerror or exc}") from None
        self.written += 1
        return cid, chunk_digest(self.target.layout.from_view(block))

    def put(self, item: tuple[int, np.ndarray] | None) -> None:
        while True:
            if self.error is not None and item is not None:
                raise self.error
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


class _Reader(threading.Thread):
    """Reads the windows of the batches to compute, in order, a few batches ahead."""

    def __init__(self, source: Volume, grid: Grid, batches: Sequence[int], dtype: np.dtype[Any]) -> None:
        super().__init__(name="gw-infer-reader", daemon=True)
        self.source = source
        self.grid = grid
        self.batches = batches
        self.dtype = dtype
        self.queue: queue.Queue[tuple[int, np.ndarray] | BaseException] = queue.Queue(READ_AHEAD)
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            for b in self.batches:
                if self.stop.is_set():
                    return
                self._put((b, self.read(b)))
        except BaseException as exc:
            self._put(exc)

    def _put(self, item: tuple[int, np.ndarray] | BaseException) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def read(self, b: int) -> np.ndarray:
        grid = self.grid
        windows = [grid.window_at(g) for g in grid.batch_windows(b)]
        out = np.empty((len(windows), self.source.channels, *grid.window), dtype=self.dtype)
        by_volume: dict[int, list[tuple[int, tuple[int, ...]]]] = {}
        for i, (n, start) in enumerate(windows):
            by_volume.setdefault(n, []).append((i, start))
        for n, items in by_volume.items():
            lo = [min(s[d] for _, s in items) for d in range(len(grid.window))]
            hi = [max(s[d] for _, s in items) + grid.window[d] for d in range(len(grid.window))]
            if math.prod(b - a for a, b in zip(lo, hi, strict=True)) <= 2 * len(items) * math.prod(grid.window):
                block = self.source.read(n, [slice(a, b) for a, b in zip(lo, hi, strict=True)])
                for i, start in items:
                    key = tuple(slice(s - a, s - a + w) for s, a, w in zip(start, lo, grid.window, strict=True))
                    out[i] = block[(slice(None), *key)]
            else:
                for i, start in items:
                    out[i] = self.source.read(n, [slice(s, s + w) for s, w in zip(start, grid.window, strict=True)])
        return out

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for _ in self.batches:
            item = self.queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item


def verify_finished(target: Volume, grid: Grid, state: State, chunks: Sequence[int]) -> list[int]:
    """Chunks the journal calls finished whose bytes no longer match (torn or damaged): redo them."""
    bad = []
    for cid in chunks:
        digest = state.finished.get(cid)
        if digest is None:
            continue
        n, box = grid.chunk_box(cid)
        try:
            stored = target.layout.from_view(target.read(n, box))
        except GroundworkError:
            stored = None
        if stored is None or chunk_digest(stored) != digest:
            bad.append(cid)
            del state.finished[cid]
            state.sums.pop(cid, None)
    return bad


def return_freed_memory() -> None:
    """Ask glibc to give large freed buffers back to the system at once.

    By default glibc raises its mmap threshold after a large block is freed, so later
    window-sized buffers come from the heap, and the heap's high-water mark grows with
    the number of batches. A fixed threshold keeps every buffer over 128 KiB in its own
    mapping, returned when freed: memory stays what was announced. (Process-wide; other
    C libraries and non-glibc systems are left alone.)
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 128 * 1024)


def run_stream(
    grid: Grid,
    model: Callable[[np.ndarray], np.ndarray],
    model_dtype: np.dtype[Any],
    source: Volume,
    target: Volume,
    progress: Progress,
    blending: Blending,
    *,
    chunks: Sequence[int] | None = None,
    slots: int,
    checkpoint_s: float = 10.0,
    on_tick: Callable[[Tick], None] | None = None,
) -> StreamStats:
    """Compute the chunks ``chunks`` (default: all) of the output that are not finished yet."""
    t0 = time.monotonic()
    return_freed_memory()
    stats = StreamStats()
    state = progress.state()
    wanted = list(range(grid.total_chunks)) if chunks is None else list(chunks)
    stats.redone = verify_finished(target, grid, state, wanted)
    stats.chunks_redone = len(stats.redone)
    todo_chunks = [c for c in wanted if c not in state.finished]
    stats.chunks_skipped = len(wanted) - len(todo_chunks)

    # which batches add to which chunk (only what the saved sums do not hold yet)
    uses: dict[int, list[int]] = {}
    needed: set[int] = set()
    ready: list[int] = []
    for cid in todo_chunks:
        after = state.sums.get(cid, -1)
        batches = [b for b in grid.batches_of_chunk(cid) if b > after]
        if batches:
            uses[cid] = batches
            needed.update(batches)
        else:
            ready.append(cid)  # its saved sum holds everything: only the writing is left
    order = sorted(needed)
    last_of: dict[int, list[int]] = {}
    for cid, batches in uses.items():
        last_of.setdefault(batches[-1], []).append(cid)

    pool = _Pool(grid, blending.out_channels, min(slots, max(1, len(uses) + len(ready))), progress,
                 {c: state.sums[c] for c in todo_chunks if c in state.sums}, stats)
    writer = _Writer(target, progress, grid)
    reader = _Reader(source, grid, order, model_dtype)
    writer.start()
    reader.start()
    done = stats.chunks_skipped
    windows_total = sum(len(grid.batch_windows(b)) for b in order)
    last_checkpoint = time.monotonic()
    weights_of = _Weights(grid, blending.weights)
    try:
        for cid in ready:
            total = pool.get(cid, -1, -1)
            writer.put((cid, blending.finish(total, weights_of(cid))))
            pool.release(cid)
            done += 1
        cursor = {cid: 0 for cid in uses}
        for b, x in reader:
            y = _run_model(model, x, blending.out_channels, grid)
            touched = _touched(grid, b, uses, cursor)
            pool.pinned = {cid for cids in touched.values() for cid in cids}
            y *= blending.weights  # every window's outputs, weighted (in place: no copy)
            for i, g in enumerate(grid.batch_windows(b)):
                cids = touched.get(g)
                if not cids:
                    continue
                weighted = y[i]
                for cid in cids:
                    nxt = _next_use(uses[cid], cursor[cid])
                    total = pool.get(cid, b, nxt)
                    in_window, in_chunk = grid.local(g, cid)
                    total[(slice(None), *in_chunk)] += weighted[(slice(None), *in_window)]
            for cid in last_of.get(b, ()):
                total = pool.view(cid, pool.live[cid])
                writer.put((cid, blending.finish(total, weights_of(cid))))
                pool.release(cid)
                done += 1
            pool.pinned = set()
            stats.windows += len(x)
            stats.batches += 1
            now = time.monotonic()
            if now - last_checkpoint >= checkpoint_s:
                pool.checkpoint(b)
                last_checkpoint = now
            if writer.error is not None:
                raise writer.error
            if on_tick is not None:
                on_tick(Tick(done, len(wanted), stats.windows, windows_total, now - t0))
    except BaseException:
        reader.stop.set()
        writer.put(None)
        writer.join()
        raise
    writer.put(None)
    writer.join()
    if writer.error is not None:
        raise writer.error
    target.flush()
    stats.chunks_written = writer.written
    stats.seconds = time.monotonic() - t0
    return stats


def _run_model(model: Callable[[np.ndarray], np.ndarray], x: np.ndarray, channels: int, grid: Grid) -> np.ndarray:
    y = np.asarray(model(x))
    expected = (len(x), channels, *grid.window)
    if y.shape != expected:
        raise InvalidInput(f"the model gave output of shape {y.shape} for windows {x.shape}, expected {expected}")
    return np.require(y, dtype=np.float32, requirements=["C", "W"])


def _touched(grid: Grid, b: int, uses: dict[int, list[int]], cursor: dict[int, int]) -> dict[int, list[int]]:
    """For each window of batch ``b``, the chunks it adds to (those still taking batch ``b``)."""
    out: dict[int, list[int]] = {}
    for g in grid.batch_windows(b):
        cids = []
        for cid in grid.chunks_of_window(g):
            batches = uses.get(cid)
            if batches is None:
                continue
            k = cursor[cid]
            while k < len(batches) and batches[k] < b:
                k += 1
            cursor[cid] = k
            if k < len(batches) and batches[k] == b:
                cids.append(cid)
        out[g] = cids
    return out


def _next_use(batches: list[int], k: int) -> int:
    """The batch after the current one (``batches[k]``) that touches the chunk, or never."""
    return batches[k + 1] if k + 1 < len(batches) else 1 << 62


class _Weights:
    """The sum of window weights over a chunk, added in window order (MONAI's count map).

    Chunks at the same place relative to the window grid have the same sum: the last few
    are kept (keyed by where the windows fall in the chunk).
    """

    def __init__(self, grid: Grid, weights: np.ndarray, keep: int = 32) -> None:
        self.grid = grid
        self.weights = weights
        self.keep = keep
        self.cache: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()

    def __call__(self, cid: int) -> np.ndarray:
        grid = self.grid
        _, box = grid.chunk_box(cid)
        parts = [grid.local(g, cid) for g in grid.windows_of_chunk(cid)]
        key = (tuple(b.stop - b.start for b in box),
               tuple((tuple((s.start, s.stop) for s in w), tuple((s.start, s.stop) for s in c)) for w, c in parts))
        total = self.cache.get(key)
        if total is None:
            total = np.zeros(key[0], dtype=np.float32)
            for in_window, in_chunk in parts:
                total[in_chunk] += self.weights[in_window]
            self.cache[key] = total
            if len(self.cache) > self.keep:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        return total
