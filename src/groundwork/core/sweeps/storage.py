"""An Optuna storage whose study is a groundwork run and whose trials are its child runs.

No second database: Optuna's objects map onto runs, through the core API only
(``start_run``, ``attach_run``, :class:`ActiveRun` methods, ``get_run``/``runs``), so a
sweep works over whatever store the run API does, a team server's included.

==========================  =====================================================================
Optuna                      groundwork
==========================  =====================================================================
study                       a run of kind ``sweep``; directions and metric in ``gw.sweep.*`` tags
study user/system attrs     tags ``optuna.study_user.KEY`` / ``optuna.study_system.KEY`` (JSON)
trial                       a child run of kind ``trial`` (``parent=`` the sweep), number in
                            the tag ``gw.trial``
trial params                run params (external values) + the distributions, JSON, in the tag
                            ``optuna.distributions``: values come back typed
trial value(s)              the tag ``optuna.values`` (JSON), and the metric ``gw.sweep.metric``
intermediate values         that metric's series, by step
trial state                 run status: running, finished, pruned, failed (crashed reads FAIL)
trial user/system attrs     tags ``optuna.user.KEY`` / ``optuna.system.KEY`` (JSON)
==========================  =====================================================================

Optuna calls its storage often, so this one keeps a per-process cache, as Optuna's own
``_CachedStorage`` does. A trial created here is written to the store once it starts
(:meth:`GroundworkStorage.persist`, or the first state change, intermediate value or
attribute written after it): one run creation carrying its params and tags, then its end.
What other processes wrote is read from the store: always when a study is loaded
(so resuming reads every trial), and on each ``get_all_trials`` for trials this process
does not own, unless the caller owns the whole study (:meth:`own_study`: the sweep
driver, which creates every trial and hears every result itself).
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from optuna import distributions as optuna_distributions
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from groundwork.config import Config
from groundwork.core.runs import Run, get_run, runs
from groundwork.core.tracking import ActiveRun, start_run
from groundwork.errors import NotFound
from groundwork.storage.stores import open_stores

KIND_SWEEP = "sweep"
KIND_TRIAL = "trial"
TAG_DIRECTIONS = "gw.sweep.directions"
TAG_METRIC = "gw.sweep.metric"
TAG_NUMBER = "gw.trial"
TAG_DISTRIBUTIONS = "optuna.distributions"
TAG_VALUES = "optuna.values"
USER, SYSTEM = "optuna.user.", "optuna.system."
STUDY_USER, STUDY_SYSTEM = "optuna.study_user.", "optuna.study_system."
DEFAULT_METRIC = "value"
#: Another process's trials are read again at most this often (what they log reaches the
#: store at least this often too: the tracking writer's flush interval).
REFRESH_INTERVAL_S = 0.5
#: A reason starting so marks a trial stopped from outside (Ctrl-C, its worker died): it ends
#: ``crashed``, and a resumed sweep runs it again.
INTERRUPTED = "interrupted"

_STATE_TO_STATUS = {
    TrialState.RUNNING: "running",
    TrialState.COMPLETE: "finished",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
}
_STATUS_TO_STATE = {
    "running": TrialState.RUNNING,
    "finished": TrialState.COMPLETE,
    "pruned": TrialState.PRUNED,
    "failed": TrialState.FAIL,
    "crashed": TrialState.FAIL,
}


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, allow_nan=True)


def _unjson(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _when(stamp: float | None) -> datetime.datetime | None:
    return None if stamp is None else datetime.datetime.fromtimestamp(stamp)


def typed_param(value: Any, dist: optuna_distributions.BaseDistribution) -> Any:
    """A param as recorded (typed, or text from older stores and commands), back as the value its distribution drew."""
    from groundwork.storage.records import param_text

    text = value if isinstance(value, str) else param_text(value)
    if isinstance(dist, optuna_distributions.CategoricalDistribution):
        for item in dist.choices:
            if param_text(item) == text:
                return item
        raise ValueError(f"{text!r} is none of {dist.choices!r}")
    if isinstance(dist, optuna_distributions.IntDistribution):
        return int(float(text))
    return float(text)


@dataclass
class _Trial:
    """One trial in the cache: Optuna's frozen view plus where it lives in groundwork."""

    frozen: FrozenTrial
    study_id: int
    run_id: str | None = None
    run: ActiveRun | None = None  # this process's handle on the trial's run (owned, or attached)
    local: bool = False  # created or bound here: the cache is authoritative for it
    loaded_series: bool = False


@dataclass
class _Study:
    study_id: int
    run_id: str
    name: str
    directions: list[StudyDirection]
    metric: str
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    trials: dict[int, _Trial] = field(default_factory=dict)  # by number
    owned: bool = False
    refreshed_at: float = 0.0
    parent: ActiveRun | None = None
    trial_command: list[str] | None = None
    trial_name: str = "trial"


class GroundworkStorage(BaseStorage):
    """Optuna's storage interface over groundwork runs (see the module docstring).

    >>> study = optuna.create_study(storage=GroundworkStorage(), study_name="tune-lr")
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config.from_env()
        self._lock = threading.RLock()
        self._studies: dict[int, _Study] = {}
        self._study_ids: dict[str, int] = {}  # sweep run id -> study id
        self._trials: dict[int, _Trial] = {}  # trial id -> trial
        self._trial_ids: dict[str, int] = {}  # trial run id -> trial id
        self._next_study = itertools.count()
        self._next_trial = itertools.count()
        self._reasons: dict[int, str] = {}
        #: Hold trials' ends and new runs back until :meth:`commit` (the sweep driver batches them).
        self.batch_writes = False
        self._pending_ends: list[Callable[[], None]] = []
        self._unwritten: list[ActiveRun] = []

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"])  # type: ignore[misc]

    # -- studies ----------------------------------------------------------------------------------
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        name = study_name or f"study-{uuid.uuid4().hex[:8]}"
        try:
            existing = get_run(name, config=self.config)
        except NotFound:
            existing = None
        if existing is not None and existing.kind == KIND_SWEEP and existing.name == name:
            raise DuplicatedStudyError(f"a sweep named {name!r} exists already ({existing.id[:12]})")
        tags = {TAG_DIRECTIONS: _json([d.name.lower() for d in directions]), TAG_METRIC: DEFAULT_METRIC}
        run = start_run(name=name, kind=KIND_SWEEP, tags=tags, config=self.config)
        run.flush()
        return self.adopt(run, list(directions), DEFAULT_METRIC)

    def adopt(
        self,
        run: ActiveRun,
        directions: Sequence[StudyDirection],
        metric: str,
        *,
        trial_command: Sequence[str] | None = None,
    ) -> int:
        """Make the sweep run ``run`` (started by this process) a study; its id is returned."""
        with self._lock:
            study_id = next(self._next_study)
            self._studies[study_id] = _Study(
                study_id, run.id, run.name, list(directions), metric, parent=run,
                trial_command=list(trial_command) if trial_command else None, trial_name=run.name,
            )
            self._study_ids[run.id] = study_id
            return study_id

    def own_study(self, study_id: int) -> None:
        """This process creates every trial of the study and hears every result: stop re-reading it."""
        with self._lock:
            self._study(study_id).owned = True

    def study_run_id(self, study_id: int) -> str:
        return self._study(study_id).run_id

    def _study(self, study_id: int) -> _Study:
        try:
            return self._studies[study_id]
        except KeyError:
            raise KeyError(f"no study with id {study_id}") from None

    def delete_study(self, study_id: int) -> None:
        raise NotImplementedError("a sweep is a run: groundwork keeps it (runs are never deleted by Optuna)")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self._set_study_attr(study_id, STUDY_USER, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._set_study_attr(study_id, STUDY_SYSTEM, key, value)

    def _set_study_attr(self, study_id: int, prefix: str, key: str, value: Any) -> None:
        with self._lock:
            study = self._study(study_id)
            (study.user_attrs if prefix == STUDY_USER else study.system_attrs)[key] = value
            self._handle(study.run_id, study.parent).set_tags({prefix + key: _json(value)})

    def get_study_id_from_name(self, study_name: str) -> int:
        with self._lock:
            for study in self._studies.values():
                if study_name in (study.name, study.run_id):
                    return study.study_id
        try:
            run = get_run(study_name, config=self.config)
        except NotFound:
            raise KeyError(f"no sweep named {study_name!r}") from None
        if run.kind != KIND_SWEEP:
            raise KeyError(f"run {study_name!r} is a {run.kind}, not a sweep")
        return self.load(run)

    def load(self, run: Run) -> int:
        """Read the sweep run ``run`` and every trial of it from the store; its study id."""
        with self._lock:
            if run.id in self._study_ids:
                study_id = self._study_ids[run.id]
            else:
                tags = run.tags
                directions = [StudyDirection[d.upper()] for d in _unjson(tags.get(TAG_DIRECTIONS, '["minimize"]'))]
                study_id = next(self._next_study)
                self._studies[study_id] = _Study(
                    study_id, run.id, run.name, directions, tags.get(TAG_METRIC, DEFAULT_METRIC), trial_name=run.name,
                    trial_command=_unjson(tags["gw.sweep.command"]) if "gw.sweep.command" in tags else None,
                )
                self._study_ids[run.id] = study_id
            study = self._studies[study_id]
            for key, text in run.tags.items():
                if key.startswith(STUDY_USER):
                    study.user_attrs[key[len(STUDY_USER):]] = _unjson(text)
                elif key.startswith(STUDY_SYSTEM):
                    study.system_attrs[key[len(STUDY_SYSTEM):]] = _unjson(text)
            self._refresh(study, force=True)
            return study_id

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._study(study_id).name

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._study(study_id).directions)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._study(study_id).user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return dict(self._study(study_id).system_attrs)

    def get_all_studies(self) -> list[FrozenStudy]:
        studies = []
        for run in runs(filter=f"kind = '{KIND_SWEEP}'", limit=None, config=self.config):
            study_id = self.load(run)
            study = self._studies[study_id]
            directions = list(study.directions)
            studies.append(
                FrozenStudy(
                    study_name=study.name, direction=None, directions=directions,
                    user_attrs=dict(study.user_attrs), system_attrs=dict(study.system_attrs), study_id=study_id,
                )
            )
        return studies

    # -- trials: writing --------------------------------------------------------------------------
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        with self._lock:
            study = self._study(study_id)
            if template_trial is None:
                frozen = FrozenTrial(
                    number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.datetime.now(),
                    datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                    intermediate_values={}, trial_id=-1,
                )
            else:
                frozen = copy.deepcopy(template_trial)
            trial_id = next(self._next_trial)
            frozen.number = max(study.trials, default=-1) + 1
            frozen._trial_id = trial_id
            trial = _Trial(frozen, study_id, local=True)
            study.trials[frozen.number] = trial
            self._trials[trial_id] = trial
            if frozen.state.is_finished():
                self.persist(trial_id)
            return trial_id

    def persist(self, trial_id: int) -> str:
        """Write the trial's run (params, distributions, attrs) if it is not written yet; its run id."""
        with self._lock:
            trial = self._trial(trial_id)
            if trial.run_id is not None:
                return trial.run_id
            study = self._studies[trial.study_id]
            frozen = trial.frozen
            tags: dict[str, Any] = {
                TAG_NUMBER: frozen.number,
                TAG_DISTRIBUTIONS: _json(
                    {k: optuna_distributions.distribution_to_json(d) for k, d in frozen.distributions.items()}
                ),
            }
            tags.update({USER + k: _json(v) for k, v in frozen.user_attrs.items()})
            tags.update({SYSTEM + k: _json(v) for k, v in frozen.system_attrs.items()})
            run = start_run(
                name=f"{study.trial_name}-trial-{frozen.number}",
                kind=KIND_TRIAL,
                params=dict(frozen.params),
                tags=tags,
                parent=study.parent if study.parent is not None else study.run_id,
                command=study.trial_command,
                config=self.config,
            )
            if self.batch_writes:
                self._unwritten.append(run)  # written by the next commit(), before any worker sees it
            else:
                run.flush()  # a worker may attach to it at once
            trial.run_id, trial.run = run.id, run
            self._trial_ids[run.id] = trial_id
            return run.id

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: optuna_distributions.BaseDistribution,
    ) -> None:
        with self._lock:
            trial = self._writable(trial_id)
            study = self._studies[trial.study_id]
            for other in study.trials.values():
                known = other.frozen.distributions.get(param_name)
                if known is not None:
                    optuna_distributions.check_distribution_compatibility(known, distribution)
                    break
            frozen = copy.copy(trial.frozen)
            frozen.params = {**frozen.params, param_name: distribution.to_external_repr(param_value_internal)}
            frozen.distributions = {**frozen.distributions, param_name: distribution}
            trial.frozen = frozen
            if trial.run_id is not None:
                handle = self._trial_handle(trial)
                handle.log_params({param_name: frozen.params[param_name]})
                handle.set_tags({TAG_DISTRIBUTIONS: _json(
                    {k: optuna_distributions.distribution_to_json(d) for k, d in frozen.distributions.items()}
                )})

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            trial = self._trial(trial_id)
            self.check_trial_is_updatable(trial_id, trial.frozen.state)
            if state == TrialState.RUNNING and trial.frozen.state != TrialState.WAITING:
                return False
            frozen = copy.copy(trial.frozen)
            frozen.state = state
            if values is not None:
                frozen.values = list(values)
            if state == TrialState.RUNNING:
                frozen.datetime_start = datetime.datetime.now()
            if state.is_finished():
                frozen.datetime_complete = datetime.datetime.now()
            trial.frozen = frozen
            self.persist(trial_id)
            if state.is_finished():
                self._end(trial, state, values)
            return True

    def _end(self, trial: _Trial, state: TrialState, values: Sequence[float] | None, error: str | None = None) -> None:
        study = self._studies[trial.study_id]
        handle = trial.run if trial.run is not None and trial.run._owned else None
        if handle is None:  # a trial this process did not start: end its run by id
            assert trial.run_id is not None
            handle = ActiveRun(trial.run_id, f"trial-{trial.frozen.number}", self.config,
                               open_stores(self.config).metadata, owned=True)
        if values is not None:
            # One value is the metric: logged as its only point, or already its last point
            # (a pruned trial's, a command's). Anything else is kept exactly in a tag.
            steps = trial.frozen.intermediate_values
            last = steps[max(steps)] if steps else None
            if len(values) == 1 and not steps and math.isfinite(values[0]):
                handle.log({study.metric: float(values[0])}, step=0)
            elif not (len(values) == 1 and last == values[0]):
                handle.set_tags({TAG_VALUES: _json([float(v) for v in values])})
        reason = error or self._reasons.pop(trial.frozen._trial_id, None)
        status = "crashed" if reason and reason.startswith(INTERRUPTED) else _STATE_TO_STATUS.get(state, "failed")
        trial.run = None
        if self.batch_writes:
            self._pending_ends.append(lambda: handle.end(status, error=reason))
        else:
            handle.end(status, error=reason)

    def commit(self) -> None:
        """Write what :attr:`batch_writes` held back: trials' ends, and the runs created since.

        The first end's transaction carries every run created before it (the writer
        writes buffered creations with the next flush), so a sweep that ends one trial and
        starts the next pays one transaction for both.
        """
        with self._lock:
            ends, self._pending_ends = self._pending_ends, []
            unwritten, self._unwritten = self._unwritten, []
        for end in ends:
            end()
        if not ends and unwritten:
            unwritten[-1].flush()

    def end_trial(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None, *, error: str | None = None
    ) -> None:
        """Finish a trial with a reason (``error``) recorded on its run: a prune's, a failure's."""
        with self._lock:
            trial = self._trial(trial_id)
            self.check_trial_is_updatable(trial_id, trial.frozen.state)
            frozen = copy.copy(trial.frozen)
            frozen.state = state
            frozen.values = list(values) if values is not None else None
            frozen.datetime_complete = datetime.datetime.now()
            trial.frozen = frozen
            self.persist(trial_id)
            self._end(trial, state, values, error=error)

    def set_reason(self, trial_id: int, reason: str) -> None:
        """Why the trial is about to end (pruned at step 3, the objective's error): kept on its run."""
        with self._lock:
            self._reasons[trial_id] = reason

    def record_system_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Note system attrs another process already wrote to the trial's run (the cache only)."""
        with self._lock:
            trial = self._trial(trial_id)
            frozen = copy.copy(trial.frozen)
            frozen.system_attrs = {**frozen.system_attrs, **attrs}
            trial.frozen = frozen

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.record_intermediate(trial_id, step, intermediate_value)
        with self._lock:
            trial = self._trial(trial_id)
            self.persist(trial_id)
            self._trial_handle(trial).log({self._studies[trial.study_id].metric: intermediate_value}, step=step)

    def record_intermediate(self, trial_id: int, step: int, value: float) -> None:
        """Note an intermediate value already logged to the trial's run (the cache only)."""
        with self._lock:
            trial = self._writable(trial_id)
            frozen = copy.copy(trial.frozen)
            frozen.intermediate_values = {**frozen.intermediate_values, int(step): float(value)}
            trial.frozen = frozen

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr(trial_id, USER, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._set_trial_attr(trial_id, SYSTEM, key, value)

    def _set_trial_attr(self, trial_id: int, prefix: str, key: str, value: Any) -> None:
        with self._lock:
            trial = self._writable(trial_id)
            frozen = copy.copy(trial.frozen)
            if prefix == USER:
                frozen.user_attrs = {**frozen.user_attrs, key: value}
            else:
                frozen.system_attrs = {**frozen.system_attrs, key: value}
            trial.frozen = frozen
            if trial.run_id is not None:
                self._trial_handle(trial).set_tags({prefix + key: _json(value)})

    def _writable(self, trial_id: int) -> _Trial:
        trial = self._trial(trial_id)
        self.check_trial_is_updatable(trial_id, trial.frozen.state)
        return trial

    def _trial(self, trial_id: int) -> _Trial:
        try:
            return self._trials[trial_id]
        except KeyError:
            raise KeyError(f"no trial with id {trial_id}") from None

    def _trial_handle(self, trial: _Trial) -> ActiveRun:
        if trial.run is None:
            assert trial.run_id is not None
            trial.run = self._handle(trial.run_id, None)
        return trial.run

    def _handle(self, run_id: str, known: ActiveRun | None) -> ActiveRun:
        if known is not None:
            return known
        return ActiveRun(run_id, run_id[:12], self.config, open_stores(self.config).metadata, owned=False)

    # -- binding a trial in a worker process ------------------------------------------------------
    def bind_trial(self, study_id: int, run: ActiveRun, number: int, params: Mapping[str, Any],
                   dists: Mapping[str, optuna_distributions.BaseDistribution]) -> int:
        """Adopt the trial whose run ``run`` this (worker) process attached to; its trial id here."""
        with self._lock:
            study = self._study(study_id)
            known = study.trials.get(number)
            if known is not None and known.run_id == run.id:
                known.run, known.local = run, True
                return known.frozen._trial_id
            trial_id = next(self._next_trial)
            frozen = FrozenTrial(
                number=number, state=TrialState.RUNNING, value=None, datetime_start=datetime.datetime.now(),
                datetime_complete=None, params=dict(params), distributions=dict(dists), user_attrs={},
                system_attrs={}, intermediate_values={}, trial_id=trial_id,
            )
            trial = _Trial(frozen, study_id, run_id=run.id, run=run, local=True, loaded_series=True)
            study.trials[number] = trial
            self._trials[trial_id] = trial
            self._trial_ids[run.id] = trial_id
            return trial_id

    def release_trial(self, trial_id: int) -> None:
        """This process is done with a bound trial: its ending is read from the store from now on."""
        with self._lock:
            trial = self._trial(trial_id)
            trial.local, trial.run = False, None

    def trial_run_id(self, trial_id: int) -> str | None:
        return self._trial(trial_id).run_id

    def trial_id_of_run(self, run_id: str) -> int | None:
        return self._trial_ids.get(run_id)

    # -- trials: reading --------------------------------------------------------------------------
    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            return self._trial(trial_id).frozen

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._lock:
            study = self._study(study_id)
            if not study.owned and time.monotonic() - study.refreshed_at >= REFRESH_INTERVAL_S:
                self._refresh(study)
            trials = [study.trials[n].frozen for n in sorted(study.trials)]
            if states is not None:
                trials = [t for t in trials if t.state in states]
            return copy.deepcopy(trials) if deepcopy else trials

    def _refresh(self, study: _Study, force: bool = False) -> None:
        """Read the trials this process does not own from the store (finished ones once)."""
        stale = [t for t in study.trials.values() if not t.local and not t.frozen.state.is_finished()]
        if not force and study.owned and not stale:
            return
        study.refreshed_at = time.monotonic()
        for run in get_run(study.run_id, config=self.config).children():
            if run.kind != KIND_TRIAL or TAG_NUMBER not in run.tags:
                continue
            trial_id = self._trial_ids.get(run.id)
            known = self._trials.get(trial_id) if trial_id is not None else None
            if known is not None and (known.local or (known.frozen.state.is_finished() and known.loaded_series)):
                continue
            self._read_trial(study, run, trial_id)

    def _read_trial(self, study: _Study, run: Run, trial_id: int | None) -> None:
        tags = run.tags
        number = int(tags[TAG_NUMBER])
        dists = {
            name: optuna_distributions.json_to_distribution(text)
            for name, text in _unjson(tags.get(TAG_DISTRIBUTIONS, "{}")).items()
        }
        params = {}
        for name, dist in dists.items():
            if name in run.params:
                try:
                    params[name] = typed_param(run.params[name], dist)
                except ValueError:
                    continue
        state = _STATUS_TO_STATE.get(run.status, TrialState.FAIL)
        values: list[float] | None = None
        if TAG_VALUES in tags:
            values = [float(v) for v in _unjson(tags[TAG_VALUES])]
        elif state in (TrialState.COMPLETE, TrialState.PRUNED) and study.metric in run.metrics:
            values = [run.metrics[study.metric]]
        if state == TrialState.COMPLETE and values is None:
            state = TrialState.FAIL  # finished without a value: not a result the sampler may use
        series = run.series(study.metric)
        intermediate = {int(s): float(v) for s, v in zip(series.steps.tolist(), series.values.tolist(), strict=True)}
        if trial_id is None:
            trial_id = next(self._next_trial)
        frozen = FrozenTrial(
            number=number, state=state, value=None, values=values if state != TrialState.FAIL else None,
            datetime_start=_when(run.created_at), datetime_complete=_when(run.ended_at) if state.is_finished() else None,
            params=params, distributions=dists,
            user_attrs={k[len(USER):]: _unjson(v) for k, v in tags.items() if k.startswith(USER)},
            system_attrs={k[len(SYSTEM):]: _unjson(v) for k, v in tags.items() if k.startswith(SYSTEM)},
            intermediate_values=intermediate, trial_id=trial_id,
        )
        trial = _Trial(frozen, study.study_id, run_id=run.id, loaded_series=True)
        previous = study.trials.get(number)
        if previous is not None and previous.run_id != run.id:
            # Two runs claim one number (another process created trials too): keep the earlier.
            return
        study.trials[number] = trial
        self._trials[trial_id] = trial
        self._trial_ids[run.id] = trial_id

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        if trial_state.is_finished():
            trial = self._trials.get(trial_id)
            number = trial.frozen.number if trial is not None else trial_id
            raise UpdateFinishedTrialError(f"trial {number} has finished already and cannot be changed")


__all__ = ["GroundworkStorage", "typed_param"]
