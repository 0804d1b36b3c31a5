"""Executors run steps: ``local`` (worker processes), ``inline`` (this process), ``ray`` (Ray tasks).

An executor takes a :class:`~groundwork.core.pipelines.worker.StepTask` and
returns a :class:`concurrent.futures.Future` of its
:class:`~groundwork.core.pipelines.worker.StepOutcome`. It does not decide what
runs when (the orchestrator in :mod:`groundwork.core.pipelines.run` does, from
the graph and the cache); it only says how many steps it can run at once
(``slots``) and whether steps run on other machines (``capture_environment``).

Built-ins register through the same registry a plugin uses::

    register_executor("k8s", "my_plugin.executors:KubernetesExecutor")

The class is built as ``cls(config, max_workers)``, when the first step needs it
(a fully cached pipeline never starts one).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, Protocol, runtime_checkable

from groundwork.config import Config
from groundwork.core.pipelines.worker import StepOutcome, StepTask
from groundwork.errors import ConfigError, InvalidInput


class ExecutorUnavailable(ConfigError):
    """An executor that cannot start (Ray not installed, a cluster out of reach)."""

    headline = "Executor unavailable"
    http_status = 503


@runtime_checkable
class Executor(Protocol):
    """Runs step tasks and answers futures of their outcomes."""

    #: How many one-CPU steps may run at once (None: the executor queues them itself).
    slots: int | None
    #: Whether steps may run on another machine (their environment is then captured there).
    capture_environment: bool

    def submit(self, task: StepTask, resources: Mapping[str, Any]) -> Future[StepOutcome]:
        """Start ``task`` with ``resources`` ({"cpus", "memory", "gpus"}); returns at once."""
        ...

    def shutdown(self) -> None:
        """Release what this executor holds for this run (worker pools may stay warm)."""
        ...


_EXECUTORS: dict[str, str] = {
    "local": "groundwork.core.pipelines.executors.local:LocalExecutor",
    "inline": "groundwork.core.pipelines.executors.local:InlineExecutor",
    "ray": "groundwork.core.pipelines.executors.ray:RayExecutor",
}


def register_executor(name: str, target: str) -> None:
    """Make ``--executor name`` build the class ``"module:Class"``."""
    if ":" not in target:
        raise InvalidInput(f"executor target {target!r} must be 'module:Class'")
    _EXECUTORS[name] = target


def executor_names() -> list[str]:
    return sorted(_EXECUTORS)


def executor_class(name: str) -> Any:
    """The class registered as ``name``; one clear error for an unknown name."""
    target = _EXECUTORS.get(name)
    if target is None:
        raise InvalidInput(f"unknown executor {name!r}", hint=f"choose one of: {', '.join(executor_names())}")
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExecutorUnavailable(f"executor {name!r} cannot be loaded: {exc}") from None
    return getattr(module, class_name)


def open_executor(name: str, config: Config, max_workers: int | None = None) -> Executor:
    executor: Executor = executor_class(name)(config, max_workers)
    return executor


__all__ = ["Executor", "ExecutorUnavailable", "executor_class", "executor_names", "open_executor", "register_executor"]
