"""Dynamic batching: concurrent requests for one model become one runtime call.

A request's validated rows are queued with a future. One drain task per model takes
what is queued (whole requests, up to ``max_batch_size`` rows), runs the model once
on the concatenated rows in a worker thread, and hands each future exactly its own
slice of the outputs. While a batch runs, the event loop keeps reading and validating
requests, so under load the next batch is already waiting: throughput grows with
concurrency while a lone request never waits for company.

``max_wait_ms`` bounds how long a batch that is not full may wait for requests that
are *already arriving* (received, still being read or validated); with nothing in
flight it runs at once. Requests validated against different loaded versions (during
an alias hot-swap) never share a runtime call: each runs on the version it was
checked against.

When a batch fails, its requests are retried one by one, so one bad request cannot
fail its neighbours; the error goes only to the request that causes it.

Where a runtime call runs is ``inline``: ``True`` on the event loop, ``False`` in a
worker thread, ``None`` (the server's default) decided by the model's own speed. A call
that takes microseconds (a LogisticRegression on ONNX Runtime: ~30 us for 64 rows) costs
less than handing it to a thread and back, and on a loaded machine each hand-off may
also wait for the scheduler, which is what a server's p99 is made of. So the batcher
keeps the fastest of the last :data:`RECENT_CALLS` calls' durations and runs them inline while
it is under :data:`INLINE_BELOW_S`, in the thread otherwise (a slower version swapped in moves
back). The fastest, not an average: a call's wall time also holds what it waited for the GIL
when the runtime handed it back (another thread, such as the prediction log's writer, may hold
it for milliseconds) and for the CPU on a loaded machine; such waits only ever add time. An
average pushed up by them sent a fast model to the thread, where every call then waited for
the busy event loop's GIL and kept the average up.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from groundwork.engines.serve.validation import concat

#: In the automatic mode, runtime calls taking less than this run on the event loop ...
INLINE_BELOW_S = 0.0005
#: ... judged by the fastest of this many recent calls
RECENT_CALLS = 8


class Runner(Protocol):
    """What a batch runs on: a loaded model version."""

    def predict_array(self, batch: Any) -> Any: ...


class BatchError(Exception):
    """The model failed on a request's rows; ``cause`` is what it raised."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(slots=True)
class _Item:
    runner: Runner
    batch: Any
    rows: int
    future: asyncio.Future[Any]


@dataclass
class BatchStats:
    """Counters for tests and /metrics (the Prometheus histograms are fed by ``on_batch``)."""

    batches: int = 0
    rows: int = 0
    requests: int = 0
    largest: int = 0
    sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))


def _run(runner: Runner, parts: list[Any], rows: int) -> tuple[Any, float]:
    """The model's output for the concatenated rows, and how long the runtime call itself took."""
    batch = concat(parts)
    started = time.perf_counter()
    out = runner.predict_array(batch)
    took = time.perf_counter() - started
    if not hasattr(out, "__len__") or len(out) != rows:
        got = len(out) if hasattr(out, "__len__") else "no"
        raise RuntimeError(f"the model returned {got} rows of output for {rows} rows of input")
    return out, took


class DynamicBatcher:
    """Merges concurrent requests for one model into runtime calls of at most ``max_batch_size`` rows."""

    def __init__(
        self,
        *,
        max_batch_size: int = 64,
        max_wait_ms: float = 2.0,
        executor: Executor | None = None,
        inline: bool | None = False,
        on_batch: Callable[[int, int, float], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.max_batch_size = max_batch_size
        self.max_wait_s = max(0.0, max_wait_ms) / 1000.0
        self._own_executor = executor is None and inline is not True
        self._executor = executor or (None if inline is True else ThreadPoolExecutor(1, thread_name_prefix="gw-batch"))
        self.inline = inline
        #: the runtime call's own duration: the fastest of the last RECENT_CALLS (the automatic mode decides on it)
        self.call_s: float | None = None
        self._recent: deque[float] = deque(maxlen=RECENT_CALLS)
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._incoming = 0
        self._draining = False
        self._more: asyncio.Future[None] | None = None

    # -- the request side -------------------------------------------------------------------
    def arriving(self) -> None:
        """A request for this model is being read: a batch that is not full may wait for it."""
        self._incoming += 1

    def withdrawn(self) -> None:
        """A request announced by :meth:`arriving` will not be submitted (it was rejected)."""
        self._incoming -= 1
        self._poke()

    async def submit(self, runner: Runner, batch: Any, rows: int) -> Any:
        """Queue a request's validated rows; returns exactly its rows of the model's output.

        Call :meth:`arriving` first; submitting consumes that announcement.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Item(runner, batch, rows, future))
        self._queued_rows += rows
        self._incoming -= 1
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        else:
            self._poke()
        return await future

    def _poke(self) -> None:
        more = self._more
        if more is not None and not more.done() and (self._incoming <= 0 or self._queued_rows >= self.max_batch_size):
            more.set_result(None)

    # -- the drain task ------------------------------------------------------------------------
    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                if self.max_wait_s and self._queued_rows < self.max_batch_size and self._incoming > 0:
                    await self._wait_for_more(loop)
                items = self._take()
                start = 0
                while start < len(items):  # consecutive items checked against the same version
                    end = start + 1
                    while end < len(items) and items[end].runner is items[start].runner:
                        end += 1
                    await self._run_group(loop, items[start:end])
                    start = end
        finally:
            self._draining = False
            if self._queue:  # queued while the finally ran: keep draining
                self._draining = True
                loop.create_task(self._drain())

    async def _wait_for_more(self, loop: asyncio.AbstractEventLoop) -> None:
        deadline = loop.time() + self.max_wait_s
        while self._queued_rows < self.max_batch_size and self._incoming > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            more: asyncio.Future[None] = loop.create_future()
            self._more = more
            timer = loop.call_later(remaining, _resolve, more)
            try:
                await more
            finally:
                timer.cancel()
                self._more = None

    def _take(self) -> list[_Item]:
        items = [self._queue.popleft()]
        rows = items[0].rows
        while self._queue and rows + self._queue[0].rows <= self.max_batch_size:
            item = self._queue.popleft()
            items.append(item)
            rows += item.rows
        self._queued_rows -= rows
        return items

    async def _run_group(self, loop: asyncio.AbstractEventLoop, items: list[_Item]) -> None:
        runner = items[0].runner
        parts = [it.batch for it in items]
        rows = sum(it.rows for it in items)
        started = time.perf_counter()
        try:
            if self.runs_inline:
                out, took = _run(runner, parts, rows)
            else:
                out, took = await loop.run_in_executor(self._executor, _run, runner, parts, rows)
        except Exception as exc:
            if len(items) == 1:
                _fail(items[0], exc)
            else:
                for item in items:  # isolate the request that breaks the batch
                    await self._run_group(loop, [item])
            return
        elapsed = time.perf_counter() - started
        self._recent.append(took)
        self.call_s = min(self._recent)
        stats = self.stats
        stats.batches += 1
        stats.rows += rows
        stats.requests += len(items)
        stats.largest = max(stats.largest, rows)
        stats.sizes.append(rows)
        if self.on_batch is not None:
            self.on_batch(rows, len(items), elapsed)
        if len(items) == 1:
            if not items[0].future.done():
                items[0].future.set_result(out)
            return
        start = 0
        for item in items:
            end = start + item.rows
            if not item.future.done():  # the caller may have gone away
                item.future.set_result(out[start:end])
            start = end

    @property
    def idle(self) -> bool:
        """Nothing queued, running or announced: closing now fails no request."""
        return not self._queue and not self._draining and self._incoming <= 0

    @property
    def runs_inline(self) -> bool:
        """Whether the next runtime call runs on the event loop."""
        if self.inline is not None:
            return self.inline
        return self.call_s is not None and self.call_s < INLINE_BELOW_S

    def close(self) -> None:
        if self._own_executor and self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(BatchError(exc))


__all__ = ["BatchError", "DynamicBatcher", "Runner", "np"]
