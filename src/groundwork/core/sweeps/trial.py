"""One trial, where it runs: the objective inside the trial's run, pruning from ``run.log``.

The sweep driver creates the trial's run and owns its status; the process that runs the
objective (a worker, a Ray task, or the driver itself) logs into that run, so ``gw.log``
inside the objective lands there. Logging the sweep's metric with a step is reporting an
intermediate value: the pruner is asked at once, and a trial it stops ends ``pruned``
with the reason. The objective's value, its intermediate values and what the pruner
noted travel back to the driver in a :class:`TrialOutcome`.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from groundwork.config import Config
from groundwork.core.tracking import ActiveRun, attach_run
from groundwork.errors import GroundworkError
from groundwork.storage.stores import open_stores

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass(frozen=True)
class TrialTask:
    """Everything a worker needs to run one trial (picklable)."""

    config: Config
    sweep_id: str
    run_id: str
    number: int
    params: dict[str, Any]
    distributions: dict[str, str]  # name -> Optuna's distribution JSON
    metric: str
    objective: bytes  # cloudpickle of the objective
    pruner: bytes | None = None  # cloudpickle of the Optuna pruner, or None
    run_name: str = "trial"


@dataclass
class TrialOutcome:
    state: str
    value: float | None = None
    error: str | None = None
    intermediate: dict[int, float] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)


class Pruned(Exception):
    """Raised out of ``run.log`` when the pruner stops the trial (an ``optuna.TrialPruned``, too)."""


@functools.cache
def _pruned_class() -> type[Exception]:
    import optuna

    class TrialPruned(Pruned, optuna.TrialPruned):
        pass

    return TrialPruned


class TrialContext:
    """The running trial as its objective sees it: the run, the metric, the pruning check."""

    def __init__(
        self,
        run: ActiveRun,
        metric: str,
        should_prune: Callable[[int, float], bool] | None,
        params: Mapping[str, Any],
    ) -> None:
        self.run = run
        self.metric = metric
        self.params = dict(params)
        self._should_prune = should_prune
        self.intermediate: dict[int, float] = {}
        self.reason: str | None = None
        #: Called instead of raising when the trial is pruned (a command trial stops its child).
        self.on_prune: Callable[[str], None] | None = None
        self._original_log = run.log
        run.log = self._log  # type: ignore[method-assign]

    def detach(self) -> None:
        try:
            del self.run.log
        except AttributeError:
            pass

    def _log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._original_log(metrics, step=step)
        if self.metric not in metrics or self.reason is not None:
            return
        value = float(metrics[self.metric])
        at = int(step) if step is not None else self.run._auto_step.get(self.metric, 1) - 1
        self.intermediate[at] = value
        if self._should_prune is None or not math.isfinite(value):
            return
        if self._should_prune(at, value):
            self.reason = f"pruned at step {at} ({self.metric}={value:.6g})"
            if self.on_prune is not None:
                self.on_prune(self.reason)
            else:
                raise _pruned_class()(self.reason)

    def report(self, value: float, step: int) -> None:
        """Optuna's ``trial.report``: log the sweep's metric at ``step`` (and maybe be pruned)."""
        self.run.log({self.metric: value}, step=step)


_current: list[TrialContext] = []
_current_lock = threading.Lock()


def current_trial() -> TrialContext | None:
    """The trial this process is running (None outside a trial)."""
    with _current_lock:
        return _current[-1] if _current else None


def run_objective(
    objective: Callable[[dict[str, Any]], Any], context: TrialContext
) -> TrialOutcome:
    """Call ``objective(params)`` inside the trial's run; never raises for the objective's faults."""
    with _current_lock:
        _current.append(context)
    try:
        result = objective(dict(context.params))
    except Pruned:
        return TrialOutcome(PRUNED, error=context.reason, intermediate=dict(context.intermediate))
    except GroundworkError as exc:
        return TrialOutcome(FAILED, error=exc.one_line(), intermediate=dict(context.intermediate))
    except Exception as exc:
        if context.reason is not None:  # a command trial stopped by the pruner
            return TrialOutcome(PRUNED, error=context.reason, intermediate=dict(context.intermediate))
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        return TrialOutcome(FAILED, error=f"{type(exc).__name__}: {exc}\n{detail}", intermediate=dict(context.intermediate))
    finally:
        with _current_lock:
            _current.remove(context)
        context.detach()
    if context.reason is not None:
        return TrialOutcome(PRUNED, error=context.reason, intermediate=dict(context.intermediate))
    return TrialOutcome(COMPLETE, value=_value(result, context), intermediate=dict(context.intermediate))


def _value(result: Any, context: TrialContext) -> float | None:
    """The objective's number: what it returned, else the last value of the metric it logged."""
    if result is None:
        if context.intermediate:
            return context.intermediate[max(context.intermediate)]
        return None
    try:
        value = float(result)
    except (TypeError, ValueError):
        raise_value = f"the objective returned {type(result).__name__} {result!r:.40}, not a number"
        raise GroundworkError(raise_value) from None
    return value


# -- in a worker process ----------------------------------------------------------------------------
_objectives: dict[str, Any] = {}
_pruning: dict[tuple[str, str], Any] = {}  # (store, sweep) -> (storage, study)


def _load(blob: bytes) -> Any:
    key = hashlib.sha256(blob).hexdigest()
    found = _objectives.get(key)
    if found is None:
        import cloudpickle

        found = _objectives[key] = cloudpickle.loads(blob)
    return found


def execute_trial(task: TrialTask) -> TrialOutcome:
    """Run one trial in this (worker) process: attach to its run, call the objective."""
    try:
        objective = _load(task.objective)
    except Exception as exc:
        return TrialOutcome(FAILED, error=f"could not load the objective in the worker: {type(exc).__name__}: {exc}")
    # The driver wrote the trial's run before handing it out: attach without looking it up.
    run = attach_run(task.run_id, task.config, open_stores(task.config).metadata, name=task.run_name)
    pruning = _WorkerPruning(task, run) if task.pruner is not None else None
    context = TrialContext(run, task.metric, pruning, task.params)
    try:
        try:
            outcome = run_objective(objective, context)
        except GroundworkError as exc:
            outcome = TrialOutcome(FAILED, error=exc.one_line(), intermediate=dict(context.intermediate))
    finally:
        run.end()  # flushes what the objective logged; the driver owns the status
        if pruning is not None:
            pruning.release()
    outcome.system_attrs = pruning.noted if pruning is not None else {}
    return outcome


class _WorkerPruning:
    """A pruning check backed by this worker's own view of the study (built on first use)."""

    def __init__(self, task: TrialTask, run: ActiveRun) -> None:
        self.task, self.run = task, run
        self.noted: dict[str, Any] = {}
        self.state: dict[str, Any] = {}

    def release(self) -> None:
        """The trial is over here: later looks read its ending from the store."""
        if self.state:
            self.state["storage"].release_trial(self.state["trial_id"])

    def __call__(self, step: int, value: float) -> bool:
        task, run, state, noted = self.task, self.run, self.state, self.noted
        if not state:
            import cloudpickle
            import optuna
            from optuna import distributions

            from groundwork.core.runs import get_run
            from groundwork.core.sweeps.storage import GroundworkStorage

            key = (task.config.store_url, task.sweep_id)
            cached = _pruning.get(key)
            if cached is None:
                storage = GroundworkStorage(task.config)
                study_id = storage.load(get_run(task.sweep_id, config=task.config))
                cached = _pruning[key] = (storage, study_id)
            storage, study_id = cached
            pruner = cloudpickle.loads(task.pruner) if task.pruner else None
            study = optuna.load_study(study_name=task.sweep_id, storage=storage, pruner=pruner)
            dists = {k: distributions.json_to_distribution(v) for k, v in task.distributions.items()}
            state["trial_id"] = storage.bind_trial(study_id, run, task.number, task.params, dists)
            state["storage"], state["study"] = storage, study
        storage, study, trial_id = state["storage"], state["study"], state["trial_id"]
        storage.record_intermediate(trial_id, step, value)
        before = dict(storage.get_trial(trial_id).system_attrs)
        verdict = bool(study.pruner.prune(study, storage.get_trial(trial_id)))
        after = storage.get_trial(trial_id).system_attrs
        noted.update({k: v for k, v in after.items() if before.get(k) != v})
        return verdict


__all__ = ["TrialContext", "TrialOutcome", "TrialTask", "current_trial", "execute_trial", "run_objective"]
