"""Where trials run: worker processes on this machine (``local``), or Ray tasks (``ray``).

With ``parallel=1`` and the local executor a trial runs in the sweep's own process (a
debugger and ``print`` work as usual; the driver handles that itself). Otherwise trials
go to a pool of ``parallel`` worker processes (``forkserver``, never ``fork``: the
driver's threads and connections must not be copied), or to Ray as tasks, at most
``parallel`` at a time, on ``GROUNDWORK_RAY_ADDRESS`` or a local Ray (see
:func:`groundwork.core.pipelines.executors.ray.connect`).

A local worker watches the sweep's process: when it is gone (``kill -9``), the worker
exits too instead of finishing a trial nobody will hear about.
"""

from __future__ import annotations

import atexit
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from groundwork._process import pid_alive as _alive  # a zombie counts as gone
from groundwork.config import Config
from groundwork.core.sweeps.trial import TrialOutcome, TrialTask, execute_trial
from groundwork.errors import InvalidInput

EXECUTORS = ("local", "ray")
#: How often a local worker checks that the sweep's process is alive.
WATCH_INTERVAL_S = 0.5


class TrialExecutor(Protocol):
    def submit(self, task: TrialTask) -> Future[TrialOutcome]: ...

    def shutdown(self) -> None: ...


def _watch(driver: int) -> None:
    """Worker initializer: exit when the sweep's process has gone."""

    def loop() -> None:
        while True:
            threading.Event().wait(WATCH_INTERVAL_S)
            if not _alive(driver):
                os._exit(1)

    threading.Thread(target=loop, name="gw-sweep-watch", daemon=True).start()


_pools: dict[tuple[int, int], ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


@atexit.register
def _shutdown_pools() -> None:
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


class LocalTrials:
    """Trials in ``parallel`` worker processes on this machine (kept warm for the next sweep of this process)."""

    def __init__(self, config: Config, parallel: int) -> None:
        self.parallel = parallel
        self._pool = self._new_pool(fresh=False)

    def _new_pool(self, fresh: bool) -> ProcessPoolExecutor:
        from groundwork.core.pipelines.executors.local import _context

        key = (os.getpid(), self.parallel)
        with _pools_lock:
            pool = _pools.get(key)
            if pool is None or fresh or getattr(pool, "_broken", False):
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(
                    max_workers=self.parallel, mp_context=_context(), initializer=_watch, initargs=(os.getpid(),)
                )
                _pools[key] = pool
            return pool

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        from groundwork.core.pipelines.executors.local import _main_without_phantom_file

        with _main_without_phantom_file():
            try:
                return self._pool.submit(execute_trial, task)
            except (BrokenProcessPool, RuntimeError):  # a worker died and broke the pool: a fresh one
                self._pool = self._new_pool(fresh=True)
                return self._pool.submit(execute_trial, task)

    def shutdown(self) -> None:
        """Keep the pool warm; a broken one is replaced on the next sweep."""


_remote: Any = None


class RayTrials:
    """Trials as Ray tasks (one CPU each); the driver keeps at most ``parallel`` in flight."""

    def __init__(self, config: Config, parallel: int) -> None:
        from groundwork.core.pipelines.executors.ray import connect

        global _remote
        self.ray = connect(config)
        if _remote is None:
            _remote = self.ray.remote(execute_trial)
        self._remote = _remote

    def submit(self, task: TrialTask) -> Future[TrialOutcome]:
        future: Future[TrialOutcome] = self._remote.options(num_cpus=1, max_retries=0).remote(task).future()
        return future

    def shutdown(self) -> None:
        pass  # a local Ray stays up for the next sweep of this process


def open_trial_executor(name: str, config: Config, parallel: int) -> TrialExecutor:
    if name == "local":
        return LocalTrials(config, parallel)
    if name == "ray":
        return RayTrials(config, parallel)
    raise InvalidInput(f"unknown executor {name!r}", hint=f"choose one of: {', '.join(EXECUTORS)}")


__all__ = ["EXECUTORS", "LocalTrials", "RayTrials", "TrialExecutor", "open_trial_executor"]
