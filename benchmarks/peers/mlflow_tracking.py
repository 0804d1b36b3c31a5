"""MLflow's side of the tracking benchmark (W1..W5, W7). Runs INSIDE the MLflow peer venv.

Standalone: imports only the standard library at module level and MLflow inside the
workload functions, so ``benchmarks/tracking.py`` (groundwork's venv, no MLflow) can import
the workload *data* defined here (``loss_value``, ``run_params``, ``run_metrics``,
``scaled``) and both sides log exactly the same numbers.

    .bench/mlflow-venv/bin/python benchmarks/peers/mlflow_tracking.py \\
        --workdir /tmp/w1 --workload W1 --scale 0.05

prints one JSON line on stdout (everything else goes to stderr). The store is MLflow's
database-backed tracking store on SQLite, ``sqlite:///<workdir>/mlflow.db``, the one a team
uses; MLflow's defaults are kept (synchronous logging), except where a result key says
otherwise (``W1 --async-logging``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
import traceback
from pathlib import Path

# ---------------------------------------------------------------------------------------
# Workload data, shared with benchmarks/tracking.py (pure functions, stdlib only).
# The *sizes* live in tracking.py (WORKLOADS) and reach this script on the command line.
# ---------------------------------------------------------------------------------------

#: Bump when loss_value/run_params/run_metrics change: it keys the cached W3 search store.
DATA_VERSION = 1
LR_CYCLE = (0.1, 0.01, 0.001)
SEARCH_FILTER_MLFLOW = "metrics.acc > 0.5 and params.lr = '0.01'"
SEARCH_ORDER_MLFLOW = ["metrics.acc DESC"]


def scaled(n: int, scale: float, minimum: int = 1) -> int:
    """``n`` shrunk by ``scale`` (never below ``minimum``, never above ``n``)."""
    return max(min(minimum, n), min(n, round(n * scale)))


def loss_value(step: int) -> float:
    """The value logged at ``step`` in W1/W2/W4/W5 (distinct for every step)."""
    return 1.0 / (1.0 + 0.001 * step)


def _run_rng(i: int, seed: int) -> random.Random:
    return random.Random(seed * 1_000_003 + i)


def run_params(i: int, seed: int) -> dict[str, object]:
    """The 10 params of W3 run ``i``: ``lr`` cycles 0.1, 0.01, 0.001; 9 others."""
    params: dict[str, object] = {"lr": LR_CYCLE[i % 3]}
    rng = _run_rng(i, seed)
    for k in range(1, 10):
        params[f"p{k}"] = rng.choice(("adam", "sgd", "rmsprop")) if k % 3 == 0 else rng.randrange(1000)
    return params


def run_metrics(i: int, seed: int) -> dict[str, float]:
    """The 5 metrics of W3 run ``i`` (step 0): ``acc`` uniform in [0, 1), 4 others."""
    rng = _run_rng(i, seed)
    rng.random()  # decorrelate from run_params' first draw
    out = {"acc": rng.random()}
    for k in range(1, 5):
        out[f"m{k}"] = rng.random()
    return out


def expected_search(n_runs: int, seed: int, limit: int) -> dict[str, object]:
    """What the W3 search must return on a store of runs 0..n_runs-1 (to check both sides)."""
    accs = sorted(
        (
            acc
            for i in range(n_runs)
            if LR_CYCLE[i % 3] == 0.01 and (acc := run_metrics(i, seed)["acc"]) > 0.5
        ),
        reverse=True,
    )
    return {"matches": len(accs), "results": min(limit, len(accs)), "top_acc": accs[0] if accs else None}


# ---------------------------------------------------------------------------------------
# Measurement helpers
# ---------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"[mlflow-peer] {msg}", file=sys.stderr, flush=True)


def _median_ms(fn, repeats: int) -> tuple[float, list[float], object]:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls, after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times, out


def _setup(workdir: Path, tracking_uri: str | None = None) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)  # MLflow's default artifact root (./mlruns) lands in workdir too
    import mlflow

    uri = tracking_uri or f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return uri


def _init_store(uri: str) -> None:
    """Create the schema (MLflow runs its migrations on first open), outside any timing."""
    from mlflow.tracking import MlflowClient

    MlflowClient(uri).search_experiments(max_results=1)


def _history_len(client, run_id: str, key: str = "loss") -> int:
    return len(client.get_metric_history(run_id, key))


# ---------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------


def w1(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """One run, one ``mlflow.log_metric`` call per point; first call until the run ended."""
    import mlflow
    from mlflow.tracking import MlflowClient

    if args.async_logging:
        mlflow.config.enable_async_logging(True)
    n = scaled(args.points, args.scale, 50)
    _init_store(uri)
    run = mlflow.start_run(run_name="bench-w1")
    run_id = run.info.run_id
    t0 = time.perf_counter()
    for i in range(n):
        mlflow.log_metric("loss", loss_value(i), step=i)
    mlflow.end_run()  # with async logging this waits for the queue to drain
    elapsed = time.perf_counter() - t0
    present = _history_len(MlflowClient(uri), run_id)
    return {
        "points": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "unit": "points/s",
        "present": present,
        "async_logging": bool(args.async_logging),
    }


def w2(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """``MlflowClient.log_batch`` with ``batch`` metrics per call (MLflow's max is 1,000)."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    batch = args.batch
    n_batches = scaled(args.points // batch, args.scale, 2)
    _init_store(uri)
    client = MlflowClient(uri)
    run_id = mlflow.start_run(run_name="bench-w2").info.run_id
    # Metric objects are built before the clock starts; only MLflow's own work is timed.
    now = int(time.time() * 1000)
    batches = [
        [Metric("loss", loss_value(s), now + s, s) for s in range(b * batch, (b + 1) * batch)]
        for b in range(n_batches)
    ]
    t0 = time.perf_counter()
    for metrics in batches:
        client.log_batch(run_id, metrics=metrics)
    mlflow.end_run()
    elapsed = time.perf_counter() - t0
    n = n_batches * batch
    return {
        "points": n,
        "batches": n_batches,
        "batch": batch,
        "seconds": elapsed,
        "rate": n / elapsed,
        "unit": "points/s",
        "present": _history_len(client, run_id),
    }


def _create_runs_like_a_user(first: int, last: int, seed: int) -> float:
    """W3 runs ``first..last-1`` as a training script makes them; returns seconds."""
    import mlflow

    t0 = time.perf_counter()
    for i in range(first, last):
        with mlflow.start_run(run_name=f"w3-{i}"):
            mlflow.log_params(run_params(i, seed))
            mlflow.log_metrics(run_metrics(i, seed), step=0)
        done = i + 1 - first
        if done % 500 == 0:
            _log(f"W3: run {i + 1}/{last} ({done / (time.perf_counter() - t0):.1f} runs/s)")
    return time.perf_counter() - t0


def _time_search(uri: str, repeats: int, limit: int) -> dict[str, object]:
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(uri)

    def df_search():
        return mlflow.search_runs(
            filter_string=SEARCH_FILTER_MLFLOW, order_by=SEARCH_ORDER_MLFLOW, max_results=limit
        )

    med, times, df = _median_ms(df_search, repeats)
    client = MlflowClient(uri)

    def client_search():
        return client.search_runs(
            ["0"], filter_string=SEARCH_FILTER_MLFLOW, order_by=SEARCH_ORDER_MLFLOW, max_results=limit
        )

    cmed, _, runs = _median_ms(client_search, repeats)
    top = float(df["metrics.acc"].iloc[0]) if len(df) else None
    return {
        "ms": med,
        "times_ms": times,
        "results": len(df),
        "top_acc": top,
        # MlflowClient.search_runs skips the pandas DataFrame: MLflow's fastest search.
        "client_ms": cmed,
        "client_results": len(runs),
    }


def w3(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """Create ``runs * scale`` runs (10 params + 5 metrics each) and time that; time the
    search on them; then time the search on a store of the full ``runs``.

    The full-size store is made the same way (start_run/log_params/log_metrics, so it holds
    exactly what users' stores hold, MLflow's automatic tags included) by carrying on with
    runs n..runs-1 in the same store, and is cached (keyed by MLflow version, run count and
    seed) so later invocations only copy it. The search is always timed in this invocation.
    """
    import mlflow

    n = scaled(args.runs, args.scale, 20)
    full = args.runs
    _init_store(uri)
    seconds = _create_runs_like_a_user(0, n, args.seed)
    search: dict[str, object] = {str(n): _time_search(uri, args.repeats, args.limit)}
    out: dict[str, object] = {
        "runs": n,
        "seconds": seconds,
        "rate": n / seconds,
        "unit": "runs/s",
        "search": search,
    }
    if n >= full or args.full_store == "skip":
        return out
    cache = Path(args.cache_dir) if args.cache_dir else None
    cached = (
        cache / f"mlflow-{mlflow.__version__}-w3-{full}runs-seed{args.seed}-data{DATA_VERSION}.db"
        if cache
        else None
    )
    db = Path(args.workdir) / "mlflow.db"
    if cached is not None and cached.exists():
        full_db = Path(args.workdir) / "full" / "mlflow.db"
        full_db.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, full_db)
        info: dict[str, object] = {"from_cache": str(cached)}
    elif args.full_store == "build":
        _log(f"W3: adding runs {n}..{full - 1} to reach a {full}-run store (cached afterwards)")
        more = _create_runs_like_a_user(n, full, args.seed)
        full_db = db
        info = {"built_here": True, "rate_all_runs": full / (seconds + more)}
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(cached.name + ".tmp")
            shutil.copyfile(db, tmp)
            os.replace(tmp, cached)
    else:
        return out
    res = _time_search(f"sqlite:///{full_db}", args.repeats, args.limit)
    res["store"] = info
    search[str(full)] = res
    return out


def w4(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """Read back a ``history``-point metric series with ``get_metric_history``."""
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    n = args.history
    _init_store(uri)
    client = MlflowClient(uri)
    run_id = mlflow.start_run(run_name="bench-w4").info.run_id
    now = int(time.time() * 1000)
    for b in range(0, n, 1000):
        client.log_batch(
            run_id, metrics=[Metric("loss", loss_value(s), now + s, s) for s in range(b, min(n, b + 1000))]
        )
    mlflow.end_run()
    med, times, hist = _median_ms(lambda: client.get_metric_history(run_id, "loss"), args.repeats)
    return {"points": n, "ms": med, "times_ms": times, "returned": len(hist), "unit": "ms"}


def _w5_worker(uri: str, k: int, n: int, ready, go, results) -> None:
    """One of W5's processes: its own run, ``n`` single-point log calls."""
    errors, samples = 0, []
    run_id = None
    t0 = t1 = None
    try:
        import mlflow

        mlflow.set_tracking_uri(uri)
        run_id = mlflow.start_run(run_name=f"bench-w5-{k}").info.run_id
    except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
        errors += 1
        samples.append(f"start_run: {type(exc).__name__}: {str(exc)[:200]}")
    ready.put(k)
    go.wait()
    t0 = time.monotonic()
    if run_id is not None:
        for i in range(n):
            try:
                mlflow.log_metric("loss", loss_value(i), step=i)
            except Exception as exc:  # noqa: BLE001
                errors += 1
                if len(samples) < 3:
                    samples.append(f"log_metric: {type(exc).__name__}: {str(exc)[:200]}")
        try:
            mlflow.end_run()
        except Exception as exc:  # noqa: BLE001
            errors += 1
            samples.append(f"end_run: {type(exc).__name__}: {str(exc)[:200]}")
    t1 = time.monotonic()
    results.put({"k": k, "run_id": run_id, "t0": t0, "t1": t1, "errors": errors, "samples": samples})


def w5(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """``procs`` processes, each its own run, logging one point per call into one store.

    The store is created first; every process imports MLflow and starts its run, then all
    start logging at once. The clock runs from that start until the last one has ended its
    run. Afterwards the points actually in the store are counted."""
    import multiprocessing as mp

    from mlflow.tracking import MlflowClient

    n = scaled(args.points_per_proc, args.scale, 20)
    procs = args.procs
    _init_store(uri)
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=_w5_worker, args=(uri, k, n, ready, go, results)) for k in range(procs)]
    try:
        for p in workers:
            p.start()
        for _ in range(procs):
            ready.get(timeout=300)
        go.set()
        rows = [results.get(timeout=3600) for _ in range(procs)]
        for p in workers:
            p.join(60)
    finally:
        for p in workers:
            if p.is_alive():
                p.terminate()
    elapsed = max(r["t1"] for r in rows) - min(r["t0"] for r in rows)
    client = MlflowClient(uri)
    present = sum(_history_len(client, r["run_id"]) for r in rows if r["run_id"])
    errors = sum(r["errors"] for r in rows)
    samples = [s for r in rows for s in r["samples"]][:5]
    total = procs * n
    return {
        "procs": procs,
        "points_per_proc": n,
        "points": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "unit": "points/s",
        "errors": errors,
        "present": present,
        "error_samples": samples,
    }


# W7: start time in fresh processes. The helpers are shared with benchmarks/tracking.py.
def make_small_repo(path: Path) -> None:
    """A small git repository with one commit and one uncommitted change: a sweep's project folder.

    Both sides start their runs in one, so both pay for reading the code version. Without
    git the folder stays a plain one (the JSON says which).
    """
    import subprocess

    path.mkdir(parents=True, exist_ok=True)
    (path / "train.py").write_text("lr = 0.01\nprint(lr)\n")
    (path / "README.md").write_text("a project\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
    }
    if shutil.which("git") is None:
        return
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "first"]):
        subprocess.run(["git", *cmd], cwd=path, env=env, check=True, capture_output=True)
    (path / "train.py").write_text("lr = 0.02\nprint(lr)\n")


def fresh_processes(cmd: list[str], cwd: Path, env: dict[str, str], count: int) -> list[dict[str, object]]:
    """Run ``cmd`` ``count`` times, one after the other, each a fresh interpreter; the JSON each prints last."""
    import subprocess

    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"{cmd[:2]} exited {done.returncode}: {done.stderr[-2000:]}")
        result = json.loads(lines[-1])
        result["process_ms"] = wall * 1000.0  # interpreter start to exit, seen from outside
        out.append(result)
    return out


_MLFLOW_START_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import mlflow
import mlflow.store.tracking.sqlalchemy_store  # the SQL store's module: imported, not timed in start_ms
mlflow.set_tracking_uri(sys.argv[1])
t1 = time.perf_counter()
run = mlflow.start_run(run_name="bench-w7")
t2 = time.perf_counter()
mlflow.end_run()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "start_ms": (t2 - t1) * 1000, "run_id": run.info.run_id}))
"""


def w7(args: argparse.Namespace, uri: str) -> dict[str, object]:
    """``start-trials`` fresh processes, each: ``import mlflow`` and its SQL store module, then the first ``mlflow.start_run()``.

    In a small git repository (MLflow reads the commit for its source tags). The store
    exists before; ``start_run`` returns once the run's row is committed."""
    _init_store(uri)
    project = Path(args.workdir) / "project"
    make_small_repo(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    count = scaled(args.start_trials, args.scale, 3)
    rows = fresh_processes([sys.executable, "-c", _MLFLOW_START_CHILD, uri], project, env, count)
    starts = [float(r["start_ms"]) for r in rows]
    totals = [float(r["import_ms"]) + float(r["start_ms"]) for r in rows]
    return {
        "processes": count,
        "ms": statistics.median(starts),
        "times_ms": starts,
        "import_ms": statistics.median(float(r["import_ms"]) for r in rows),
        "total_ms": statistics.median(totals),
        "process_ms": statistics.median(float(r["process_ms"]) for r in rows),
        "git": (project / ".git").exists(),
        "unit": "ms",
    }


WORKLOAD_FNS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4, "W5": w5, "W7": w7}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True, help="an empty folder for this workload's store")
    ap.add_argument("--workload", required=True, choices=sorted(WORKLOAD_FNS))
    ap.add_argument("--scale", type=float, default=1.0, help="shrinks W1, W2, W3 creation and W5")
    # Workload sizes: benchmarks/tracking.py passes its WORKLOADS constants; these
    # defaults are the same numbers, for running this script by hand.
    ap.add_argument("--points", type=int, default=20_000, help="W1/W2 points")
    ap.add_argument("--batch", type=int, default=1_000, help="W2 points per log_batch")
    ap.add_argument("--runs", type=int, default=5_000, help="W3 runs")
    ap.add_argument("--limit", type=int, default=100, help="W3 max_results")
    ap.add_argument("--history", type=int, default=2_000, help="W4 points read back")
    ap.add_argument("--procs", type=int, default=8, help="W5 processes")
    ap.add_argument("--points-per-proc", type=int, default=2_000, help="W5 points per process")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats for W3 search/W4 (median)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start-trials", type=int, default=10, help="W7 fresh processes")
    ap.add_argument(
        "--async-logging",
        action="store_true",
        help="W1 with MLflow's opt-in asynchronous logging (not its default)",
    )
    ap.add_argument(
        "--full-store",
        choices=("build", "cached", "skip"),
        default="cached",
        help="W3 at scale < 1: also time the search on a full --runs store: build it "
        "if not cached, use it only if cached, or skip",
    )
    ap.add_argument("--cache-dir", default=None, help="where full-size W3 stores are cached")
    ap.add_argument(
        "--tracking-uri",
        default=None,
        help="log to this tracking URI (an `mlflow server`, benchmarks/server.py) instead of a SQLite "
        "store in --workdir; credentials come from MLFLOW_TRACKING_USERNAME/PASSWORD",
    )
    args = ap.parse_args(argv)

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    workdir = Path(args.workdir).resolve()
    args.workdir = str(workdir)
    if args.cache_dir:  # resolved before _setup() changes into the workdir
        args.cache_dir = str(Path(args.cache_dir).resolve())
    t0 = time.perf_counter()
    try:
        uri = _setup(workdir, args.tracking_uri)
        import mlflow

        result = WORKLOAD_FNS[args.workload](args, uri)
        result.update(
            ok=True,
            workload=args.workload,
            scale=args.scale,
            mlflow=mlflow.__version__,
            store=uri.split(":", 1)[0],
            wall_seconds=time.perf_counter() - t0,
        )
    except Exception as exc:  # noqa: BLE001 - reported as JSON, the orchestrator decides
        traceback.print_exc()
        result = {"ok": False, "workload": args.workload, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
