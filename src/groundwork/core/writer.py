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

Over a network (a store with ``remote = True``: the team server's client), what is drained
is first *sealed* into batches with client-made ids (:class:`SealedBatch`) and kept in an
:class:`Outbox` until the server has applied them, in order: a batch whose answer was lost
is sent again with the same id and applied once. While the server is unreachable the
writer keeps sealing (memory stays bounded: past :data:`SPILL_POINTS` points, batches are
spilled to files under the user's cache folder) and retries with exponential backoff and
jitter; logging never blocks on an outage. At exit it keeps trying for
:data:`EXIT_WAIT_S`, then leaves what is unsent in its spool, which the next process that
talks to the same server with the same token sends first.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import orjson

from groundwork.errors import StoreError
from groundwork.storage.records import (
    LogLine,
    MetricPoint,
    MetricSegment,
    RunCreate,
    RunEnd,
    from_wire,
    to_wire,
)
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
#: Over a network: the most points (and log lines) one sealed batch carries (a request of a few MB).
SEAL_POINTS = 100_000
#: Over a network: sealed batches hold at most this many points in memory; later ones go to a spool file.
SPILL_POINTS = 1_000_000
#: Over a network: retries wait ``RETRY_BASE_S * 2**n`` seconds (at most RETRY_CAP_S), times a random jitter.
RETRY_BASE_S = 0.1
RETRY_CAP_S = 5.0
#: Over a network: how long a process that exits keeps trying to send what is unsent before spooling it.
EXIT_WAIT_S = 10.0

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
_RUN, _KEY, _STEP, _VALUE, _STAMP = (itemgetter(i) for i in range(5))

T = TypeVar("T")


def _drain(queue: collections.deque[T]) -> list[T]:
    """Pop what ``queue`` holds now (appends racing with this stay for the next drain); a loop in C."""
    return list(itertools.starmap(queue.popleft, itertools.repeat((), len(queue))))


@dataclass(frozen=True)
class SealedBatch:
    """What one ``write_batch`` call carries over a network, with the id that makes a retry harmless."""

    id: str
    creations: tuple[RunCreate, ...] = ()
    segments: tuple[MetricSegment, ...] = ()
    logs: tuple[LogLine, ...] = ()
    heartbeat_ids: tuple[str, ...] = ()
    end: RunEnd | None = None

    @property
    def size(self) -> int:
        """Points and log lines (what memory is bounded by)."""
        return sum(len(s.steps) for s in self.segments) + len(self.logs)


def seal(
    segments: list[MetricSegment], logs: list[LogLine], creations: list[RunCreate], beats: list[str],
    end: RunEnd | None,
) -> list[SealedBatch]:
    """Everything drained at once, as batches of at most :data:`SEAL_POINTS` points and log lines each.

    New runs go in the first batch (their points may follow in any later one), the end in the last.
    """
    pieces = [piece for segment in segments
              for piece in _chunks(segment.run_id, segment.key, segment.steps, segment.values, segment.timestamps,
                                   SEAL_POINTS)]
    groups: list[list[MetricSegment]] = [[]]
    filled = 0
    for piece in pieces:
        if filled + len(piece.steps) > SEAL_POINTS and groups[-1]:
            groups.append([])
            filled = 0
        groups[-1].append(piece)
        filled += len(piece.steps)
    log_groups = [logs[i : i + SEAL_POINTS] for i in range(0, len(logs), SEAL_POINTS)] or [[]]
    count = max(len(groups), len(log_groups))
    return [
        SealedBatch(
            uuid.uuid4().hex,
            creations=tuple(creations) if i == 0 else (),
            segments=tuple(groups[i]) if i < len(groups) else (),
            logs=tuple(log_groups[i]) if i < len(log_groups) else (),
            heartbeat_ids=tuple(beats) if i == 0 else (),
            end=end if i == count - 1 else None,
        )
        for i in range(count)
    ]


def spool_dir(store: MetadataStore) -> Path:
    """Where batches for ``store`` wait on disk: one folder per server and token, under the user's cache."""
    from groundwork.core.environment import cache_dir

    return cache_dir() / "spool" / hashlib.sha256(store.url.encode()).hexdigest()[:24]


class Outbox:
    """Sealed batches waiting for a server, in order: in memory up to :data:`SPILL_POINTS`, the rest in files.

    A file is ``<ns>-<pid>-<seq>.batch`` (JSON of :func:`~groundwork.storage.records.to_wire`),
    written under a temporary name and renamed, readable by its user only. Files of
    processes that died are adopted (renamed, so one process takes each) and sent first.
    """

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._entries: collections.deque[SealedBatch | Path] = collections.deque()
        self._in_memory = 0
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._loaded: tuple[Path, SealedBatch] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def spilled(self) -> int:
        return sum(1 for entry in self._entries if isinstance(entry, Path))

    def append(self, batch: SealedBatch) -> None:
        with self._lock:
            if self._in_memory + batch.size > SPILL_POINTS:
                self._entries.append(self._write(batch))
            else:
                self._entries.append(batch)
                self._in_memory += batch.size

    def first(self) -> SealedBatch | None:
        with self._lock:
            if not self._entries:
                return None
            entry = self._entries[0]
        if isinstance(entry, SealedBatch):
            return entry
        if self._loaded is None or self._loaded[0] != entry:
            self._loaded = (entry, _read_batch(entry))
        return self._loaded[1]

    def done(self, batch: SealedBatch) -> None:
        """``batch`` (the first) was applied: forget it (and its file)."""
        with self._lock:
            entry = self._entries.popleft()
            if isinstance(entry, Path):
                self._loaded = None
                with contextlib.suppress(OSError):
                    entry.unlink()
            else:
                self._in_memory -= entry.size

    def spill_all(self) -> int:
        """Write every batch still in memory to the spool (a process about to exit); returns how many."""
        with self._lock:
            entries = [e if isinstance(e, Path) else self._write(e) for e in self._entries]
            spilled = sum(1 for old, new in zip(self._entries, entries, strict=True) if old is not new)
            self._entries = collections.deque(entries)
            self._in_memory = 0
            return spilled

    def adopt(self) -> int:
        """Take the spooled batches of processes that died before sending them (oldest first); returns how many."""
        from groundwork._process import pid_alive

        try:
            names = sorted(p.name for p in self.spool.glob("*.batch"))
        except OSError:
            return 0
        me = os.getpid()
        taken: list[Path] = []
        for name in names:
            parts = name.split("-")
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) == me or pid_alive(int(parts[1])):
                continue
            mine = self.spool / f"{parts[0]}-{me}-a{parts[2]}"
            try:
                os.rename(self.spool / name, mine)  # atomic: one process adopts each file
            except OSError:
                continue
            taken.append(mine)
        with self._lock:
            self._entries.extendleft(reversed(taken))
        return len(taken)

    def _write(self, batch: SealedBatch) -> Path:
        self.spool.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.spool / f"{time.time_ns():020d}-{os.getpid()}-{next(self._seq):08d}.batch"
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(to_wire(batch)))
        os.replace(temporary, path)
        return path


def _read_batch(path: Path) -> SealedBatch:
    batch: SealedBatch = from_wire(SealedBatch, orjson.loads(path.read_bytes()))
    return batch


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
        #: Over a network: sealed batches not yet applied, and when to try the server next.
        self.outbox: Outbox | None = None
        self._attempts = 0
        self._retry_at = 0.0
        if getattr(store, "remote", False):
            self.outbox = Outbox(spool_dir(store))
            self.outbox.adopt()
        if background:
            threading.Thread(target=self._loop, name="groundwork-writer", daemon=True).start()

    # -- the thread ------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            busy = (self._open_runs or self._waiting or self.points or self.segments or self.logs or self.creations
                    or self.outbox)
            self._wake.wait(TICK_S if busy else IDLE_TICK_S)
            self._wake.clear()
            if self._due():
                if self._backing_off():
                    self.seal_pending()  # the server is away: keep memory bounded, try again later
                else:
                    self.try_flush()

    def _backing_off(self) -> bool:
        return self.outbox is not None and self._failing and time.monotonic() < self._retry_at

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
        if self.outbox and time.monotonic() >= self._retry_at:
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
        if waiting >= MAX_BUFFERED_POINTS and self.outbox is not None:
            self.seal_pending()  # over a network: into the outbox, which spills to disk past a limit
        elif waiting >= MAX_BUFFERED_POINTS:
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

        ``end`` (a run's ending) goes into the same transaction as its last points. Over a
        network, an end the server cannot take now waits in the outbox with the points before
        it (a warning says so) rather than raising into the code that ends the run.
        """
        with self._flush_lock:
            if self.outbox is None or end is None:
                self._write(end)
                return
            try:
                self._write(end)
            except StoreError as exc:  # over a network, a run's end waits in the outbox like its points
                logger.warning("groundwork: the end of run %s waits until the server %s answers again: %s",
                               end.run_id, self.store.display_url, exc)
                with self._written:
                    self._failing = True
                    self._written.notify_all()

    def try_flush(self) -> None:
        """:meth:`flush`, for the thread and exit hooks: a failure is logged once per outage and retried."""
        try:
            with self._flush_lock:
                self._write(None, once=True)
        except Exception as exc:
            if not self._failing:
                logger.warning("groundwork: could not write to the store %s, will retry: %s", self.store.display_url, exc)
            with self._written:  # waiters stop waiting for a store that fails
                self._failing = True
                self._written.notify_all()
            self._attempts += 1
            self._retry_at = time.monotonic() + random.uniform(0.0, min(RETRY_CAP_S, RETRY_BASE_S * 2 ** min(self._attempts, 20)))

    def seal_pending(self) -> None:
        """Over a network: move what is buffered into the outbox without sending it (the server is away)."""
        if self.outbox is None:
            return
        with self._flush_lock:
            self._seal(None)

    def finish(self, wait_s: float = EXIT_WAIT_S) -> None:
        """At exit: keep sending for up to ``wait_s``; over a network, spool what is still unsent (and say where)."""
        deadline = time.monotonic() + wait_s
        self.try_flush()
        while self.outbox and self._failing and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._retry_at, deadline) - time.monotonic()))
            self.try_flush()
        if self.outbox:
            with self._flush_lock:
                self._seal(None)
                self.outbox.spill_all()
            logger.warning(
                "groundwork: the server %s is unreachable; %d batches wait in %s and are sent by the next "
                "groundwork process that uses this server and token",
                self.store.display_url, len(self.outbox), self.outbox.spool,
            )

    def _seal(self, end: RunEnd | None) -> list[SealedBatch]:
        assert self.outbox is not None
        points = _drain(self.points)
        segments = _drain(self.segments)
        logs = _drain(self.logs)
        creations = _drain(self.creations)
        beats = list(self.live) if self.live and time.time() - self._last_beat >= HEARTBEAT_INTERVAL_S else []
        if not (points or segments or logs or creations or beats or end):
            return []
        batches = seal([*_as_segments(points), *segments], logs, creations, beats, end)
        for batch in batches:
            self.outbox.append(batch)
        if beats:
            self._last_beat = time.time()
        return batches

    def _send_outbox(self, once: bool) -> None:
        """Send the sealed batches in order; each is applied once, however often it is sent."""
        assert self.outbox is not None
        send = cast(Any, self.store).write_batch
        while True:
            batch = self.outbox.first()
            if batch is None:
                return
            stamps = [float(s.timestamps[0]) for s in batch.segments if len(s.timestamps)]
            self._inflight_since = min(stamps) if stamps else None
            try:
                send(segments=batch.segments, logs=batch.logs, heartbeat_ids=batch.heartbeat_ids, end=batch.end,
                     creations=batch.creations, batch_id=batch.id, once=once)
            finally:
                self._inflight_since = None
            self.outbox.done(batch)

    def _write(self, end: RunEnd | None, *, once: bool = False) -> None:
        if self.outbox is not None:
            now = time.time()
            self._seal(end)
            self._send_outbox(once)
            if self._failing:
                logger.warning("groundwork: writing to the store %s works again", self.store.display_url)
            self._failing = False
            self._attempts = 0
            self._written_until(now)
            return
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


def _chunks(
    run_id: str, key: str, steps: Any, values: Any, stamps: Any, size: int = CHUNK_POINTS
) -> Iterable[MetricSegment]:
    if 0 < len(steps) <= size:
        yield MetricSegment(run_id, key, steps, values, stamps)
        return
    for start in range(0, len(steps), size):
        end = start + size
        yield MetricSegment(run_id, key, steps[start:end], values[start:end], stamps[start:end])


# -- one writer per store and process ---------------------------------------------------------------------
_writers: dict[tuple[int, str, str | None], Writer] = {}
_writers_lock = threading.Lock()


def writer_for(store: MetadataStore) -> Writer:
    """This process's writer for ``store`` (started on first use): one per database and project."""
    key = (os.getpid(), store.url, getattr(store, "project", None))
    with _writers_lock:
        writer = _writers.get(key)
        if writer is None:
            writer = Writer(store)
            _writers[key] = writer
        return writer


_spools_checked: set[tuple[int, str]] = set()


def send_spooled(store: MetadataStore) -> None:
    """Over a network: once per process, send what processes that exited left in this store's spool.

    A process that could not reach the server before it exited left its batches on disk;
    the next one that opens the same server with the same token sends them (oldest first)
    before it reads, whether or not it logs anything itself.
    """
    key = (os.getpid(), store.url)
    if not getattr(store, "remote", False) or key in _spools_checked:
        return
    _spools_checked.add(key)
    try:
        waiting = any(spool_dir(store).glob("*.batch"))
    except OSError:
        return
    if waiting:
        writer_for(store).try_flush()


def _own_writers() -> list[Writer]:
    with _writers_lock:
        return [w for (pid, _, _), w in _writers.items() if pid == os.getpid()]


def pending_writes() -> bool:
    """Whether this process holds runs not yet written (readers flush first)."""
    return any(w.creations or w.outbox for w in _own_writers())


def flush_all(final: bool = False) -> None:
    """Flush every store's buffered points (done at exit and on SIGTERM); failures are logged.

    ``final`` (the process is ending): a server that is away is waited for a while, then
    what is unsent is spooled to disk for the next process (:meth:`Writer.finish`).
    """
    for writer in _own_writers():
        if final and writer.outbox is not None:
            writer.finish()
        else:
            writer.try_flush()
