"""The prediction log: every answered request's inputs, outputs, latency and version, in Parquet segments.

    log = PredictionLog(config, LogOptions(sample=1.0))
    log.start()
    rid = log.offer("digits", "production", "production", 3, batch, rows, outputs, latency_s)   # the request path
    log.close()                                                                                 # on shutdown

The request path only appends a tuple to a bounded queue (:meth:`PredictionLog.offer`: a
time stamp, a counter and an append, about a microsecond); when the queue is full the
record is dropped and counted (``groundwork_prediction_log_dropped_total`` on
``/metrics``), never waited for. A background thread takes what is queued every
``flush_interval_s`` (2 s: it sleeps, nothing wakes it per record) and adds it to the open
segment of its model
(:class:`~groundwork.engines.monitor.segment.SegmentBuilder`: Arrow batches plus the
summary, kept as rows arrive). A segment closes when it holds ``segment_rows`` rows or
``segment_bytes`` bytes, when it is ``segment_seconds`` old, and on shutdown: its
Parquet bytes go to the artifact store (content-addressed, written under a temporary
name and renamed), and the metadata store records it, with its summary, in one
transaction.

A segment is registered as ``open`` when it starts and refreshed every few seconds, so
a server killed mid-write leaves every closed segment readable and loses at most the
open one, which ``groundwork monitor`` reports as lost (its writer is gone), with the
number of records it held at its last refresh.

After a segment closes, its drift against the served version's reference (found through
lineage, once per version) is set on the ``groundwork_feature_drift`` gauges.
"""

from __future__ import annotations

import functools
import itertools
import operator
import os
import random
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from groundwork.config import Config
from groundwork.engines.monitor.segment import (
    INPUTS,
    MODEL,
    OUTPUTS,
    ROWS,
    SHADOW,
    STATUS,
    VERSION,
    Layout,
    SegmentBuilder,
    layout_of,
)
from groundwork.errors import InvalidInput


class LogListener(Protocol):
    """Where the log reports what it did (``groundwork serve``'s Prometheus metrics)."""

    def log_dropped(self, model: str) -> None: ...

    def log_segment(self, model: str, rows: int, requests: int) -> None: ...

    def log_drift(self, model: str, route: str, feature: str, statistic: str, value: float) -> None: ...


@dataclass(frozen=True)
class LogOptions:
    """How much is logged and how segments are cut (``groundwork serve --log-*`` flags)."""

    #: the fraction of requests logged (1: all; 0: none)
    sample: float = 1.0
    #: requests waiting for the writer; more are dropped (and counted)
    max_queue: int = 200_000
    #: seconds between the writer's turns (sooner when an open segment is due to close). Its cost
    #: per turn is fixed, and each turn contends with the event loop for the GIL: fewer, bigger
    #: turns cost the requests less (1,500 records a turn cost 2.7 us each to add, 3,000 or more 1.8 us)
    flush_interval_s: float = 2.0
    #: a segment closes at this many rows ...
    segment_rows: int = 250_000
    #: ... or this many bytes of Arrow data ...
    segment_bytes: int = 64 * 1024 * 1024
    #: ... or this many seconds after its first request
    segment_seconds: float = 60.0
    #: seconds between refreshes of an open segment's row (how a lost segment is told from a live one)
    heartbeat_s: float = 5.0
    #: set the drift gauges after each segment (needs the served version's reference, found through lineage)
    drift: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise InvalidInput(f"--log-sample is a fraction between 0 and 1, not {self.sample}")
        if self.segment_seconds <= 0:
            raise InvalidInput(f"--log-segment-seconds must be more than 0, not {self.segment_seconds}")
        if self.segment_rows < 1 or self.max_queue < 1:
            raise InvalidInput("the prediction log needs room for at least one row")


class PredictionLog:
    """The prediction log of one serving process (one open segment per model and layout)."""

    def __init__(self, config: Config, options: LogOptions | None = None, *,
                 listener: LogListener | None = None) -> None:
        self.config = config
        self.options = options or LogOptions()
        self.listener = listener
        #: records offered and dropped (queue full), segments closed, records in closed segments
        self.offered = 0
        self.dropped = 0
        self.segments = 0
        self.written = 0
        self._sample = self.options.sample
        self._random = random.random
        self._max_queue = self.options.max_queue
        #: what waits for the writer: a list, appended to by requests and cut at the front by the writer
        self._queue: list[tuple[Any, ...]] = []
        self._ids = itertools.count((os.getpid() & 0x3FFFFF) << 40)
        self._open: dict[tuple[str, Layout | None], SegmentBuilder] = {}
        self._layouts: dict[tuple[str, int], Layout] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self._references: dict[tuple[str, int], Any] = {}
        self._host = socket.gethostname()
        self._lock = threading.Lock()  # one flush at a time (the writer, or close())

    @property
    def enabled(self) -> bool:
        return self._sample > 0

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="gw-prediction-log", daemon=True)
            self._thread.start()

    # -- the request path --------------------------------------------------------------------------------
    def offer(self, model: str, route: str, alias: str | None, version: int, inputs: Any, rows: int, outputs: Any,
              latency_s: float, status: int = 200, error: str | None = None, *, shadow: bool = False,
              request_id: int | None = None) -> int | None:
        """Queue one request for the log; returns its request id (None when it was not logged).

        ``route`` is the target that answered (the alias served, or a ``--route`` label);
        ``inputs`` are the validated rows (what the model ran on), ``outputs`` its rows of
        output. A failed request passes ``status`` and ``error`` (and no outputs). A shadow
        copy passes ``shadow=True`` and its primary's ``request_id`` (log it only when the
        primary was logged: ``offer`` returned an id), so the two can be paired.
        """
        if self._sample < 1.0 and (request_id is None or not shadow) and self._random() >= self._sample:
            return None
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.dropped += 1
            if self.listener is not None:
                self.listener.log_dropped(model)
            return None
        rid = next(self._ids) if request_id is None else request_id
        queue.append((time.time(), model, alias, version, route, shadow, rid, inputs, rows, outputs, latency_s,
                      status, error))
        return rid

    # -- the writer --------------------------------------------------------------------------------------
    def _run(self) -> None:
        options = self.options
        next_beat = time.monotonic() + options.heartbeat_s
        while True:
            stopping = self._stop.wait(self._next_wait())
            try:
                self.flush(close_all=stopping)
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + options.heartbeat_s
                    self._heartbeat()
            except Exception as exc:  # the log must never take serving down
                self._warn("flush", f"the prediction log failed and will retry: {type(exc).__name__}: {exc}")
            if stopping:
                return

    def _next_wait(self) -> float:
        """Seconds until the writer's next turn: the flush interval, or sooner when an open segment is due."""
        wait = self.options.flush_interval_s
        if self._open:
            due = min(builder.opened_at for builder in list(self._open.values())) + self.options.segment_seconds
            wait = min(wait, max(0.05, due - time.time()))
        return wait

    def flush(self, *, close_all: bool = False) -> None:
        """Add what is queued to the open segments; close those that are due (all, with ``close_all``)."""
        with self._lock:
            # What is queued now, taken in two C calls (a copy and a cut of the front: each atomic
            # under the GIL, no Python work per record); requests keep appending past the cut.
            queue = self._queue
            count = len(queue)
            records = queue[:count]
            del queue[:count]
            self.offered += count
            # A burst larger than a segment is added in slices that fill the open segments up to
            # ``segment_rows`` (plus the shadow copies that follow the last request: shadows are
            # paired with their primaries within a segment), each full one closed before the next.
            options = self.options
            ends = np.cumsum(np.maximum(np.fromiter(map(_ROWS_OF, records), dtype=np.int64, count=count), 1))
            start = 0
            while start < count:
                room = options.segment_rows - max((b.rows for b in self._open.values()), default=0)
                before = int(ends[start - 1]) if start else 0
                end = max(start + 1, int(np.searchsorted(ends, before + room, side="right")))
                while end < count and records[end][SHADOW]:  # a shadow copy stays with the request before it
                    end += 1
                self._add_records(records[start:end])
                start = end
                if start < count:
                    self._close_due(close_all=False, now=time.time())
            self._close_due(close_all=close_all, now=time.time())

    def _add_records(self, records: list[tuple[Any, ...]]) -> None:
        models = set(map(_MODEL_OF, records))
        if len(models) == 1:  # one model served (the usual case): no Python work per record
            self._add(models.pop(), records)
        elif records:
            by_model: dict[str, list[tuple[Any, ...]]] = {}
            for record in records:
                by_model.setdefault(record[MODEL], []).append(record)
            for model, items in by_model.items():
                self._add(model, items)

    def _close_due(self, *, close_all: bool, now: float) -> None:
        options = self.options
        for key, builder in list(self._open.items()):
            if (close_all or builder.rows >= options.segment_rows or builder.nbytes >= options.segment_bytes
                    or now - builder.opened_at >= options.segment_seconds):
                del self._open[key]
                self._close(builder)

    def _layout(self, model: str, record: tuple[Any, ...]) -> Layout:
        key = (model, record[VERSION])
        layout = self._layouts.get(key)
        if layout is None:
            layout = self._layouts[key] = layout_of(record[INPUTS], record[OUTPUTS])
        return layout

    def _add(self, model: str, records: list[tuple[Any, ...]]) -> None:
        # The usual flush: every record answered, by one version. Checked field by field in C
        # (no Python work per record): this is most of the log's cost per request.
        fields = list(zip(*records, strict=True))
        if (len(set(fields[VERSION])) == 1 and set(fields[STATUS]) == {200}
                and all(map(_IS_SOMETHING, fields[OUTPUTS]))):
            self._builder(model, self._layout(model, records[0]), records[0][0]).add(records, fields)
            return
        answered: dict[Layout, list[tuple[Any, ...]]] = {}
        failed: list[tuple[Any, ...]] = []
        for record in records:
            if record[STATUS] == 200 and record[OUTPUTS] is not None:
                answered.setdefault(self._layout(model, record), []).append(record)
            else:
                failed.append(record)
        for layout, items in answered.items():
            self._builder(model, layout, items[0][0]).add(items)
        if failed:
            builder = next((b for (m, _), b in self._open.items() if m == model), None)
            if builder is None:
                known = next((lay for (m, _), lay in self._layouts.items() if m == model), None)
                builder = self._builder(model, known or layout_of(None, None), failed[0][0])
            builder.add(failed)

    def _builder(self, model: str, layout: Layout, first_ts: float) -> SegmentBuilder:
        builder = self._open.get((model, layout))
        if builder is None:
            created = self._open[(model, layout)] = SegmentBuilder(model, layout, opened_at=first_ts)
            pid = os.getpid()

            def open_row(monitor: Any) -> None:
                monitor.open_segment(created.id, model, pid=pid, host=self._host, opened_at=first_ts)

            self._store_call("open", open_row)
            return created
        return builder

    def _heartbeat(self) -> None:
        now = time.time()
        for builder in list(self._open.values()):
            self._store_call("touch", functools.partial(_touch, builder, now))

    def _close(self, builder: SegmentBuilder) -> None:
        if not builder.requests:
            return
        from groundwork.storage.stores import open_stores

        stores = open_stores(self.config)
        try:
            data = builder.to_parquet()
            info = stores.artifacts.put_bytes(data)
            summary = builder.summary()
            stores.monitor.close_segment(
                builder.id, model=builder.model, digest=info.digest, size=info.size, rows=builder.rows,
                requests=builder.requests, first_ts=builder.first_ts, last_ts=builder.last_ts, summary=summary,
                closed_at=time.time(), pid=os.getpid(), host=self._host, opened_at=builder.opened_at)
        except Exception as exc:
            self._warn("close", f"could not store a segment of {builder.model} ({builder.rows} rows lost): "
                                f"{type(exc).__name__}: {exc}")
            return
        self.segments += 1
        self.written += builder.rows
        if self.listener is not None:
            self.listener.log_segment(builder.model, builder.rows, builder.requests)
            if self.options.drift:
                self._drift(builder.model, summary)

    def _drift(self, model: str, summary: dict[str, Any]) -> None:
        """Set the drift gauges from a closed segment's summary, against each version's reference."""
        from groundwork.engines.monitor.drift import Thresholds
        from groundwork.engines.monitor.report import segment_drift

        assert self.listener is not None
        try:
            for route, features in segment_drift(model, summary, self._reference, Thresholds()).items():
                for feature in features:
                    for statistic in ("psi", "ks", "wasserstein", "chi2"):
                        value = getattr(feature, statistic)
                        if value is not None:
                            self.listener.log_drift(model, route, feature.name, statistic, float(value))
                    self.listener.log_drift(model, route, feature.name, "drifted", float(feature.drifted))
        except Exception as exc:
            self._warn(f"drift-{model}", f"no drift gauges for {model}: {type(exc).__name__}: {exc}")

    def _reference(self, model: str, version: int, layout: Layout) -> Any:
        """The reference of ``model``/``version`` (found through lineage once; None when there is none)."""
        key = (model, version)
        if key not in self._references:
            from groundwork.engines.monitor.reference import find_reference

            try:
                self._references[key] = find_reference(model, version, layout, config=self.config)
            except Exception as exc:
                self._references[key] = None
                self._warn(f"reference-{model}-{version}",
                           f"no drift gauges for {model}/{version}: {str(exc).splitlines()[0]}")
        return self._references[key]

    def _store_call(self, what: str, call: Callable[[Any], None]) -> None:
        from groundwork.storage.stores import open_stores

        try:
            call(open_stores(self.config).monitor)
        except Exception as exc:
            self._warn(what, f"the prediction log could not reach the store ({what}): {type(exc).__name__}: {exc}")

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"groundwork serve: {message}", file=sys.stderr, flush=True)

    def close(self, timeout_s: float = 60.0) -> None:
        """Write what is queued and close every open segment (blocking; call off the event loop)."""
        thread = self._thread
        if thread is not None:
            self._stop.set()
            thread.join(timeout=timeout_s)
            self._thread = None
        elif self._queue or self._open:
            self.flush(close_all=True)


_IS_SOMETHING = functools.partial(operator.is_not, None)
_MODEL_OF = operator.itemgetter(MODEL)
_ROWS_OF = operator.itemgetter(ROWS)


def _touch(builder: SegmentBuilder, now: float, monitor: Any) -> None:
    monitor.touch_segment(builder.id, rows=builder.rows, requests=builder.requests, updated_at=now)


__all__ = ["LogListener", "LogOptions", "PredictionLog"]
