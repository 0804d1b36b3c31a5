"""GroundworkStorage: Optuna's study as a sweep run, trials as child runs, read back by another process."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.sweeps.storage import GroundworkStorage

optuna.logging.set_verbosity(optuna.logging.WARNING)


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -5, 5)
    n = trial.suggest_int("n", 1, 8, log=True)
    act = trial.suggest_categorical("act", ["relu", None, True, 2.5])
    trial.set_user_attr("note", {"act": str(act)})
    for step in range(3):
        trial.report(x * x + step, step)
    if trial.number == 3:
        raise optuna.TrialPruned()
    return x * x + n


def test_an_optuna_study_is_a_sweep_run_with_trial_children(workspace: Config) -> None:
    storage = GroundworkStorage(workspace)
    study = optuna.create_study(storage=storage, study_name="tune", sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_user_attr("owner", "me")
    study.optimize(objective, n_trials=5)

    sweep = gw.get_run("tune", config=workspace)
    assert sweep.kind == "sweep"
    children = sweep.children()
    assert [c.kind for c in children] == ["trial"] * 5
    statuses = sorted(c.status for c in children)
    assert statuses == ["finished"] * 4 + ["pruned"]
    # Trials are runs: the filter language finds them, params are recorded, values are metrics.
    found = gw.runs(filter=f"parent = '{sweep.id}' and status = 'finished'", config=workspace)
    assert len(found) == 4
    first = next(c for c in children if c.tags["gw.trial"] == "0")
    assert float(first.params["x"]) == study.trials[0].params["x"]
    assert [p.step for p in first.history("value")] == [0, 1, 2]

    # A fresh storage (another process) reads the same study back, typed.
    again = optuna.load_study(study_name="tune", storage=GroundworkStorage(workspace))
    mine, theirs = study.trials, again.trials
    assert [t.number for t in theirs] == [0, 1, 2, 3, 4]
    for a, b in zip(mine, theirs, strict=True):
        assert a.state == b.state
        assert a.params == b.params
        assert {k: type(v) for k, v in a.params.items()} == {k: type(v) for k, v in b.params.items()}
        assert a.distributions == b.distributions
        assert a.values == b.values
        assert a.intermediate_values == b.intermediate_values
        assert a.user_attrs == b.user_attrs
    assert again.user_attrs == {"owner": "me"}
    assert again.best_trial.number == study.best_trial.number
    assert [s.study_name for s in GroundworkStorage(workspace).get_all_studies()] == ["tune"]


def test_a_second_study_of_the_same_name_is_refused(workspace: Config) -> None:
    storage = GroundworkStorage(workspace)
    optuna.create_study(storage=storage, study_name="once")
    with pytest.raises(optuna.exceptions.DuplicatedStudyError):
        optuna.create_study(storage=GroundworkStorage(workspace), study_name="once")
    with pytest.raises(KeyError):
        optuna.load_study(study_name="never", storage=storage)


def test_a_finished_trial_cannot_change(workspace: Config) -> None:
    storage = GroundworkStorage(workspace)
    study = optuna.create_study(storage=storage, study_name="fixed")
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial._trial_id, "late", 1)


def test_enqueued_params_are_recorded(workspace: Config) -> None:
    storage = GroundworkStorage(workspace)
    study = optuna.create_study(storage=storage, study_name="queued")
    study.enqueue_trial({"x": 0.25})
    seen: list[Any] = []
    study.optimize(lambda t: seen.append(t.suggest_float("x", 0, 1)) or 0.0, n_trials=1)
    assert seen == [0.25]
    (child,) = gw.get_run("queued", config=workspace).children()
    assert child.params["x"] == 0.25
