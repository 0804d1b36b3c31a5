"""The ``local`` executor (worker processes on this machine) and ``inline`` (this very process).

``local`` keeps a pool of worker processes made by ``forkserver`` (``spawn``
where there is none): never ``fork``, which would copy the orchestrator's
threads and database connections. The pool is made when the first step needs
it and kept warm for later pipeline runs in the same process. Independent
branches run in parallel, up to ``max_workers`` one-CPU steps at once (a step
with ``resources={"cpus": 2}`` takes two).

As with any Python multiprocessing, a script that runs a pipeline at import
time must guard it with ``if __name__ == "__main__":``.

``inline`` runs each step in the calling process, one at a time: slower for
branches, but a debugger and ``print`` work as in plain Python.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from groundwork.config import Config
from groundwork.core.pipelines.worker import StepOutcome, StepTask, execute_task

_pools: dict[int, ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        # Preload what every worker imports, once, in the fork server.
        ctx.set_forkserver_preload(["__main__", "groundwork.core.pipelines.worker"])
        return ctx
    return multiprocessing.get_context("spawn")


def _pool(workers: int) -> ProcessPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
            _pools[workers] = pool
        return pool


def _drop_pool(workers: int, pool: ProcessPoolExecutor) -> None:
    with _pools_lock:
        if _pools.get(workers) is pool:
            del _pools[workers]
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pools() -> None:
    """Stop every warm worker pool of this process."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _main_without_phantom_file() -> Iterator[None]:
    """Hide a ``__main__.__file__`` that is not a file (``python -``, ``python -c``, some notebooks).

    New workers would try to re-import ``__main__`` from it and die. Steps travel by
    value, so workers do not need the main module at all.
    """
    main = sys.modules.get("__main__")
    file = getattr(main, "__file__", None)
    if main is None or file is None or os.path.isfile(file):
        yield
        return
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = file


class LocalExecutor:
    """Steps in worker processes on this machine; independent branches in parallel."""

    capture_environment = False

    def __init__(self, config: Config, max_workers: int | None = None) -> None:
        self.config = config
        self.slots: int | None = max(1, int(max_workers)) if max_workers else default_workers()

    def submit(self, task: StepTask, resources: Mapping[str, Any]) -> Future[StepOutcome]:
        workers = self.slots or 1
        pool = _pool(workers)
        with _main_without_phantom_file():
            try:
                return pool.submit(execute_task, task)
            except (BrokenProcessPool, RuntimeError):
                # A worker died (killed, out of memory) and broke the pool: start a fresh one.
                _drop_pool(workers, pool)
                return _pool(workers).submit(execute_task, task)

    def shutdown(self) -> None:
        """Keep the pool warm for the next run; a broken one is replaced on the next submit."""
        workers = self.slots or 1
        with _pools_lock:
            pool = _pools.get(workers)
        if pool is not None and getattr(pool, "_broken", False):
            _drop_pool(workers, pool)


class InlineExecutor:
    """Steps in the calling process, one at a time (for debugging)."""

    capture_environment = False
    slots: int | None = 1

    def __init__(self, config: Config, max_workers: int | None = None) -> None:
        self.config = config

    def submit(self, task: StepTask, resources: Mapping[str, Any]) -> Future[StepOutcome]:
        future: Future[StepOutcome] = Future()
        future.set_result(execute_task(task))
        return future

    def shutdown(self) -> None:
        pass
