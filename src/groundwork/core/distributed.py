"""Data-parallel training: ``gw.distributed(train_fn, workers=N, backend="gloo")``, one recorded run.

``train_fn(ctx)`` runs in ``workers`` processes with a PyTorch process group set up
(``backend`` ``"gloo"`` on CPUs, ``"nccl"`` on GPUs). ``ctx`` (:class:`DistributedContext`)
has the rank and world size, and records into the one run the call made:

* ``ctx.log(metrics, step=)`` averages each metric over the ranks and rank 0 logs it;
* ``ctx.checkpoint(state)`` stores rank 0's state as a content-addressed checkpoint of the
  run (:mod:`groundwork.core.checkpoints`); ``ctx.last_checkpoint()`` gives every rank the
  newest one, or None: start from it and a restarted training goes on where it was;
* ``ctx.shard(tensor)`` is this rank's contiguous share of a global batch;
* ``ctx.params`` the ``params=`` of the call; ``ctx.run`` the run itself on rank 0
  (``ctx.run.log_model(...)``), None on the other ranks.

Where the workers run: on Ray Train's ``TorchTrainer`` when Ray is configured
(``GROUNDWORK_RAY_ADDRESS`` / ``Config.ray_address``, or a Ray already initialized in this
process), else on this machine under torch's own launcher (``torch.multiprocessing``,
joined through a file store: nothing listens beyond loopback). Either way, when a worker
dies the whole group is restarted, at most ``max_restarts`` times (Ray Train's
``FailureConfig(max_failures=)``, or here), and every start is counted on the run: the tag
``gw.distributed.restarts`` and the metric ``restarts``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from groundwork.config import Config
from groundwork.errors import ExecutionError, InvalidInput

BACKENDS = ("gloo", "nccl")
LAUNCHERS = ("torch", "ray")
TAG = "gw.distributed."
#: How long a collective (all-reduce, barrier) waits for a peer before the worker gives up.
COLLECTIVE_TIMEOUT_S = 120


class DistributedFailed(ExecutionError):
    headline = "Distributed training failed"


@dataclass(frozen=True)
class DistributedResult:
    """The run's id, how it ended, how many times the workers were restarted, rank 0's return value."""

    run_id: str
    status: str
    restarts: int
    value: Any = None


class DistributedContext:
    """What ``train_fn`` gets in every worker (see the module docstring)."""

    def __init__(self, rank: int, world_size: int, local_rank: int, run_id: str, config: Config,
                 params: Mapping[str, Any] | None = None) -> None:
        self.rank = rank
        #: The ``params=`` of the call, as given (typed).
        self.params = dict(params or {})
        self.world_size = world_size
        self.local_rank = local_rank
        self.run_id = run_id
        self.config = config
        self._run: Any = None
        self.restarts = 0
        if rank == 0:
            from groundwork.core.tracking import attach_run
            from groundwork.storage.stores import open_stores

            self._run = attach_run(run_id, config, open_stores(config).metadata)
            starts = int(self._run._store.get_run(run_id).tags.get(TAG + "starts", "0")) + 1
            self.restarts = starts - 1
            self._run.set_tags({TAG + "starts": str(starts), TAG + "restarts": str(starts - 1)})
            self._run.log({"restarts": float(starts - 1)}, step=starts - 1)
            self._run.flush()

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def run(self) -> Any:
        """The run (an :class:`~groundwork.core.tracking.ActiveRun`) on rank 0, None on the others."""
        return self._run

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Average each metric over the ranks (every rank calls this with the same keys); rank 0 logs."""
        import torch
        import torch.distributed as dist

        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        if self.world_size > 1:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
            values /= self.world_size
        if self._run is not None:
            self._run.log(dict(zip(keys, values.tolist(), strict=True)), step=step)

    def checkpoint(self, state: Any) -> None:
        """Rank 0 stores ``state``; every rank waits until it is stored."""
        import torch.distributed as dist

        if self._run is not None:
            self._run.checkpoint(state)
        if self.world_size > 1:
            dist.barrier()

    def last_checkpoint(self) -> Any | None:
        """The newest checkpoint's state of this run (every rank reads it), or None."""
        from groundwork.core.checkpoints import load_from

        return load_from(self.run_id, self.config)

    def shard(self, batch: Any) -> Any:
        """This rank's contiguous share of ``batch`` (split along its first dimension)."""
        import torch

        return torch.tensor_split(batch, self.world_size)[self.rank]

    def close(self) -> None:
        if self._run is not None:
            self._run.end()


def _run_worker(blob: bytes, run_id: str, environ: dict[str, str], rank: int, world_size: int, local_rank: int) -> Any:
    """Inside one worker whose process group is initialized: call ``train_fn(ctx)``."""
    import cloudpickle

    config = Config.from_env(environ)
    train_fn, params = cloudpickle.loads(blob)
    context = DistributedContext(rank, world_size, local_rank, run_id, config, params)
    try:
        return train_fn(context)
    finally:
        context.close()


def _torch_entry(rank: int, blob: bytes, run_id: str, environ: dict[str, str], backend: str, store: str,
                 world: int, result: str) -> None:
    """One spawned worker: join the group through a file store, run, and (rank 0) leave the result."""
    import datetime
    import pickle

    import torch.distributed as dist

    # A peer that died mid-collective must fail this worker soon (the group is then restarted).
    dist.init_process_group(backend=backend, init_method=f"file://{store}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=COLLECTIVE_TIMEOUT_S))
    try:
        value = _run_worker(blob, run_id, environ, rank, world, rank)
    finally:
        dist.destroy_process_group()
    if rank == 0:
        with open(result, "wb") as out:
            pickle.dump(value, out)


def _ray_entry(settings: dict[str, Any]) -> None:
    """Ray Train's per-worker loop (its TorchTrainer has set up the process group)."""
    import ray.train

    context = ray.train.get_context()
    _run_worker(settings["blob"], settings["run_id"], settings["environ"], context.get_world_rank(),
                context.get_world_size(), context.get_local_rank())


def _launch_torch(blob: bytes, run_id: str, config: Config, workers: int, backend: str, max_restarts: int) -> Any:
    """``workers`` processes by ``torch.multiprocessing`` (spawn), joined through a file store.

    Nothing listens beyond loopback: a file store rather than torch's TCP store (which binds
    every interface whatever host it is given), and gloo on ``lo``. When a worker dies,
    the others are stopped and the whole group starts again, at most ``max_restarts`` times.
    """
    import pickle

    from torch.multiprocessing.spawn import ProcessException, start_processes

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo talks over loopback only
    failures = 0
    while True:
        with tempfile.TemporaryDirectory(prefix="gw-distributed-") as folder:
            store, result = os.path.join(folder, "store"), os.path.join(folder, "result.pkl")
            try:
                start_processes(  # type: ignore[no-untyped-call]
                    _torch_entry, args=(blob, run_id, config.child_environ(), backend, store, workers, result),
                    nprocs=workers, join=True, start_method="spawn",
                )
            except ProcessException as exc:
                failures += 1
                if failures > max_restarts:
                    detail = str(exc).strip().splitlines()
                    last = next((line for line in reversed(detail) if line.strip()), type(exc).__name__)
                    raise DistributedFailed(
                        f"a worker failed and {max_restarts} restart{'s' if max_restarts != 1 else ''} did not help: "
                        f"{last.strip()}"
                    ) from None
                continue
            if os.path.exists(result):
                with open(result, "rb") as handle:
                    return pickle.load(handle)
            return None


def _launch_ray(blob: bytes, run_id: str, config: Config, workers: int, backend: str, max_restarts: int) -> Any:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from groundwork.core.pipelines.executors.ray import connect

    connect(config)
    with tempfile.TemporaryDirectory(prefix="gw-ray-train-") as storage:
        trainer = TorchTrainer(
            _ray_entry,
            train_loop_config={"blob": blob, "run_id": run_id, "environ": config.child_environ()},
            torch_config=TorchConfig(backend=backend),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=backend == "nccl"),
            run_config=RunConfig(name=f"gw-{run_id[:12]}", storage_path=storage,
                                 failure_config=FailureConfig(max_failures=max_restarts)),
        )
        try:
            result = trainer.fit()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedFailed(f"Ray Train gave up after {max_restarts} restarts: {first}") from None
        if getattr(result, "error", None) is not None:
            raise DistributedFailed(f"Ray Train gave up after {max_restarts} restarts: {result.error}")
    return None


def _use_ray(config: Config) -> bool:
    if config.ray_address:
        return True
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def distributed(
    train_fn: Callable[[DistributedContext], Any],
    *,
    workers: int = 2,
    backend: str = "gloo",
    name: str | None = None,
    params: Mapping[str, Any] | None = None,
    max_restarts: int = 3,
    launcher: str | None = None,
    config: Config | None = None,
) -> DistributedResult:
    """Run ``train_fn(ctx)`` in ``workers`` data-parallel processes as one run (see the module docstring)."""
    if not callable(train_fn):
        raise InvalidInput(f"train_fn must be callable, not {type(train_fn).__name__}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInput(f"workers must be a whole number of at least 1, not {workers!r}")
    if backend not in BACKENDS:
        raise InvalidInput(f"unknown backend {backend!r}", hint="gloo (CPUs) or nccl (GPUs)")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < 0:
        raise InvalidInput(f"max_restarts must be 0 or more, not {max_restarts!r}")
    if launcher is not None and launcher not in LAUNCHERS:
        raise InvalidInput(f"unknown launcher {launcher!r}", hint="torch or ray (default: ray when Ray is configured)")
    config = config or Config.from_env()
    use = launcher or ("ray" if _use_ray(config) else "torch")

    import cloudpickle

    from groundwork.core.sweeps.sweep import _by_value
    from groundwork.core.tracking import start_run

    _by_value(train_fn)
    try:
        blob = cloudpickle.dumps((train_fn, dict(params or {})))
    except Exception as exc:
        raise InvalidInput(f"train_fn cannot be sent to the workers: {type(exc).__name__}: {exc}") from None
    run = start_run(
        name=name, params=params, config=config,
        tags={TAG + "workers": str(workers), TAG + "backend": backend, TAG + "launcher": use},
    )
    run.flush()
    started = time.time()
    status, error = "finished", None
    try:
        launch = _launch_ray if use == "ray" else _launch_torch
        value = launch(blob, run.id, config, workers, backend, max_restarts)
    except BaseException as exc:
        status = "failed"
        error = exc.one_line() if isinstance(exc, DistributedFailed) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.set_tags({TAG + "seconds": f"{time.time() - started:.1f}"})
        run.end(status, error=error)
    from groundwork.core.runs import get_run

    recorded = get_run(run.id, config=config)
    return DistributedResult(run.id, recorded.status, int(recorded.tags.get(TAG + "restarts", "0")), value)


__all__ = ["DistributedContext", "DistributedFailed", "DistributedResult", "distributed"]
