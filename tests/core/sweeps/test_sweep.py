"""gw.sweep: trials as child runs, gw.log inside the objective, pruning, failures, bad input."""

from __future__ import annotations

from typing import Any

import pytest

import groundwork as gw
from groundwork.config import Config
from groundwork.core.sweeps.sweep import SweepFailed
from groundwork.errors import InvalidInput


def quadratic(params: dict[str, Any]) -> float:
    import groundwork as gw

    gw.log({"seen_x": params["x"]})
    return (params["x"] - 1.0) ** 2 + params["k"]


def curve(params: dict[str, Any]) -> float:
    """Accuracy that grows with the step, best for lr near 0.01: bad trials are visible early."""
    import math

    import groundwork as gw

    acc = 0.0
    for step in range(9):
        acc = (1 - abs(math.log10(params["lr"]) + 2) / 3) * (1 - 0.5 ** (step + 1))
        gw.log({"acc": acc}, step=step)
    return acc


SPACE = {"x": gw.uniform(-4, 4), "k": gw.choice([0, 1])}


@pytest.mark.parametrize("parallel", [1, 2])
def test_every_trial_is_a_child_run(workspace: Config, parallel: int) -> None:
    result = gw.sweep(quadratic, SPACE, trials=8, parallel=parallel, seed=3, config=workspace)
    assert isinstance(result.best_params["k"], int)
    assert isinstance(result.best_params["x"], float)
    trials = result.trials
    assert len(trials) == 8 and all(t.kind == "trial" and t.status == "finished" for t in trials)
    values = [t.metrics["value"] for t in trials]
    assert result.best_value == min(values)
    # The objective ran inside its trial's run: what it logged is there.
    for t in trials:
        assert t.metrics["seen_x"] == pytest.approx(float(t.params["x"]))
    sweep_run = result.run
    assert sweep_run.kind == "sweep" and sweep_run.status == "finished"
    assert sweep_run.tags["gw.sweep.best_trial"] == result.best_trial
    # The best-so-far series, one point per trial.
    best = sweep_run.history("best_value")  # a point each time the best improved
    assert best[-1].value == result.best_value and [p.value for p in best] == sorted((p.value for p in best), reverse=True)
    assert gw.runs(filter=f"parent = '{result.id}'", config=workspace)[0].kind == "trial"


@pytest.mark.parametrize("parallel", [1, 2])
def test_pruned_trials_end_pruned_with_the_reason(workspace: Config, parallel: int) -> None:
    lrs = [0.01, 0.012, 0.009, 1e-4, 0.09, 2e-4, 3e-4, 0.011]
    from optuna.samplers import GridSampler

    result = gw.sweep(curve, {"lr": gw.choice(lrs)}, trials=len(lrs), sampler=GridSampler({"lr": lrs}),
                      pruner="asha", direction="max", metric="acc", parallel=parallel, config=workspace)
    pruned = [t for t in result.trials if t.status == "pruned"]
    assert pruned, [t.status for t in result.trials]
    for t in pruned:
        assert t.error and t.error.startswith("pruned at step")
        step = int(t.error.split("step ")[1].split(" ")[0])
        assert t.history("acc")[-1].step == step  # the objective stopped where it was pruned
    assert result.best_params["lr"] in (0.01, 0.012, 0.009, 0.011)
    assert all(float(t.params["lr"]) not in (0.01,) for t in pruned)


def failing(params: dict[str, Any]) -> float:
    raise ValueError(f"bad x {params['x']:.1f}")


def test_an_objective_that_raises_stops_the_sweep_with_one_line(workspace: Config) -> None:
    with pytest.raises(SweepFailed) as caught:
        gw.sweep(failing, {"x": gw.uniform(0, 1)}, trials=10, config=workspace)
    line = caught.value.one_line()
    assert "3 trials failed, none succeeded; the first: ValueError: bad x" in line and "\n" not in line
    (sweep_run,) = gw.runs(filter="kind = 'sweep'", config=workspace)
    assert sweep_run.status == "failed"
    trials = sweep_run.children()
    assert len(trials) == 3 and all(t.status == "failed" and "Traceback" in (t.error or "") for t in trials)


def test_a_metric_never_logged_is_a_failed_trial(workspace: Config) -> None:
    with pytest.raises(SweepFailed, match="metric 'val_acc' was never logged"):
        gw.sweep(lambda p: None, {"x": gw.uniform(0, 1)}, trials=2, metric="val_acc", config=workspace)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"trials": 0}, "trials must be a whole number of at least 1"),
        ({"sampler": "bayes"}, "unknown sampler 'bayes'"),
        ({"pruner": "hyperband"}, "unknown pruner 'hyperband'"),
        ({"direction": "up"}, "direction must be min or max"),
        ({"parallel": 0}, "parallel must be a whole number"),
        ({"executor": "k8s"}, "unknown executor 'k8s'"),
        ({"sampler": "grid"}, "the grid sampler needs choice or integer ranges; 'x' is uniform(-4.0, 4.0)"),
    ],
)
def test_bad_settings_are_one_clear_line(workspace: Config, kwargs: dict[str, Any], expected: str) -> None:
    settings = {"trials": 3, **kwargs}
    with pytest.raises(InvalidInput) as caught:
        gw.sweep(quadratic, SPACE, config=workspace, **settings)
    assert expected in caught.value.one_line()
    assert gw.runs(config=workspace) == []  # nothing recorded for a sweep that never started


def test_not_callable(workspace: Config) -> None:
    with pytest.raises(InvalidInput, match="must be callable"):
        gw.sweep("train.py", SPACE, trials=1, config=workspace)  # type: ignore[arg-type]
