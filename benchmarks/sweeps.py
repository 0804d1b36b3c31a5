"""Sweeps benchmark: per-trial overhead against Optuna alone and Ray Tune, and what ASHA saves.

    unshare -n bash -c 'ip link set lo up && exec "$@"' _ .venv/bin/python benchmarks/sweeps.py
    .venv/bin/python benchmarks/sweeps.py --no-ray --repeat 3    # without Ray Tune (no namespace needed)

Workload A, per-trial overhead: 500 trials of Branin (an analytic function: the objective
costs nothing, so what is measured is the search machinery), TPE (seeded), 2 at a time:

* **groundwork**: ``gw.sweep(branin, ..., parallel=2)``: trials in 2 worker processes, and
  every trial recorded as a run (params, value, status) in a fresh SQLite store;
* **Optuna in-memory**: ``study.optimize(n_jobs=2)`` on ``InMemoryStorage``: nothing kept;
* **Optuna RDB**: the same on ``RDBStorage`` over a fresh SQLite file;
* **Ray Tune**: ``Tuner`` with ``OptunaSearch`` (TPE), at most 2 trials at once, a local Ray
  with 2 CPUs (needs the loopback-only network namespace).

Printed: seconds per trial and the ratio of each peer to groundwork (the median of
``--repeat`` runs for all but Ray Tune, which runs once), after an untimed warm-up of 4
trials each (imports, groundwork's environment capture and its warm worker processes).

Workload B, ASHA: the digits MLP (examples/sweep/digits.py; learning rate, width, dropout;
20 epochs) over 40 configurations drawn by a seeded random sampler, once with ASHA and
once without pruning (every trial its full 20 epochs). Printed: the best validation
accuracy of each, and the epochs each trained in total.
Results are also written to ``.bench/results/sweeps.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "examples" / "sweep"))

TRIALS_A = 500
TRIALS_B = 40
EPOCHS_B = 20
SEED = 0


def branin(x: float, y: float) -> float:
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (y - b * x**2 + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


def gw_objective(params: dict[str, Any]) -> float:
    return branin(params["x"], params["y"])


def optuna_objective(trial: Any) -> float:
    return branin(trial.suggest_float("x", -5, 10), trial.suggest_float("y", 0, 15))


def run_groundwork(folder: Path, trials: int) -> tuple[float, float]:
    import groundwork as gw
    from groundwork.config import Config

    config = Config(store_url=f"sqlite:///{folder}/meta.db", artifacts_url=str(folder / "artifacts"))
    started = time.perf_counter()
    result = gw.sweep(gw_objective, {"x": gw.uniform(-5, 10), "y": gw.uniform(0, 15)}, trials=trials, parallel=2,
                      seed=SEED, name="branin", config=config)
    elapsed = time.perf_counter() - started
    recorded = gw.runs(filter=f"parent = '{result.id}' and status = 'finished'", limit=None, config=config)
    assert len(recorded) == trials, len(recorded)
    return elapsed, float(result.best_value or math.nan)


def run_optuna(storage: Any, trials: int) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=SEED))
    started = time.perf_counter()
    study.optimize(optuna_objective, n_trials=trials, n_jobs=2)
    return time.perf_counter() - started, float(study.best_value)


def run_ray_tune(folder: Path, trials: int) -> tuple[float, float]:
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)

    def trainable(config: dict[str, float]) -> dict[str, float]:
        return {"value": branin(config["x"], config["y"])}

    search = ConcurrencyLimiter(OptunaSearch(metric="value", mode="min", seed=SEED), max_concurrent=2)
    tuner = tune.Tuner(
        trainable,
        param_space={"x": tune.uniform(-5, 10), "y": tune.uniform(0, 15)},
        tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(folder), name="branin", verbose=0),
    )
    started = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - started
    best = results.get_best_result(metric="value", mode="min")
    ray.shutdown()
    return elapsed, float(best.metrics["value"])


def workload_a(repeat: int, with_ray: bool, trials: int) -> dict[str, Any]:
    import optuna

    # Warm-up, untimed: imports, the environment capture, groundwork's worker processes.
    with tempfile.TemporaryDirectory(prefix="gw-bench-warm-") as tmp:
        run_groundwork(Path(tmp), 4)
        run_optuna(optuna.storages.InMemoryStorage(), 4)

    times: dict[str, list[float]] = {"groundwork": [], "optuna-inmemory": [], "optuna-sqlite": []}
    best: dict[str, float] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp:
            folder = Path(tmp)
            elapsed, best["groundwork"] = run_groundwork(folder / "gw", trials)
            times["groundwork"].append(elapsed)
            elapsed, best["optuna-inmemory"] = run_optuna(optuna.storages.InMemoryStorage(), trials)
            times["optuna-inmemory"].append(elapsed)
            elapsed, best["optuna-sqlite"] = run_optuna(f"sqlite:///{folder}/optuna.db", trials)
            times["optuna-sqlite"].append(elapsed)
    if with_ray:
        with tempfile.TemporaryDirectory(prefix="gw-bench-ray-") as tmp:
            elapsed, best["ray-tune"] = run_ray_tune(Path(tmp), trials)
            times["ray-tune"] = [elapsed]
    per_trial = {name: statistics.median(values) / trials for name, values in times.items()}
    print(f"\nWorkload A: {trials} Branin trials, TPE, 2 at a time (median of {repeat})")
    print(f"  {'':18} {'ms/trial':>10} {'total s':>9} {'vs groundwork':>14}  best")
    for name, value in per_trial.items():
        ratio = value / per_trial["groundwork"]
        print(f"  {name:18} {value * 1000:10.2f} {value * trials:9.2f} {ratio:13.2f}x  {best[name]:.4f}")
    return {"trials": trials, "seconds_per_trial": per_trial, "best": best, "repeat": repeat}


def workload_b(trials: int) -> dict[str, Any]:
    from digits import SPACE, objective  # examples/sweep/digits.py

    import groundwork as gw
    from groundwork.config import Config

    space = {k: v for k, v in SPACE.items() if k != "epochs"}

    def fixed_budget(params: dict[str, Any]) -> float:
        return objective(params, epochs=EPOCHS_B)

    out: dict[str, Any] = {"trials": trials, "epochs_per_trial": EPOCHS_B}
    with tempfile.TemporaryDirectory(prefix="gw-bench-asha-") as tmp:
        config = Config(store_url=f"sqlite:///{tmp}/meta.db", artifacts_url=f"{tmp}/artifacts")
        # Warm-up, untimed: the workers import torch and load the data once, for both runs alike.
        gw.sweep(fixed_budget, space, trials=2, parallel=2, sampler="random", direction="max", metric="val_acc",
                 seed=SEED + 1, name="warm-up", config=config)
        for label, pruner in (("asha", "asha"), ("full", None)):
            started = time.perf_counter()
            result = gw.sweep(fixed_budget, space, trials=trials, parallel=2, sampler="random", pruner=pruner,
                              direction="max", metric="val_acc", seed=SEED, name=f"digits-{label}", config=config)
            epochs = sum(len(t.history("val_acc")) for t in result.trials)
            out[label] = {"best_val_acc": result.best_value, "epochs": epochs, "seconds": time.perf_counter() - started,
                          "pruned": sum(t.status == "pruned" for t in result.trials)}
    asha, full = out["asha"], out["full"]
    print(f"\nWorkload B: digits MLP, {trials} random configurations, {EPOCHS_B} epochs each, 2 at a time")
    for label in ("asha", "full"):
        row = out[label]
        print(f"  {label:5} best val_acc {row['best_val_acc'] * 100:6.2f}%  epochs {row['epochs']:5d}  "
              f"pruned {row['pruned']:3d}  {row['seconds']:6.1f} s")
    gap = (full["best_val_acc"] - asha["best_val_acc"]) * 100
    share = asha["epochs"] / full["epochs"]
    print(f"  ASHA: {gap:+.2f} points from the full-budget best, with {share:.2f} of its epochs "
          f"(target: within 0.5 points at <= 0.33)")
    out["gap_points"], out["epoch_share"] = gap, share
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="Repeat workload A this many times (median).")
    parser.add_argument("--trials", type=int, default=TRIALS_A, help="Trials of workload A.")
    parser.add_argument("--no-ray", action="store_true", help="Leave Ray Tune out.")
    parser.add_argument("--skip-b", action="store_true", help="Only workload A.")
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    results: dict[str, Any] = {"a": workload_a(args.repeat, not args.no_ray, args.trials)}
    if not args.skip_b:
        results["b"] = workload_b(TRIALS_B)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    out = REPO / ".bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweeps.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
