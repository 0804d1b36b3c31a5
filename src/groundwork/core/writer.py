"""The background writer: one thread per store and process that makes what runs log durable.

``ActiveRun.log`` appends one tuple per point to :attr:`Writer.points` and returns.
The writer thread takes everything buffered (points, ``log_points`` segments, log
lines, new runs, heartbeats, a run's end) and writes it in one transaction: when
something has waited :data:`WRITE_AGE_S`, when :data:`WRITE_POINTS` points wait, when
a heartbeat is due, and when a run ends. A short run therefore costs one transaction,
and a fast one is written while it logs, so leaving it writes only the tail.

The crash promise: a process killed outright loses at most about :data:`MAX_LAG_S`
of logging, whatever the rate. The writer keeps up on its own at any rate the SDK
accepts points; when it cannot (a slow disk, a starved thread), the logging call that
finds the oldest unwritten point older than :data:`MAX_LAG_S` waits until the writer
has written everything handed over so far (back-pressure): the caller slows down to
the speed of the store instead of the backlog growing. A store that fails is retried
every tick; meanwhile logging goes on until :data:`MAX_BUFFERED_POINTS` wait, then raises.

Buffers are plain deques (appends and pops are atomic under the GIL), so several
threads may log into one run.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterable
from operator import itemgetter
from typing import Any, TypeVar

import numpy as np

from groundwork.storage.records import LogLine, MetricPoint, MetricSegment, RunCreate, RunEnd
from groundwork.storage.stores import MetadataStore

logger = logging.getLogger("groundwork.core.writer")

#: The writer looks at its buffers this often while a run is open or anything waits...
TICK_S = 0.05
#: ...and this often otherwise (a process that ran once does not keep waking up).
IDLE_TICK_S = 5.0
#: It writes once anything has waited this long (a run shorter than this costs one transaction)...
WRITE_AGE_S = 0.2
#: ...or once this many points wait.
WRITE_POINTS = 50_000
#: A logging call that finds a point unwritten for longer than this writes the backlog itself.
MAX_LAG_S = 0.3
#: Logging raises once this many points wait on a store that keeps failing (memory stays bounded).
MAX_BUFFERED_POINTS = 1_000_000
#: Running runs refresh their heartbeat this often (crash detection waits 30 s, or sees the PID gone).
HEARTBEAT_INTERVAL_S = 5.0
#: Points per stored chunk row (one series may span several rows of one transaction).
CHUNK_POINTS = 200_000

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_RUN, _KEY, _STEP, _VALUE, _STAMP = (itemgetter(i) for i in range(5))

T = TypeVar("T")


def _drain(queue: collections.deque[T]) -> list[T]:
    """Pop what ``queue`` holds now (appends racing with this stay for the next drain); a loop in C."""
    return list(itertools.starmap(queue.popleft, itertools.repeat((), len(queue))))


class Writer:
    """The background thread that writes one store's buffered points, logs, new runs and heartbeats."""

    def __init__(self, store: MetadataStore, *, background: bool = True) -> None:
        """``background=False`` starts no thread: only :meth:`flush` and the back-pressure write."""
        self.store = store
        self.creations: collections.deque[RunCreate] = collections.deque()
        self.points: collections.deque[MetricPoint] = collections.deque()
        self.segments: collections.deque[MetricSegment] = collections.deque()
        self.logs: collections.deque[LogLine] = collections.deque()
        self.live: set[str] = set()  # runs of this process whose heartbeat we keep
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._inflight_since: float | None = None  # the oldest stamp of the write in progress
        self._durable_until = 0.0  # everything handed over before this time is written
        self._written = threading.Condition()  # notified after every write
        self._waiting = 0  # logging threads waiting for the writer to catch up
        self._open_runs = 0  # runs of this process not yet ended, logging through this writer
        self._failing = False
        self._last_beat = time.time()
        self._background = background
        if background:
            threading.Thread(target=self._loop, name="groundwork-writer", daemon=True).start()

    # -- the thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            busy = self._open_runs or self._waiting or self.points or self.segments or self.logs or self.creations
            self._wake.wait(TICK_S if busy else IDLE_TICK_S)
            self._wake.clear()
            if self._due():
                self.try_flush()

    def run_opened(self) -> None:
        """A run starts logging through this writer: look at the buffers every tick until it ends."""
        with self._written:
            self._open_runs += 1
        self._wake.set()

    def run_closed(self) -> None:
        with self._written:
            self._open_runs -= 1

    def _due(self) -> bool:
        if self._waiting or len(self.points) >= WRITE_POINTS:
            return True
        now = time.time()
        oldest = self._oldest_pending()
        if oldest is not None and now - oldest >= WRITE_AGE_S:
            return True
        return bool(self.live) and now - self._last_beat >= HEARTBEAT_INTERVAL_S

    def _oldest_pending(self) -> float | None:
        """The time the oldest buffered item was handed over (None when nothing waits)."""
        stamps = []
        # A flush may empty a deque between a length test and the read: read, and take IndexError as empty.
        try:
            stamps.append(self.points[0][4])
        except IndexError:
            pass
        try:
            stamps.append(float(self.segments[0].timestamps[0]))
        except IndexError:
            pass
        try:
            stamps.append(self.logs[0][2])
        except IndexError:
            pass
        try:
            stamps.append(float(self.creations[0].row["created_at"]))
        except IndexError:
            pass
        return min(stamps) if stamps else None

    def nudge(self) -> None:
        self._wake.set()

    # -- back-pressure, asked by logging calls ----------------------------------------------------------
    def backlog_age(self) -> float:
        """Seconds since the oldest point not yet durable was handed over (0 when none)."""
        oldest = [s for s in (self._inflight_since, self._oldest_pending()) if s is not None]
        return time.time() - min(oldest) if oldest else 0.0

    def check_backlog(self) -> None:
        """What a logging call does every thousand points: keep the backlog short, in time and in size."""
        waiting = len(self.points)
        if waiting >= MAX_BUFFERED_POINTS:
            self.flush()  # memory stays bounded: a store that keeps failing raises here, into the caller
        elif self.backlog_age() > MAX_LAG_S and not self._failing:
            self.catch_up()  # back-pressure: the caller waits for the store
        elif waiting >= WRITE_POINTS and self._inflight_since is None:
            self.nudge()

    def catch_up(self) -> None:
        """Wait until everything handed over so far is written (or the store fails).

        The writer thread writes while this thread waits: a wait, unlike a write, can be
        interrupted by a signal handler (SIGTERM's flushes and ends the runs), and the
        writer gets the interpreter to itself meanwhile.
        """
        if not self._background:
            self.try_flush()
            return
        target = time.time()
        with self._written:
            self._waiting += 1
            try:
                self._wake.set()
                while self._durable_until < target and not self._failing:
                    self._written.wait(TICK_S)
            finally:
                self._waiting -= 1

    # -- writing ---------------------------------------------------------------------------------------
    def flush(self, end: RunEnd | None = None) -> None:
        """Write everything buffered so far in one transaction; returns when it is durable.

        ``end`` (a run's ending) goes into the same transaction as its last points.
        """
        with self._flush_lock:
            self._write(end)

    def try_flush(self) -> None:
        """:meth:`flush`, for the thread and exit hooks: a failure is logged once per outage and retried."""
        try:
            self.flush()
        except Exception as exc:
            if not self._failing:
                logger.warning("groundwork: could not write to the store %s, will retry: %s", self.store.display_url, exc)
            with self._written:  # waiters stop waiting for a store that fails
                self._failing = True
                self._written.notify_all()

    def _write(self, end: RunEnd | None) -> None:
        # Points before runs: a point's run was queued before the point, so every run a drained
        # point belongs to is drained too (or was written earlier).
        now = time.time()  # everything handed over before now is in the drains below
        points = _drain(self.points)
        segments = _drain(self.segments)
        logs = _drain(self.logs)
        creations = _drain(self.creations)
        beats = list(self.live) if self.live and now - self._last_beat >= HEARTBEAT_INTERVAL_S else []
        if not (points or segments or logs or creations or beats or end):
            self._written_until(now)
            return
        stamps = [points[0][4]] if points else []
        stamps += [float(s.timestamps[0]) for s in segments if len(s.timestamps)]
        stamps += [line[2] for line in logs[:1]]
        self._inflight_since = min(stamps) if stamps else None
        try:
            series = [*_as_segments(points), *segments]
            self.store.write_batch(
                logs=logs, heartbeat_ids=beats, end=end, segments=series, creations=creations
            )
        except BaseException:  # keep the data for the next try, in order
            self.creations.extendleft(reversed(creations))
            self.segments.extendleft(reversed(segments))
            self.points.extendleft(reversed(points))
            self.logs.extendleft(reversed(logs))
            raise
        finally:
            self._inflight_since = None
        if self._failing:
            logger.warning("groundwork: writing to the store %s works again", self.store.display_url)
        self._failing = False
        if beats:
            self._last_beat = now
        self._written_until(now)

    def _written_until(self, when: float) -> None:
        with self._written:
            self._durable_until = when
            self._written.notify_all()


def _as_segments(points: list[MetricPoint]) -> list[MetricSegment]:
    """Buffered points as one array segment per series (in logging order), at most :data:`CHUNK_POINTS` each."""
    if not points:
        return []
    count = len(points)
    try:
        steps = np.fromiter(map(_STEP, points), np.int64, count)
    except OverflowError:
        kept = [p for p in points if _I64_MIN <= p[2] <= _I64_MAX]
        logger.warning("groundwork: dropped %d points whose step does not fit in 64 bits", count - len(kept))
        return _as_segments(kept)
    values = np.fromiter(map(_VALUE, points), np.float64, count)
    stamps = np.fromiter(map(_STAMP, points), np.float64, count)
    run_ids = list(map(_RUN, points))
    keys = list(map(_KEY, points))
    if run_ids.count(run_ids[0]) == count and keys.count(keys[0]) == count:  # one series: no sorting
        return list(_chunks(run_ids[0], keys[0], steps, values, stamps))
    index: dict[tuple[str, str], int] = {}
    codes = np.fromiter((index.setdefault(pair, len(index)) for pair in zip(run_ids, keys, strict=True)), np.intp, count)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(index) + 1))
    out: list[MetricSegment] = []
    for (run_id, key), code in index.items():
        take = order[bounds[code] : bounds[code + 1]]
        out.extend(_chunks(run_id, key, steps[take], values[take], stamps[take]))
    return out


def _chunks(run_id: str, key: str, steps: Any, values: Any, stamps: Any) -> Iterable[MetricSegment]:
    for start in range(0, len(steps), CHUNK_POINTS):
        end = start + CHUNK_POINTS
        yield MetricSegment(run_id, key, steps[start:end], values[start:end], stamps[start:end])


# -- one writer per store and process ---------------------------------------------------------------------
_writers: dict[tuple[int, str], Writer] = {}
_writers_lock = threading.Lock()


def writer_for(store: MetadataStore) -> Writer:
    """This process's writer for ``store`` (started on first use)."""
    key = (os.getpid(), store.url)
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None:
            writer = Writer(store)
            _writers[key] = writer
        return writer


def _own_writers() -> list[Writer]:
    with _writers_lock:
        return [w for (pid, _), w in _writers.items() if pid == os.getpid()]


def pending_writes() -> bool:
    """Whether this process holds runs not yet written (readers flush first)."""
    return any(w.creations for w in _own_writers())


def flush_all() -> None:
    """Flush every store's buffered points (done at exit and on SIGTERM); failures are logged."""
    for writer in _own_writers():
        writer.try_flush()
