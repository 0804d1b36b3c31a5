"""``gw.sweep``: a hyperparameter search whose every trial is a recorded run.

>>> result = gw.sweep(objective, {"lr": gw.loguniform(1e-4, 1e-1)}, trials=50, parallel=2,
...                   direction="max", pruner="asha")
>>> result.best_params, result.best_value

The sweep is a run (kind ``sweep``); each trial a child run (kind ``trial``). Optuna
samples and prunes, over :class:`~groundwork.core.sweeps.storage.GroundworkStorage`, so
the study lives in groundwork's store and nothing else. This process is the only one that
creates trials (Optuna's ask-and-tell): workers run objectives and report back.

Resuming (:func:`resume`, ``groundwork sweep resume SWEEP``) reopens the sweep run and
reads every trial from the store: finished, pruned and failed trials count toward
``trials`` and feed the sampler; a trial cut short (``crashed``: its process died, or
Ctrl-C) is run again with the same params, once, tagged ``gw.retry_of``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from typing import Any

from groundwork.config import Config
from groundwork.core.runs import Run, get_run
from groundwork.core.sweeps.space import Dimension, check_space, space_from_json, space_to_json
from groundwork.errors import ExecutionError, GroundworkError, InvalidInput

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("asha", "median")
DIRECTIONS = {"min": "minimize", "minimize": "minimize", "max": "maximize", "maximize": "maximize"}
#: When this many trials in a row fail and none has succeeded, the sweep stops with the first error.
FAIL_FAST = 3
#: ``groundwork sweep resume`` re-runs a Python sweep's script with this set to the sweep's id.
RESUME_ENV = "GROUNDWORK_SWEEP_RESUME"
TAG_PREFIX = "gw.sweep."


class SweepFailed(ExecutionError):
    headline = "Sweep failed"


@dataclass(frozen=True)
class SweepSettings:
    """What a sweep searches and how; kept on the sweep run so a resume does the same."""

    space: dict[str, Dimension]
    trials: int
    sampler: str = "tpe"
    pruner: str | None = None
    parallel: int = 1
    executor: str = "local"
    direction: str = "minimize"
    metric: str = "value"
    seed: int | None = None

    def tags(self) -> dict[str, str]:
        return {
            TAG_PREFIX + "space": space_to_json(self.space),
            TAG_PREFIX + "trials": str(self.trials),
            TAG_PREFIX + "sampler": self.sampler,
            TAG_PREFIX + "pruner": self.pruner or "none",
            TAG_PREFIX + "parallel": str(self.parallel),
            TAG_PREFIX + "executor": self.executor,
            TAG_PREFIX + "directions": json.dumps([self.direction]),
            TAG_PREFIX + "metric": self.metric,
            TAG_PREFIX + "seed": "" if self.seed is None else str(self.seed),
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> SweepSettings:
        def tag(key: str, default: str = "") -> str:
            return tags.get(TAG_PREFIX + key, default)

        return cls(
            space=space_from_json(tag("space", "{}")),
            trials=int(tag("trials", "0")),
            sampler=tag("sampler", "tpe"),
            pruner=None if tag("pruner", "none") == "none" else tag("pruner"),
            parallel=int(tag("parallel", "1")),
            executor=tag("executor", "local"),
            direction=json.loads(tag("directions", '["minimize"]'))[0],
            metric=tag("metric", "value"),
            seed=int(tag("seed")) if tag("seed") else None,
        )


class SweepResult:
    """A finished (or stopped) sweep: ``.id``, ``.best_params``, ``.best_value``, ``.trials``."""

    def __init__(self, sweep_id: str, config: Config, best_params: dict[str, Any] | None,
                 best_value: float | None, best_trial: str | None) -> None:
        self.id = sweep_id
        self.config = config
        self.best_params = best_params
        self.best_value = best_value
        self.best_trial = best_trial  # the run id of the best trial

    def __repr__(self) -> str:
        return f"<SweepResult {self.id[:12]} best={self.best_value!r} {self.best_params!r}>"

    @property
    def run(self) -> Run:
        return get_run(self.id, config=self.config)

    @property
    def trials(self) -> list[Run]:
        """Every trial's run, oldest first."""
        return [r for r in self.run.children() if r.kind == "trial"]


def check_settings(
    space: Mapping[str, Any], trials: int, sampler: Any, pruner: Any, parallel: int, executor: str, direction: str,
    metric: str,
) -> tuple[dict[str, Dimension], str]:
    """The checked space and Optuna's direction name; one clear line for anything wrong."""
    checked = check_space(space)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InvalidInput(f"trials must be a whole number of at least 1, not {trials!r}")
    if isinstance(sampler, str) and sampler not in SAMPLERS:
        raise InvalidInput(f"unknown sampler {sampler!r}", hint=f"choose one of: {', '.join(SAMPLERS)}")
    if isinstance(pruner, str) and pruner not in PRUNERS:
        raise InvalidInput(f"unknown pruner {pruner!r}", hint=f"choose one of: {', '.join(PRUNERS)}, or None")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise InvalidInput(f"parallel must be a whole number of at least 1, not {parallel!r}")
    if executor not in ("local", "ray"):
        raise InvalidInput(f"unknown executor {executor!r}", hint="choose local or ray")
    if direction not in DIRECTIONS:
        raise InvalidInput(f"direction must be min or max, not {direction!r}")
    if not metric or not isinstance(metric, str):
        raise InvalidInput("the metric needs a name")
    if sampler == "grid":
        for name, dim in checked.items():
            if _grid_values(dim) is None:
                raise InvalidInput(
                    f"the grid sampler needs choice or integer ranges; {name!r} is {dim.describe()}",
                    hint="use choice([...]) for it, or another sampler",
                )
    return checked, DIRECTIONS[direction]


def _grid_values(dim: Dimension) -> list[Any] | None:
    from groundwork.core.sweeps.space import Choice, Integer

    if isinstance(dim, Choice):
        return list(dim.values)
    if isinstance(dim, Integer):
        return list(range(dim.low, dim.high + 1, dim.step))
    return None


def make_sampler(name: Any, space: Mapping[str, Dimension], seed: int | None) -> Any:
    import optuna

    if not isinstance(name, str):
        return name  # an Optuna sampler given as is
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        grid = {k: _grid_values(d) for k, d in space.items()}
        return optuna.samplers.GridSampler(grid, seed=seed)  # type: ignore[arg-type]
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise InvalidInput("the cmaes sampler needs the cmaes package", hint="pip install 'groundwork[sweeps]'") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: Any) -> Any:
    import optuna

    if name is None or name == "none":
        return optuna.pruners.NopPruner()
    if not isinstance(name, str):
        return name
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    raise InvalidInput(f"pruner {name!r} cannot be rebuilt by name", hint="pass the Optuna pruner to gw.sweep again")


def sweep(
    objective: Callable[[dict[str, Any]], Any],
    space: Mapping[str, Any],
    *,
    trials: int,
    sampler: Any = "tpe",
    pruner: Any = None,
    parallel: int = 1,
    executor: str = "local",
    direction: str = "min",
    metric: str = "value",
    name: str | None = None,
    seed: int | None = None,
    resume: str | None = None,
    config: Config | None = None,
) -> SweepResult:
    """Search ``space`` for the params that make ``objective(params)`` smallest (or largest).

    ``objective`` runs inside its trial's run, so ``gw.log`` works; logging ``metric``
    with ``step=`` reports intermediate values to the pruner (``"asha"``, ``"median"``).
    It returns the value, or None to mean the last value it logged of ``metric``.
    ``sampler`` is ``"tpe"``, ``"random"``, ``"grid"``, ``"cmaes"`` or an Optuna sampler;
    ``pruner`` is ``"asha"``, ``"median"``, None or an Optuna pruner. ``parallel`` trials
    run at once, in worker processes (``executor="local"``) or Ray tasks (``"ray"``);
    then the objective must be picklable by value (cloudpickle), as a pipeline step is.
    ``resume=SWEEP`` (or ``GROUNDWORK_SWEEP_RESUME``) continues that sweep.
    """
    if not callable(objective):
        raise InvalidInput(f"the objective must be callable, not {type(objective).__name__}")
    config = config or Config.from_env()
    resume = resume or os.environ.get(RESUME_ENV) or None
    checked, optuna_direction = check_settings(space, trials, sampler, pruner, parallel, executor, direction, metric)
    settings = SweepSettings(checked, trials, sampler if isinstance(sampler, str) else "custom",
                             pruner if isinstance(pruner, str) or pruner is None else "custom",
                             parallel, executor, optuna_direction, metric, seed)
    driver = _Driver(config, settings, objective=objective, sampler=sampler, pruner=pruner)
    return driver.run(name=name, resume=resume)


def resume(sweep_ref: str, objective: Callable[[dict[str, Any]], Any] | None = None, *,
           config: Config | None = None) -> SweepResult:
    """Continue the sweep ``sweep_ref`` with its recorded settings (a command sweep needs no objective)."""
    config = config or Config.from_env()
    run = get_run(sweep_ref, config=config)
    if run.kind != "sweep":
        raise InvalidInput(f"run {sweep_ref!r} is a {run.kind}, not a sweep", hint="list sweeps: groundwork runs --kind sweep")
    settings = SweepSettings.from_tags(run.tags)
    if objective is None:
        from groundwork.core.sweeps.command import objective_from_tags

        objective = objective_from_tags(run.tags)
    driver = _Driver(config, settings, objective=objective, sampler=settings.sampler, pruner=settings.pruner)
    return driver.run(resume=run.id)


class _Driver:
    """The sweep's process: asks Optuna for trials, hands them out, tells Optuna the results."""

    def __init__(self, config: Config, settings: SweepSettings, *, objective: Callable[..., Any],
                 sampler: Any, pruner: Any, extra_tags: Mapping[str, str] | None = None,
                 trial_command: Sequence[str] | None = None) -> None:
        self.config = config
        self.settings = settings
        self.objective = objective
        self.sampler_spec = sampler
        self.pruner_spec = pruner
        self.extra_tags = dict(extra_tags or {})
        self.trial_command = list(trial_command) if trial_command else None
        self.failures: list[str] = []

    # -- the sweep run ------------------------------------------------------------------------------
    def _open(self, name: str | None, resume: str | None) -> tuple[Any, int]:
        from groundwork.core.tracking import ActiveRun, start_run
        from groundwork.storage.stores import open_stores

        if resume:
            run = get_run(resume, config=self.config)
            if run.kind != "sweep":
                raise InvalidInput(f"run {resume!r} is a {run.kind}, not a sweep")
            if run.status == "running":
                raise InvalidInput(
                    f"sweep {run.id[:12]} is still running (pid {run._row.pid} on {run.host})",
                    hint="stop it first, or wait for it to end",
                )
            store = open_stores(self.config).metadata
            resumes = int(run.tags.get(TAG_PREFIX + "resumes", "0")) + 1
            # Reopen the sweep's run: this process now keeps its heartbeat and records its end.
            store.update_run(run.id, status="running", ended_at=None, error=None, exit_code=None,
                             pid=os.getpid(), heartbeat_at=time.time())
            handle = ActiveRun(run.id, run.name, self.config, store, owned=True)
            handle.set_tags({TAG_PREFIX + "resumes": str(resumes)})
            return handle, resumes
        tags = {**self.settings.tags(), **self.extra_tags}
        handle = start_run(name=name or _default_name(self.objective), kind="sweep", tags=tags, config=self.config)
        handle.flush()
        return handle, 0

    def run(self, name: str | None = None, resume: str | None = None) -> SweepResult:
        import optuna
        from optuna.trial import TrialState

        from groundwork.core.sweeps.storage import GroundworkStorage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sweep_run, resumes = self._open(name, resume)
        storage = GroundworkStorage(self.config)
        direction = optuna.study.StudyDirection[self.settings.direction.upper()]
        study_id = storage.adopt(sweep_run, [direction], self.settings.metric, trial_command=self.trial_command)
        if resume:
            storage.load(get_run(sweep_run.id, config=self.config))
        storage.own_study(study_id)
        seed = self.settings.seed
        done_before = storage.get_all_trials(study_id, deepcopy=False)
        if seed is not None and done_before:
            seed += len(done_before)  # a resumed seeded sampler must not replay its first draws
        study = optuna.load_study(
            study_name=sweep_run.id, storage=storage,
            sampler=make_sampler(self.sampler_spec, self.settings.space, seed), pruner=make_pruner(self.pruner_spec),
        )
        self.storage, self.study, self.study_id, self.sweep_run = storage, study, study_id, sweep_run
        self.dists = {k: d.to_optuna() for k, d in self.settings.space.items()}
        self._enqueue_retries()
        counted = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and not self._crashed(t)]
        remaining = self.settings.trials - len(counted)
        self.best: float | None = None
        self.logged_best: float | None = None
        for t in counted:
            if t.state == TrialState.COMPLETE:
                self._note_best(t.value)
        self.done = len(counted)
        status, error = "finished", None
        try:
            if remaining > 0:
                self._loop(remaining)
            result = self.result()
            if result.best_trial:
                sweep_run.set_tags({TAG_PREFIX + "best_trial": result.best_trial})
        except KeyboardInterrupt:
            status, error = "crashed", "interrupted (Ctrl-C)"
            raise
        except BaseException as exc:
            status, error = "failed", exc.one_line() if isinstance(exc, GroundworkError) else repr(exc)
            raise
        finally:
            sweep_run.end(status, error=error)
        return result

    def _crashed(self, trial: Any) -> bool:
        run_id = self.storage.trial_run_id(trial._trial_id)
        return bool(run_id and run_id in self.crashed_runs)

    def _enqueue_retries(self) -> None:
        """Trials cut short run again, once each, with the same params."""
        sweep = get_run(self.sweep_run.id, config=self.config)
        children = [r for r in sweep.children() if r.kind == "trial"]
        self.crashed_runs = {r.id for r in children if r.status == "crashed"}
        retried = {r.tags.get("optuna.user.gw.retry_of", "").strip('"') for r in children}
        for run in children:
            if run.status != "crashed" or run.id in retried:
                continue
            trial_id = self.storage.trial_id_of_run(run.id)
            if trial_id is None:
                continue
            params = self.storage.get_trial(trial_id).params
            if set(params) != set(self.dists):
                continue
            self.study.enqueue_trial(params, user_attrs={"gw.retry_of": run.id})

    def _note_best(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        better = self.best is None or (value > self.best if self.settings.direction == "maximize" else value < self.best)
        if better:
            self.best = value

    # -- the loop -----------------------------------------------------------------------------------
    def _loop(self, remaining: int) -> None:
        from optuna.trial import TrialState

        inline = self.settings.parallel == 1 and self.settings.executor == "local"
        executor = None if inline else self._executor()
        # Out of process, a trial's end and the next trial's creation share one transaction.
        self.storage.batch_writes = executor is not None
        pending: dict[Future[Any], Any] = {}
        started = 0
        self.remaining = remaining
        try:
            while True:
                while started < self.remaining and len(pending) < self.settings.parallel:
                    trial = self.study.ask(self.dists)
                    self.storage.persist(trial._trial_id)
                    started += 1
                    if executor is None:
                        self._finish(trial, self._inline(trial))
                        break
                    task = self._task(trial)
                    self.storage.commit()  # the trial's run (and the last one's end) are written
                    pending[executor.submit(task)] = trial
                if not pending:
                    if started >= self.remaining:
                        break
                    continue
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    trial = pending.pop(future)
                    self._finish(trial, self._outcome(future))
        except BaseException:
            self.storage.commit()
            self.storage.batch_writes = False
            reason = "interrupted (the sweep stopped)"
            for future, trial in pending.items():
                future.cancel()
                if self.storage.get_trial(trial._trial_id).state == TrialState.RUNNING:
                    self.storage.end_trial(trial._trial_id, TrialState.FAIL, error=reason)
            raise
        finally:
            self.storage.commit()
            self.storage.batch_writes = False
            if executor is not None:
                executor.shutdown()

    def _executor(self) -> Any:
        import cloudpickle

        from groundwork.core.sweeps.executors import open_trial_executor

        _by_value(self.objective)
        try:
            self._objective_blob = cloudpickle.dumps(self.objective)
        except Exception as exc:
            raise InvalidInput(
                f"the objective cannot be sent to a worker process: {type(exc).__name__}: {exc}",
                hint="keep unpicklable objects (locks, connections) out of its globals, or use parallel=1",
            ) from None
        self._pruner_blob = cloudpickle.dumps(self.study.pruner) if self.pruner_spec not in (None, "none") else None
        return open_trial_executor(self.settings.executor, self.config, self.settings.parallel)

    def _task(self, trial: Any) -> Any:
        from optuna.distributions import distribution_to_json

        from groundwork.core.sweeps.trial import TrialTask

        frozen = self.storage.get_trial(trial._trial_id)
        return TrialTask(
            config=self.config, sweep_id=self.sweep_run.id, run_id=self.storage.persist(trial._trial_id),
            number=frozen.number, params=dict(frozen.params),
            distributions={k: distribution_to_json(d) for k, d in frozen.distributions.items()},
            metric=self.settings.metric, objective=self._objective_blob, pruner=self._pruner_blob,
            run_name=f"{self.sweep_run.name}-trial-{frozen.number}",
        )

    def _outcome(self, future: Future[Any]) -> Any:
        from groundwork.core.sweeps.trial import FAILED, TrialOutcome

        try:
            outcome: TrialOutcome = future.result()
        except Exception as exc:  # the worker died (killed, out of memory) or Ray lost it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return TrialOutcome(FAILED, error=f"interrupted: its worker was lost ({first})")
        return outcome

    def _inline(self, trial: Any) -> Any:
        from groundwork.core.sweeps.trial import TrialContext, run_objective

        run = self.storage._trial_handle(self.storage._trial(trial._trial_id))
        storage, study, trial_id = self.storage, self.study, trial._trial_id
        prunes = self.pruner_spec not in (None, "none")

        def should_prune(step: int, value: float) -> bool:
            storage.record_intermediate(trial_id, step, value)
            return bool(study.pruner.prune(study, storage.get_trial(trial_id)))

        frozen = storage.get_trial(trial_id)
        context = TrialContext(run, self.settings.metric, should_prune if prunes else None, frozen.params)
        try:
            return run_objective(self.objective, context)
        except KeyboardInterrupt:
            storage.end_trial(trial_id, _state("FAIL"), error="interrupted (Ctrl-C)")
            raise

    def _finish(self, trial: Any, outcome: Any) -> None:
        from optuna.trial import TrialState

        from groundwork.core.sweeps.trial import COMPLETE, PRUNED

        trial_id = trial._trial_id
        for step, value in sorted(outcome.intermediate.items()):
            if step not in self.storage.get_trial(trial_id).intermediate_values:
                self.storage.record_intermediate(trial_id, step, value)
        if outcome.system_attrs:
            self.storage.record_system_attrs(trial_id, outcome.system_attrs)
        if outcome.state == COMPLETE and (outcome.value is None or math.isnan(outcome.value)):
            outcome.state = "failed"
            outcome.error = (
                f"metric {self.settings.metric!r} was never logged and the objective returned nothing"
                if outcome.value is None else "the objective returned NaN"
            )
        if outcome.error:
            self.storage.set_reason(trial_id, outcome.error)
        # Samplers may stop the study from after_trial (the grid, once every point is done),
        # which Optuna allows only inside its own optimize loop: tell it that we are one.
        local = self.study._thread_local
        local.in_optimize_loop = True
        try:
            if outcome.state == COMPLETE:
                self.study.tell(trial, outcome.value)
                self._note_best(outcome.value)
            elif outcome.state == PRUNED:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, state=TrialState.FAIL)
        finally:
            local.in_optimize_loop = False
        if getattr(self.study, "_stop_flag", False):
            self.remaining = 0  # no new trials; those running finish
        if outcome.state not in (COMPLETE, PRUNED) and not (outcome.error or "").startswith("interrupted"):
            self.failures.append(outcome.error or "failed")
        if (outcome.error or "").startswith("interrupted"):
            # Its worker died: the trial ends crashed and runs again, as a resumed sweep would.
            self.study.enqueue_trial(dict(trial.params), user_attrs={"gw.retry_of": self.storage.trial_run_id(trial_id)})
            self.remaining += 1
        else:
            self.done += 1
        if self.best is not None and self.best != self.logged_best:
            # The best so far, at the trial count it was reached (a point only when it improves:
            # a write per trial would double the sweep's own cost on cheap objectives).
            self.sweep_run.log({"best_" + self.settings.metric: self.best}, step=self.done)
            self.logged_best = self.best
        if self.best is None and len(self.failures) >= min(FAIL_FAST, self.settings.trials):
            run_id = self.storage.trial_run_id(trial_id) or ""
            first = self.failures[0].splitlines()[0]
            raise SweepFailed(
                f"{len(self.failures)} trials failed, none succeeded; the first: {first}",
                hint=f"see groundwork show {run_id[:12]}",
            )

    def result(self) -> SweepResult:
        from optuna.trial import TrialState

        complete = [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if not complete:
            return SweepResult(self.sweep_run.id, self.config, None, None, None)
        pick = max if self.settings.direction == "maximize" else min
        best = pick(complete, key=lambda t: float(t.value if t.value is not None else math.nan))
        run_id = self.storage.trial_run_id(best._trial_id)
        return SweepResult(self.sweep_run.id, self.config, dict(best.params), best.value, run_id)


def _by_value(objective: Any) -> None:
    """The objective's own module travels with it (a script, a test module), as pipeline steps do."""
    import cloudpickle

    name = getattr(objective, "__module__", None) or type(objective).__module__
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None) or ""
    if module is None or name.startswith("groundwork.") or "site-packages" in file or not file:
        return
    try:
        cloudpickle.register_pickle_by_value(module)
    except ValueError:
        pass


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def _default_name(objective: Any) -> str:
    label = getattr(objective, "__name__", None) or type(objective).__name__
    script = os.path.splitext(os.path.basename(sys.argv[0] if sys.argv else ""))[0].strip("-. ")
    return f"{script or label}-sweep-{time.strftime('%Y%m%d-%H%M%S')}"


__all__ = ["PRUNERS", "SAMPLERS", "SweepFailed", "SweepResult", "SweepSettings", "resume", "sweep"]


# -- reading a sweep back -------------------------------------------------------------------------------
def trial_rows(sweep: Run) -> list[dict[str, Any]]:
    """One dict per trial of ``sweep``, by trial number: run id, status, value, params, reason."""
    metric = sweep.tags.get(TAG_PREFIX + "metric", "value")
    rows = []
    for child in sweep.children():
        if child.kind != "trial":
            continue
        tags = child.tags
        values = json.loads(tags["optuna.values"]) if "optuna.values" in tags else None
        value = values[0] if values else child.metrics.get(metric) if child.status != "running" else None
        rows.append({
            "number": int(tags.get("gw.trial", "-1")),
            "id": child.id,
            "status": child.status,
            "value": None if value is None or value != value else value,
            "params": child.params,
            "duration": child.duration,
            "created_at": child.created_at,
            "reason": (child.error or "").strip().splitlines()[0] if child.error else None,
            "retry_of": tags.get("optuna.user.gw.retry_of", "").strip('"') or None,
        })
    rows.sort(key=lambda r: (r["number"], r["created_at"]))
    return rows


def describe_sweep(ref: str, *, config: Config | None = None) -> dict[str, Any]:
    """A sweep's settings, its best trial and every trial (what ``groundwork sweep show`` prints)."""
    config = config or Config.from_env()
    run = get_run(ref, config=config)
    if run.kind != "sweep":
        raise InvalidInput(f"run {ref!r} is a {run.kind}, not a sweep", hint="list sweeps: groundwork runs --filter \"kind = 'sweep'\"")
    settings = SweepSettings.from_tags(run.tags)
    rows = trial_rows(run)
    scored = [r for r in rows if r["status"] == "finished" and r["value"] is not None]
    pick = max if settings.direction == "maximize" else min
    best = pick(scored, key=lambda r: r["value"]) if scored else None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "error": run.error,
        "metric": settings.metric,
        "direction": settings.direction,
        "trials": settings.trials,
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "parallel": settings.parallel,
        "executor": settings.executor,
        "space": {name: dim.describe() for name, dim in settings.space.items()},
        "command": json.loads(run.tags["gw.sweep.command"]) if "gw.sweep.command" in run.tags else None,
        "counts": counts,
        "best": best,
        "rows": rows,
    }
