"""The ``ray`` executor: each step is a Ray task that reserves the step's ``resources``.

Where Ray runs:

* ``GROUNDWORK_RAY_ADDRESS`` (or ``Config.ray_address``) set: that cluster
  (``ray://head:10001`` for Ray Client, ``head:6379`` for a GCS address, ``auto``);
* otherwise a Ray already initialized in this process (``ray.init(...)`` by the caller);
* otherwise a local Ray started for this process (and left running for later runs).

Steps read and write artifacts through the artifact store, so outputs outlive
the cluster, and every worker must reach the same metadata and artifact stores:
on a real cluster that means PostgreSQL (or a team server) and S3-compatible storage.
Each step's environment is captured where it ran.
"""

from __future__ import annotations

import math
import socket
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit

from groundwork.config import Config
from groundwork.core.pipelines.executors import ExecutorUnavailable
from groundwork.core.pipelines.worker import StepOutcome, StepTask, execute_task
from groundwork.errors import InvalidInput

#: How long to wait for a TCP answer from a cluster address before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0

_remote: Any = None


def _run_task(task: StepTask) -> StepOutcome:
    return execute_task(task)


def _check_reachable(address: str) -> None:
    """Fail fast, with one line, when nothing answers at ``host:port`` (Ray itself waits long)."""
    if address in ("auto", "local"):
        return
    parts = urlsplit(address if "://" in address else f"ray://{address}")
    host, port = parts.hostname, parts.port
    if not host or not port:
        raise InvalidInput(
            f"GROUNDWORK_RAY_ADDRESS {address!r} is not host:port",
            hint="use ray://head:10001 (Ray Client), head:6379 (GCS address) or auto",
        )
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise ExecutorUnavailable(
            f"cannot reach Ray at {address}: {exc.strerror or exc}",
            hint="start the cluster (ray start --head) or unset GROUNDWORK_RAY_ADDRESS to use a local Ray",
        ) from None


def connect(config: Config) -> Any:
    """The ``ray`` module, initialized as the module docstring says."""
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(
            "the ray executor needs Ray, which is not installed", hint="pip install 'groundwork[ray]'"
        ) from None
    address = config.ray_address
    if address:
        _check_reachable(address)  # an unreachable cluster is an error even if a local Ray runs here
    if ray.is_initialized():
        if address and address != "auto":
            current = str(ray.get_runtime_context().gcs_address or "")
            wanted = address.split("://", 1)[-1]
            if current and not address.startswith("ray://") and current != wanted:
                raise ExecutorUnavailable(
                    f"this process is already connected to Ray at {current}, not {address}",
                    hint="run the pipeline in a fresh process, or unset GROUNDWORK_RAY_ADDRESS",
                )
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True, "log_to_driver": True}
    if address:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, TimeoutError...
        where = f"at {address}" if address else "locally"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExecutorUnavailable(
            f"cannot start or reach Ray {where}: {first}",
            hint="check GROUNDWORK_RAY_ADDRESS, or run on the local executor (--executor local)",
        ) from None
    return ray


class RayExecutor:
    """Steps as Ray tasks; Ray queues them against the cluster's resources."""

    slots: int | None = None
    capture_environment = True

    def __init__(self, config: Config, max_workers: int | None = None) -> None:
        global _remote
        self.config = config
        self.ray = connect(config)
        if _remote is None:
            _remote = self.ray.remote(_run_task)
        self._remote = _remote
        try:
            self._cluster = dict(self.ray.cluster_resources())
        except Exception:
            self._cluster = {}

    def options(self, resources: Mapping[str, Any]) -> dict[str, Any]:
        """Ray task options for a step's ``resources`` (one CPU unless it says otherwise)."""
        opts: dict[str, Any] = {"num_cpus": float(resources.get("cpus", 1)), "max_retries": 0}
        if resources.get("gpus"):
            opts["num_gpus"] = float(resources["gpus"])
        if resources.get("memory"):
            opts["memory"] = int(resources["memory"])
        return opts

    def check_feasible(self, step: str, resources: Mapping[str, Any]) -> None:
        """Refuse a step the cluster can never place (Ray would wait for it forever)."""
        wanted = {"CPU": float(resources.get("cpus", 1)), "GPU": float(resources.get("gpus", 0) or 0)}
        if resources.get("memory"):
            wanted["memory"] = float(resources["memory"])
        for key, amount in wanted.items():
            have = float(self._cluster.get(key, 0.0))
            if amount > 0 and self._cluster and amount > have + 1e-9:
                shown = f"{have / 1e9:.1f} GB" if key == "memory" else f"{math.floor(have)}"
                raise ExecutorUnavailable(
                    f"step {step!r} needs {key}={amount:g} but the Ray cluster has {shown}",
                    hint="lower the step's resources or add nodes to the cluster",
                )

    def submit(self, task: StepTask, resources: Mapping[str, Any]) -> Future[StepOutcome]:
        self.check_feasible(task.node, resources)
        ref = self._remote.options(**self.options(resources)).remote(task)
        future: Future[StepOutcome] = ref.future()
        return future

    def shutdown(self) -> None:
        pass  # a local Ray stays up for the next run of this process; ray's own atexit stops it
