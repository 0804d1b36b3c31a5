"""Tracking benchmark: groundwork against MLflow on the same workloads, in one invocation.

    python benchmarks/tracking.py                    # full size on our side, MLflow at --peer-scale
    python benchmarks/tracking.py --quick            # a smoke run (~1-2 minutes)
    python benchmarks/tracking.py --skip-ours        # MLflow only (while the SDK is unfinished)
    python benchmarks/tracking.py --only W1,W3 --skip-peer

Runs in groundwork's venv. MLflow runs in its own venv (``.bench/mlflow-venv``, made on
first use by ``benchmarks/_peers.py``) through ``benchmarks/peers/mlflow_tracking.py``,
both on SQLite stores on the same disk. Prints a table of rates, ratios and targets and
writes every raw number to ``.bench/results/tracking.json``. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks._peers import (  # noqa: E402
    BENCH_DIR,
    MLFLOW_REQUIREMENTS,
    peer_python,
    peer_versions,
)
from benchmarks.peers.mlflow_tracking import (  # noqa: E402  (stdlib-only at import time)
    expected_search,
    fresh_processes,
    loss_value,
    make_small_repo,
    run_metrics,
    run_params,
    scaled,
)

PEER_SCRIPT = REPO_ROOT / "benchmarks" / "peers" / "mlflow_tracking.py"
RESULTS = BENCH_DIR / "results" / "tracking.json"
SEARCH_STORE_CACHE = BENCH_DIR / "cache"

# Our side of the W3 search; MLflow's spelling is in mlflow_tracking.SEARCH_FILTER_MLFLOW.
SEARCH_FILTER = "metrics.acc > 0.5 and params.lr = 0.01"
SEARCH_ORDER = "-metrics.acc"


@dataclass(frozen=True)
class Workloads:
    """Every size in the benchmark, in one place; the peer gets them on its command line."""

    points: int = 20_000  # W1 (one call per point) and W2 (in batches)
    batch: int = 1_000  # W2 points per batch call (MLflow's log_batch maximum)
    runs: int = 5_000  # W3 runs created, and the store size the search is compared on
    limit: int = 100  # W3 search max results
    history: int = 2_000  # W4 points read back
    procs: int = 8  # W5 processes
    points_per_proc: int = 2_000  # W5 points each process logs
    repeats: int = 5  # W3 search and W4 read: median of this many, after one warm-up
    seed: int = 0  # W3 params/metrics
    crash_trials: int = 7  # W6: kill -9 this many times, after crash_after[0]..crash_after[1] s of logging
    crash_after: tuple[float, float] = (1.5, 3.0)
    crash_bound_s: float = 1.0  # W6: the most a crash may lose, in seconds of logging
    start_trials: int = 10  # W7: fresh processes, each starting one run
    start_bound_ms: float = 100.0  # W7: the longest a first start_run may take

    def peer_args(self) -> list[str]:
        return [
            "--points",
            str(self.points),
            "--batch",
            str(self.batch),
            "--runs",
            str(self.runs),
            "--limit",
            str(self.limit),
            "--history",
            str(self.history),
            "--procs",
            str(self.procs),
            "--points-per-proc",
            str(self.points_per_proc),
            "--repeats",
            str(self.repeats),
            "--seed",
            str(self.seed),
            "--start-trials",
            str(self.start_trials),
        ]


WORKLOADS = Workloads()
ALL = ("W1", "W2", "W3", "W4", "W5", "W6", "W7")
OURS_ONLY = {"W6"}  # MLflow logs synchronously (a call per transaction): there is no backlog to lose
# MLflow is slow enough that these are shrunk by --peer-scale (rates are compared, not
# totals). W2 (20 batch calls) and W4 (a read) are cheap and always run at full size.
PEER_SCALED = {"W1", "W3", "W5"}

# Targets: groundwork / MLflow for rates, MLflow / groundwork for latencies.
TARGETS = {"W1": 2000.0, "W2": 50.0, "W3 create": 10.0, "W3 search": 10.0, "W4": 10.0, "W5": 100.0}

DESCRIPTIONS = {
    "W1": "log 1 point per call, 1 run",
    "W2": "log points in batches of 1,000",
    "W3 create": "create runs (10 params, 5 metrics)",
    "W3 search": "search runs (filter, order, limit 100)",
    "W4": "read a 2,000-point history",
    "W5": "8 processes log into 1 store",
    "W6": "kill -9 while logging at full speed: seconds of logging lost (worst trial)",
    "W7": "first start_run in a fresh process (modules imported)",
}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _median_ms(fn: Callable[[], Any], repeats: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``fn()`` in ms over ``repeats`` calls, after one warm-up call."""
    out = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times), times, out


# =======================================================================================
# groundwork's side (our SDK, in this process; W5 in spawned processes)
# =======================================================================================


class SdkNotReady(RuntimeError):
    pass


def _gw() -> Any:
    """``import groundwork as gw``, checked for the SDK contract this benchmark uses."""
    try:
        import groundwork as gw
    except Exception as exc:  # noqa: BLE001
        raise SdkNotReady(
            f"`import groundwork` failed ({type(exc).__name__}: {exc}); run this with groundwork's "
            f"venv (.venv/bin/python benchmarks/tracking.py), or with --skip-ours"
        ) from exc
    missing = [name for name in ("start_run", "runs", "get_run") if not hasattr(gw, name)]
    if missing:
        raise SdkNotReady(
            f"the groundwork SDK does not provide gw.{', gw.'.join(missing)} yet "
            f"({getattr(gw, '__file__', '?')}); run with --skip-ours to measure MLflow alone"
        )
    return gw


def _config(workdir: Path) -> Any:
    from groundwork.config import Config

    workdir.mkdir(parents=True, exist_ok=True)
    return Config(store_url=f"sqlite:///{workdir / 'meta.db'}", artifacts_url=str(workdir / "artifacts"))


def _init_ours(gw: Any, cfg: Any) -> None:
    """Open the store once (schema creation) outside any timing, as MLflow's side does."""
    gw.runs(limit=1, config=cfg)


def _history_len(gw: Any, cfg: Any, run_id: str) -> int:
    return len(gw.get_run(run_id, config=cfg).history("loss"))


def ours_w1(w: Workloads, scale: float, workdir: Path, config: Any = None, **_: Any) -> dict[str, Any]:
    gw = _gw()
    cfg = config or _config(workdir)
    n = scaled(w.points, scale, 50)
    _init_ours(gw, cfg)
    with gw.start_run(name="bench-w1", params={"workload": "W1"}, config=cfg) as run:
        t0 = time.perf_counter()
        for i in range(n):
            run.log({"loss": loss_value(i)}, step=i)
    elapsed = time.perf_counter() - t0  # leaving the block flushed every point durably
    return {
        "points": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "unit": "points/s",
        "present": _history_len(gw, cfg, run.id),
    }


def ours_w2(w: Workloads, scale: float, workdir: Path, config: Any = None, **_: Any) -> dict[str, Any]:
    gw = _gw()
    cfg = config or _config(workdir)
    n_batches = scaled(w.points // w.batch, scale, 2)
    _init_ours(gw, cfg)
    batches = [
        (
            [loss_value(s) for s in range(b * w.batch, (b + 1) * w.batch)],
            list(range(b * w.batch, (b + 1) * w.batch)),
        )
        for b in range(n_batches)
    ]
    with gw.start_run(name="bench-w2", params={"workload": "W2"}, config=cfg) as run:
        if not hasattr(run, "log_points"):
            raise SdkNotReady("W2 needs run.log_points(key, values, steps), which the SDK lacks")
        t0 = time.perf_counter()
        for values, steps in batches:
            run.log_points("loss", values, steps)
    elapsed = time.perf_counter() - t0
    n = n_batches * w.batch
    return {
        "points": n,
        "batches": n_batches,
        "batch": w.batch,
        "seconds": elapsed,
        "rate": n / elapsed,
        "unit": "points/s",
        "present": _history_len(gw, cfg, run.id),
    }


def _ours_search(gw: Any, cfg: Any, w: Workloads) -> dict[str, Any]:
    def search() -> Any:
        return gw.runs(filter=SEARCH_FILTER, order_by=SEARCH_ORDER, limit=w.limit, config=cfg)

    med, times, found = _median_ms(search, w.repeats)
    top = found[0].metrics.get("acc") if found else None
    return {"ms": med, "times_ms": times, "results": len(found), "top_acc": top}


def ours_w3(
    w: Workloads, scale: float, workdir: Path, search_at: tuple[int, ...] = (), **_: Any
) -> dict[str, Any]:
    """Create runs like a training script; time the search when the store holds each of
    ``search_at`` runs (runs are created in the same order on both sides, so a store of k
    runs here holds exactly what MLflow's store of k runs holds)."""
    gw = _gw()
    cfg = _config(workdir)
    n = scaled(w.runs, scale, 20)
    checkpoints = sorted({k for k in (*search_at, n) if 0 < k <= n})
    _init_ours(gw, cfg)
    search: dict[str, Any] = {}
    creating = 0.0
    done = 0
    for stop in checkpoints:
        t0 = time.perf_counter()
        for i in range(done, stop):
            with gw.start_run(name=f"w3-{i}", params=run_params(i, w.seed), config=cfg) as r:
                r.log(run_metrics(i, w.seed), step=0)
        creating += time.perf_counter() - t0
        done = stop
        search[str(stop)] = _ours_search(gw, cfg, w)
    return {"runs": n, "seconds": creating, "rate": n / creating, "unit": "runs/s", "search": search}


def ours_w4(w: Workloads, scale: float, workdir: Path, config: Any = None, **_: Any) -> dict[str, Any]:
    gw = _gw()
    cfg = config or _config(workdir)
    _init_ours(gw, cfg)
    with gw.start_run(name="bench-w4", config=cfg) as run:
        run.log_points("loss", [loss_value(s) for s in range(w.history)], list(range(w.history)))
    med, times, hist = _median_ms(lambda: gw.get_run(run.id, config=cfg).history("loss"), w.repeats)
    # Where the time goes (info): the history read alone, on a Run fetched once.
    snapshot = gw.get_run(run.id, config=cfg)
    history_only, _, _ = _median_ms(lambda: snapshot.history("loss"), w.repeats)
    return {
        "points": w.history,
        "ms": med,
        "times_ms": times,
        "returned": len(hist),
        "unit": "ms",
        "history_only_ms": history_only,
    }


def _ours_w5_worker(cfg: Any, k: int, n: int, ready: Any, go: Any, results: Any) -> None:
    """One of W5's processes (spawned): its own run, ``n`` single-point ``run.log`` calls."""
    errors, samples, run_id, said_ready = 0, [], None, False
    t0 = t1 = None
    try:
        import groundwork as gw

        with gw.start_run(name=f"bench-w5-{k}", config=cfg) as run:
            run_id = run.id
            ready.put(k)
            said_ready = True
            go.wait()
            t0 = time.monotonic()
            for i in range(n):
                try:
                    run.log({"loss": loss_value(i)}, step=i)
                except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
                    errors += 1
                    if len(samples) < 3:
                        samples.append(f"log: {type(exc).__name__}: {str(exc)[:200]}")
    except Exception as exc:  # noqa: BLE001 - start, or the final flush on leaving the block
        errors += 1
        samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        t1 = time.monotonic()
        if not said_ready:
            ready.put(k)
            go.wait()
        results.put(
            {
                "k": k,
                "run_id": run_id,
                "t0": t0 if t0 is not None else t1,
                "t1": t1,
                "errors": errors,
                "samples": samples,
            }
        )


def ours_w5(w: Workloads, scale: float, workdir: Path, config: Any = None, **_: Any) -> dict[str, Any]:
    gw = _gw()
    cfg = config or _config(workdir)
    n = scaled(w.points_per_proc, scale, 20)
    _init_ours(gw, cfg)
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    workers = [
        ctx.Process(target=_ours_w5_worker, args=(cfg, k, n, ready, go, results))
        for k in range(w.procs)
    ]
    try:
        for p in workers:
            p.start()
        for _ in range(w.procs):
            ready.get(timeout=300)
        go.set()
        rows = [results.get(timeout=3600) for _ in range(w.procs)]
        for p in workers:
            p.join(60)
    finally:
        for p in workers:
            if p.is_alive():
                p.terminate()
    elapsed = max(r["t1"] for r in rows) - min(r["t0"] for r in rows)
    present = sum(_history_len(gw, cfg, r["run_id"]) for r in rows if r["run_id"])
    total = w.procs * n
    return {
        "procs": w.procs,
        "points_per_proc": n,
        "points": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "unit": "points/s",
        "errors": sum(r["errors"] for r in rows),
        "present": present,
        "error_samples": [s for r in rows for s in r["samples"]][:5],
    }


# W6: the crash promise at full speed. The child logs one point per call as fast as the SDK
# accepts them and reports, every 4,096 points, how many it has handed over and when
# (CLOCK_MONOTONIC, one clock for the whole machine). The parent kills it with SIGKILL and
# counts the points in the store: the first missing point was handed over after the last
# report that the store covers, so the kill came at most (kill time - that report's time)
# after it. That is the loss, in seconds of logging (over-estimated by at most one report).
_CRASH_CHILD = """
import sys, time
import groundwork as gw
run = gw.start_run(name="bench-w6")
out = sys.stdout
out.write(f"RUN {run.id}\\n")
out.flush()
log, clock, step = run.log, time.monotonic, 0
while True:
    log({"loss": 1.0 / (step + 1)}, step=step)
    step += 1
    if not step & 4095:
        out.write(f"HANDED {step} {clock()!r}\\n")
        out.flush()
"""


def _crash_trial(cfg: Any, after_s: float) -> dict[str, Any]:
    gw = _gw()
    env = {**os.environ, **cfg.child_environ(), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASH_CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    first = child.stdout.readline().split()
    if len(first) != 2:
        child.kill()
        raise RuntimeError(f"the logging child failed to start: {child.communicate()[1][-2000:]}")
    run_id = first[1]
    marks: list[tuple[int, float]] = []
    enough = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            _, count, at = line.split()
            marks.append((int(count), float(at)))
            if marks[-1][1] - marks[0][1] >= after_s:
                enough.set()
        enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    enough.wait()
    killed_at = time.monotonic()
    child.kill()  # SIGKILL
    child.wait()
    reader.join(30)
    stored = _history_len(gw, cfg, run_id)
    covered = [at for count, at in marks if count <= stored]
    lost_s = killed_at - (covered[-1] if covered else marks[0][1])
    owed = max((count for count, at in marks if at <= killed_at - 1.0), default=0)
    span = marks[-1][1] - marks[0][1]
    return {
        "after_s": after_s,
        "lost_s": lost_s,
        "stored": stored,
        "handed_over_at_least": marks[-1][0],
        "owed_by_the_bound": owed,
        "rate": (marks[-1][0] - marks[0][0]) / span if span > 0 else None,
        "status": gw.get_run(run_id, config=cfg).status,
    }


def ours_w6(w: Workloads, scale: float, workdir: Path, **_: Any) -> dict[str, Any]:
    gw = _gw()
    trials = scaled(w.crash_trials, scale, 3)
    low, high = w.crash_after
    rows = []
    for k in range(trials):  # kill times spread evenly over [low, high] seconds of logging
        cfg = _config(workdir / f"trial-{k}")
        _init_ours(gw, cfg)
        rows.append(_crash_trial(cfg, low + (high - low) * k / max(1, trials - 1)))
    worst = max(r["lost_s"] for r in rows)
    return {
        "trials": trials,
        "seconds": worst,
        "lost_s": [r["lost_s"] for r in rows],
        "rates": [r["rate"] for r in rows],
        "unit": "s",
        "detail": rows,
        "problems": [
            f"trial {k}: {r['owed_by_the_bound'] - r['stored']:,} points handed over more than "
            f"{w.crash_bound_s:g} s before the kill are missing"
            for k, r in enumerate(rows)
            if r["stored"] < r["owed_by_the_bound"]
        ]
        + [f"trial {k}: the run is {r['status']!r}, not 'crashed'" for k, r in enumerate(rows) if r["status"] != "crashed"],
    }


# W7: start time. Each process imports groundwork, resolves gw.start_run and imports the SQL
# store's module (SQLAlchemy, NumPy: the libraries' import is reported apart, in "import +
# start_run"), then times its first start_run; run.flush() after it is when the run's row is
# durable. The first process finds the packages cache empty (cold).
_START_CHILD = """
import json, time
t0 = time.perf_counter()
import groundwork as gw
import groundwork.storage.metadata
start_run = gw.start_run
t1 = time.perf_counter()
run = start_run(name="bench-w7")
t2 = time.perf_counter()
run.flush()
t3 = time.perf_counter()
run.end()
print(json.dumps({"import_ms": (t1 - t0) * 1000, "start_ms": (t2 - t1) * 1000, "durable_ms": (t3 - t1) * 1000}))
"""


def ours_w7(w: Workloads, scale: float, workdir: Path, **_: Any) -> dict[str, Any]:
    gw = _gw()
    cfg = _config(workdir)
    _init_ours(gw, cfg)
    project = workdir / "project"
    make_small_repo(project)
    env = {
        **os.environ,
        **cfg.child_environ(),
        "GROUNDWORK_CACHE_DIR": str(workdir / "cache"),  # starts empty: the first process is the cold one
    }
    count = scaled(w.start_trials, scale, 3) + 1
    rows = fresh_processes([sys.executable, "-c", _START_CHILD], project, env, count)
    cold, warm = rows[0], rows[1:]
    starts = [float(r["start_ms"]) for r in warm]
    return {
        "processes": count,
        "ms": statistics.median(starts),
        "times_ms": starts,
        "cold_ms": float(cold["start_ms"]),
        "durable_ms": statistics.median(float(r["durable_ms"]) for r in warm),
        "import_ms": statistics.median(float(r["import_ms"]) for r in warm),
        "total_ms": statistics.median(float(r["import_ms"]) + float(r["start_ms"]) for r in warm),
        "process_ms": statistics.median(float(r["process_ms"]) for r in warm),
        "git": (project / ".git").exists(),
        "unit": "ms",
    }


OURS = {
    "W1": ours_w1, "W2": ours_w2, "W3": ours_w3, "W4": ours_w4, "W5": ours_w5, "W6": ours_w6, "W7": ours_w7,
}


def run_ours(name: str, w: Workloads, scale: float, workdir: Path, **kw: Any) -> dict[str, Any]:
    _say(f"groundwork {name} ...")
    t0 = time.perf_counter()
    try:
        out = OURS[name](w, scale, workdir, **kw)
        out["ok"] = True
    except SdkNotReady as exc:
        out = {"ok": False, "error": str(exc)}
    except Exception as exc:  # noqa: BLE001 - one failing workload must not hide the others
        traceback.print_exc()
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    out["wall_seconds"] = time.perf_counter() - t0
    _say(f"groundwork {name}: {_brief(out)}")
    return out


# =======================================================================================
# MLflow's side (its own venv, one subprocess per workload)
# =======================================================================================


def run_peer(
    python: Path,
    name: str,
    w: Workloads,
    scale: float,
    workdir: Path,
    extra: list[str] | None = None,
    label: str | None = None,
    timeout: float = 1800,
) -> dict[str, Any]:
    label = label or name
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(python),
        str(PEER_SCRIPT),
        "--workdir",
        str(workdir),
        "--workload",
        name,
        "--scale",
        repr(scale),
        *w.peer_args(),
        *(extra or []),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    _say(f"MLflow {label} ...")
    log_path = workdir / "peer-stderr.log"
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

        def relay() -> None:  # keep the peer's own progress lines visible, everything in the log
            assert proc.stderr is not None
            for line in proc.stderr:
                log.write(line)
                if line.startswith("[mlflow-peer]"):
                    _say("  " + line.rstrip())

        relay_thread = threading.Thread(target=relay, daemon=True)
        relay_thread.start()
        try:
            stdout, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            relay_thread.join(5)
            return {"ok": False, "error": f"timed out after {timeout:.0f}s (log: {log_path})"}
        relay_thread.join(5)
    out: dict[str, Any]
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        out = json.loads(lines[-1])
    except (IndexError, ValueError):
        out = {"ok": False, "error": f"no JSON result (exit {proc.returncode}); log: {log_path}"}
    if not out.get("ok"):
        out.setdefault("error", f"exit {proc.returncode}")
        out["log"] = str(log_path)
    out["command"] = " ".join(cmd)
    out["wall_seconds_outer"] = time.perf_counter() - t0
    _say(f"MLflow {label}: {_brief(out)}")
    return out


# =======================================================================================
# Comparison and report
# =======================================================================================


def _brief(r: dict[str, Any]) -> str:
    if not r.get("ok"):
        return f"FAILED: {r.get('error')}"
    if "lost_s" in r:  # W6
        return "lost " + ", ".join(f"{x:.3f}" for x in r["lost_s"]) + f" s (worst {r['seconds']:.3f} s)"
    s = f"{r['rate']:,.1f} {r['unit']}" if "rate" in r else f"{r['ms']:.2f} ms"
    if "total_ms" in r:  # W7
        s += f" (import + start_run {r['total_ms']:.0f} ms)"
    if "errors" in r:
        s += f", {r['errors']} errors, {r['present']}/{r['points']} points present"
    if "search" in r:
        s += "; search " + ", ".join(f"{k} runs: {v['ms']:.2f} ms" for k, v in r["search"].items())
    return s


def _row(
    workload: str,
    ours: dict[str, Any] | None,
    peer: dict[str, Any] | None,
    *,
    higher_better: bool,
    key: str,
    size: str,
    target: float | None,
    problems: list[str],
    bound: float | None = None,
    worst: bool = False,
) -> dict[str, Any]:
    """One table row. ``target`` is a ratio to reach; ``bound`` instead is a limit on our own
    value (lower is better), with the ratio to MLflow shown as information. ``worst`` rows
    keep the worst round (W6's loss), the others the median round, when rounds repeat."""
    o = ours.get(key) if ours and ours.get("ok", True) else None
    p = peer.get(key) if peer and peer.get("ok", True) else None
    ratio = None
    if o is not None and p is not None and o > 0 and p > 0:
        ratio = o / p if higher_better else p / o
    if bound is not None:
        verdict = "n/a" if o is None else ("met" if o <= bound and not problems else "missed")
    elif target is None:
        verdict = "info"
    elif ratio is None:
        verdict = "n/a"
    else:
        verdict = "met" if ratio >= target and not problems else "missed"
    return {
        "workload": workload,
        "size": size,
        "groundwork": o,
        "mlflow": p,
        "unit": (ours or peer or {}).get("unit", "ms") if bound is not None or higher_better else "ms",
        "higher_better": higher_better,
        "key": key,
        "ratio": ratio,
        "target": target,
        "bound": bound,
        "worst": worst,
        "verdict": verdict,
        "problems": problems,
    }


def _pick(rows: list[dict[str, Any]], side: str) -> dict[str, Any] | None:
    """One side's value over rounds of a row: the median, or the worst (highest) for ``worst`` rows."""
    values = [r[side] for r in rows if r[side] is not None]
    if not values:
        return None
    value = max(values) if rows[0]["worst"] else statistics.median(values)
    return {rows[0]["key"]: value, "unit": rows[0]["unit"]}


def merge_rounds(rounds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows of repeated rounds as one: the median of each side's values (the worst for ``worst``
    rows), the ratio of those, and the spread (lowest, highest) of the rounds' own ratios or values."""
    if len(rounds) == 1:
        return [{**row, "rounds": 1, "spread": None} for row in rounds[0]]
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rows in rounds:
        for row in rows:
            grouped.setdefault((row["workload"], row["size"]), []).append(row)
    merged = []
    for (workload, size), rows in grouped.items():
        first = rows[0]
        row = _row(
            workload,
            _pick(rows, "groundwork"),
            _pick(rows, "mlflow"),
            higher_better=first["higher_better"],
            key=first["key"],
            size=size,
            target=first["target"],
            problems=sorted({p for r in rows for p in r["problems"]}),
            bound=first["bound"],
            worst=first["worst"],
        )
        own = "groundwork" if first["bound"] is not None else "ratio"
        values = [r[own] for r in rows if r[own] is not None]
        row.update(rounds=len(rows), spread=(min(values), max(values)) if values else None, spread_of=own)
        merged.append(row)
    return merged


def _present_problems(r: dict[str, Any] | None, expected: int | None = None) -> list[str]:
    if not r or not r.get("ok"):
        return []
    out = []
    want = expected if expected is not None else r.get("points")
    if "present" in r and want is not None and r["present"] != want:
        out.append(f"groundwork stored {r['present']} of {want} points")
    if r.get("errors"):
        out.append(f"groundwork raised {r['errors']} errors")
    return out


def _search_problems(side: str, res: dict[str, Any], size: int, w: Workloads) -> list[str]:
    want = expected_search(size, w.seed, w.limit)
    out = []
    if res.get("results") != want["results"]:
        out.append(f"{side} search returned {res.get('results')} runs, expected {want['results']}")
    top = res.get("top_acc")
    if want["top_acc"] is not None and (top is None or abs(float(top) - float(want["top_acc"])) > 1e-9):
        out.append(f"{side} search's best acc is {top}, expected {want['top_acc']}")
    return out


def compare(
    w: Workloads, ours: dict[str, dict[str, Any]], peer: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def size(o: dict[str, Any] | None, p: dict[str, Any] | None, key: str, unit: str) -> str:
        def one(r: dict[str, Any] | None) -> str:
            return f"{r[key]:,}" if r and r.get("ok") and key in r else "-"

        return f"{one(o)} / {one(p)} {unit}"

    for name in ALL:
        o, p = ours.get(name), peer.get(name)
        if o is None and p is None:
            continue
        if name in ("W1", "W2"):
            rows.append(
                _row(
                    name,
                    o,
                    p,
                    higher_better=True,
                    key="rate",
                    size=size(o, p, "points", "pts"),
                    target=TARGETS[name],
                    problems=_present_problems(o),
                )
            )
            if name == "W1" and peer.get("W1 async"):
                pa = peer["W1 async"]
                rows.append(
                    _row(
                        "W1 vs MLflow async",
                        o,
                        pa,
                        higher_better=True,
                        key="rate",
                        size=size(o, pa, "points", "pts"),
                        target=None,
                        problems=[],
                    )
                )
        elif name == "W3":
            rows.append(
                _row(
                    "W3 create",
                    o,
                    p,
                    higher_better=True,
                    key="rate",
                    size=size(o, p, "runs", "runs"),
                    target=TARGETS["W3 create"],
                    problems=[],
                )
            )
            o_s = (o or {}).get("search", {}) if o and o.get("ok") else {}
            p_s = (p or {}).get("search", {}) if p and p.get("ok") else {}
            sizes = sorted({int(k) for k in (*o_s, *p_s)}, reverse=True)
            common = [k for k in sizes if str(k) in o_s and str(k) in p_s]
            # The target is judged on the largest store both sides searched (the full
            # 5,000 runs when MLflow's full store exists); the other sizes are info.
            judged = common[0] if common else (sizes[0] if sizes else None)
            for k in sizes:
                os_, ps_ = o_s.get(str(k)), p_s.get(str(k))
                probs = _search_problems("groundwork", os_, k, w) if os_ else []
                probs += _search_problems("MLflow", ps_, k, w) if ps_ else []
                rows.append(
                    _row(
                        "W3 search",
                        os_,
                        ps_,
                        higher_better=False,
                        key="ms",
                        size=f"{k:,} runs",
                        target=TARGETS["W3 search"] if k == judged else None,
                        problems=probs,
                    )
                )
                if ps_ and os_ and "client_ms" in ps_:
                    rows.append(
                        _row(
                            "W3 search vs Client",
                            os_,
                            {"ms": ps_["client_ms"]},
                            higher_better=False,
                            key="ms",
                            size=f"{k:,} runs",
                            target=None,
                            problems=[],
                        )
                    )
        elif name == "W4":
            probs = []
            if o and o.get("ok") and o.get("returned") != w.history:
                probs.append(f"groundwork returned {o.get('returned')} of {w.history} points")
            rows.append(
                _row(
                    name,
                    o,
                    p,
                    higher_better=False,
                    key="ms",
                    size=f"{w.history:,} pts",
                    target=TARGETS[name],
                    problems=probs,
                )
            )
        elif name == "W5":
            rows.append(
                _row(
                    name,
                    o,
                    p,
                    higher_better=True,
                    key="rate",
                    size=size(o, p, "points", "pts"),
                    target=TARGETS[name],
                    problems=_present_problems(o),
                )
            )
        elif name == "W6" and o is not None:
            rows.append(
                _row(
                    "W6 crash loss",
                    o,
                    None,
                    higher_better=False,
                    key="seconds",
                    size=f"{o.get('trials', '-')} kills",
                    target=None,
                    problems=list(o.get("problems", [])),
                    bound=w.crash_bound_s,
                    worst=True,
                )
            )
        elif name == "W7":
            n = f"{(o or {}).get('processes', '-')} / {(p or {}).get('processes', '-')} procs"
            rows.append(
                _row("W7 start_run", o, p, higher_better=False, key="ms", size=n, target=None, problems=[],
                     bound=w.start_bound_ms)
            )
            # Information: until the run's row is durable (MLflow's start_run returns then), with the
            # imports a fresh process pays first, and our first process, whose packages cache was empty.
            durable = {"ms": o["durable_ms"]} if o and o.get("ok") else None
            rows.append(_row("W7 until durable", durable, p, higher_better=False, key="ms", size=n, target=None,
                             problems=[]))
            total_o = {"ms": o["total_ms"]} if o and o.get("ok") else None
            total_p = {"ms": p["total_ms"]} if p and p.get("ok") else None
            rows.append(_row("W7 import + start_run", total_o, total_p, higher_better=False, key="ms", size=n,
                             target=None, problems=[]))
            cold = {"ms": o["cold_ms"]} if o and o.get("ok") else None
            rows.append(_row("W7 cold packages cache", cold, None, higher_better=False, key="ms",
                             size="1 proc", target=None, problems=[]))
    return rows


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "s":
        return f"{v:.3f} s"
    unit = unit.replace("points", "pts")
    return f"{v:,.0f} {unit}" if v >= 100 else f"{v:,.1f} {unit}"


def _ratio(ratio: float | None) -> str:
    return "-" if ratio is None else (f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x")


def _target(r: dict[str, Any]) -> str:
    if r.get("bound") is not None:
        return "<=" + _fmt(r["bound"], r["unit"]).replace(".000 s", " s").replace(".00 ms", " ms")
    return "-" if r["target"] is None else f">={r['target']:,.0f}x"


def _spread(r: dict[str, Any]) -> str:
    """The lowest and highest of the rounds: our value for bound rows, the ratio for the others."""
    if not r.get("spread"):
        return "-"
    low, high = r["spread"]
    if r.get("spread_of") == "groundwork":
        return f"{_fmt(low, r['unit'])} - {_fmt(high, r['unit'])}"
    return f"{_ratio(low)} - {_ratio(high)}"


def print_table(rows: list[dict[str, Any]], peer: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log file or a pipe: don't squeeze into 80 columns
        console = Console(width=132)
    title = (
        f"Tracking: groundwork {meta.get('groundwork') or '?'} vs MLflow {meta.get('mlflow') or '?'} (SQLite)"
    )
    table = Table(title=title)
    table.add_column("workload", no_wrap=True)
    table.add_column("n (ours / MLflow)", justify="right", no_wrap=True)
    rounds = max((r.get("rounds", 1) for r in rows), default=1)
    for col in ("groundwork", "MLflow", "ratio", f"spread ({rounds} rounds)" if rounds > 1 else "spread", "target"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    errors = {
        side: d.get("errors")
        for side, d in (("ours", meta["ours_raw"].get("W5")), ("peer", peer.get("W5")))
        if d and d.get("ok")
    }
    for r in rows:
        style = {"met": "green", "missed": "red", "n/a": "yellow", "info": "dim"}[r["verdict"]]
        ours_cell, peer_cell = _fmt(r["groundwork"], r["unit"]), _fmt(r["mlflow"], r["unit"])
        if r["workload"] == "W5":
            if "ours" in errors:
                ours_cell += f", {errors['ours']} err"
            if "peer" in errors:
                peer_cell += f", {errors['peer']} err"
        table.add_row(
            r["workload"],
            r["size"],
            ours_cell,
            peer_cell,
            _ratio(r["ratio"]),
            _spread(r),
            _target(r),
            f"[{style}]{r['verdict']}[/{style}]",
        )
    console.print(table)
    console.print("[dim]" + "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items()) + "[/dim]")
    for r in rows:
        for p in r["problems"]:
            console.print(f"[red]{r['workload']} ({r['size']}): {p}[/red]")
    sides = {
        **{f"groundwork {k}": v for k, v in meta["ours_raw"].items()},
        **{f"MLflow {k}": v for k, v in peer.items()},
    }
    for name, d in sides.items():
        if d and not d.get("ok"):
            console.print(f"[yellow]{name} did not run: {d.get('error')}[/yellow]")
    console.print(f"[dim]{meta['note']}[/dim]")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: our side at --scale 0.1, MLflow at --peer-scale 0.02, no full-size MLflow store build",
    )
    ap.add_argument("--scale", type=float, default=None, help="shrink our side (default 1.0, --quick 0.1)")
    ap.add_argument(
        "--peer-scale",
        type=float,
        default=None,
        help="shrink MLflow's W1, W3 creation and W5 (default 0.05, --quick 0.02); rates are compared",
    )
    ap.add_argument("--skip-peer", action="store_true", help="measure groundwork only")
    ap.add_argument("--skip-ours", action="store_true", help="measure MLflow only")
    ap.add_argument("--only", default=",".join(ALL), help="comma-separated workloads, e.g. W1,W3")
    ap.add_argument(
        "--no-peer-async",
        action="store_true",
        help="skip the informational W1 run with MLflow's opt-in async logging",
    )
    ap.add_argument(
        "--peer-full-store",
        choices=("build", "cached", "skip"),
        default=None,
        help="MLflow W3 search on a full-size store: build it once and cache it under "
        ".bench/cache (default), use it only if cached (--quick), or skip",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run every workload this many rounds, the two sides interleaved; report medians and spread",
    )
    ap.add_argument("--keep", action="store_true", help="keep the stores under .bench/work/")
    ap.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS})")
    ap.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)

    only = [x.strip().upper() for x in args.only.split(",") if x.strip()]
    bad = [x for x in only if x not in ALL]
    if bad:
        ap.error(f"unknown workload(s) {bad}; choose from {', '.join(ALL)}")
    if args.skip_ours and args.skip_peer:
        ap.error("--skip-ours and --skip-peer leave nothing to measure")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    peer_scale = args.peer_scale if args.peer_scale is not None else (0.02 if args.quick else 0.05)
    full_store = args.peer_full_store or ("cached" if args.quick else "build")
    w = WORKLOADS

    gw_version = None
    if not args.skip_ours:
        try:
            gw_version = getattr(_gw(), "__version__", None)
        except SdkNotReady as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    python = None
    if not args.skip_peer:
        python = peer_python("mlflow", MLFLOW_REQUIREMENTS)

    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = BENCH_DIR / "work" / f"tracking-{stamp}-{os.getpid()}"
    rounds: list[tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]] = []
    t_all = time.perf_counter()
    load_before = os.getloadavg()
    try:
        for round_no in range(args.repeat):
            ours: dict[str, dict[str, Any]] = {}
            peer: dict[str, dict[str, Any]] = {}
            here = work / f"round-{round_no}" if args.repeat > 1 else work
            if args.repeat > 1:
                _say(f"-- round {round_no + 1} of {args.repeat}")
            for name in only:
                s = peer_scale if name in PEER_SCALED else 1.0

                def measure_ours(name: str = name, s: float = s, here: Path = here, ours: Any = ours) -> None:
                    kw: dict[str, Any] = {}
                    if name == "W3":  # search our store at MLflow's scaled size too
                        kw["search_at"] = (scaled(w.runs, s, 20), w.runs)
                    ours[name] = run_ours(name, w, scale, here / "groundwork" / name, **kw)

                def measure_peer(name: str = name, s: float = s, here: Path = here, peer: Any = peer) -> None:
                    assert python is not None
                    extra = (
                        ["--full-store", full_store, "--cache-dir", str(SEARCH_STORE_CACHE)]
                        if name == "W3"
                        else []
                    )
                    peer[name] = run_peer(python, name, w, s, here / "mlflow" / name, extra)
                    if name == "W1" and not args.no_peer_async:
                        peer["W1 async"] = run_peer(
                            python,
                            name,
                            w,
                            s,
                            here / "mlflow" / "W1-async",
                            ["--async-logging"],
                            label="W1 (async logging)",
                        )

                sides = []
                if not args.skip_ours:
                    sides.append(measure_ours)
                if python is not None and name not in OURS_ONLY:
                    sides.append(measure_peer)
                if round_no % 2:  # interleaved: alternate who goes first, so drift hits both sides alike
                    sides.reverse()
                for measure in sides:
                    measure()
            rounds.append((ours, peer))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    ours, peer = rounds[-1]
    versions = peer_versions("mlflow") if python is not None else {}
    rows = merge_rounds([compare(w, o, p) for o, p in rounds])
    meta = {
        "groundwork": gw_version,
        "mlflow": versions.get("mlflow"),
        "ours_raw": ours,
        "note": (
            f"groundwork at scale {scale:g}, MLflow's W1/W3-create/W5 at scale {peer_scale:g} "
            f"(W2, W4 full size); rates are compared. Search and read: median of {w.repeats} after a "
            f"warm-up."
            + (
                f" {args.repeat} interleaved rounds: medians (W6: the worst), spread = lowest - highest round."
                if args.repeat > 1
                else ""
            )
            + f" Raw numbers: {args.output}"
        ),
    }
    report = {
        "benchmark": "tracking",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": time.perf_counter() - t_all,
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "processor": platform.processor(),
            # Other work on the machine skews both sides; this says how busy it was.
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "argv": sys.argv[1:] if argv is None else argv,
        "workloads": asdict(w),
        "scale": {"groundwork": scale, "mlflow": peer_scale, "mlflow_scaled": sorted(PEER_SCALED)},
        "versions": {
            "groundwork": gw_version,
            "mlflow": versions.get("mlflow"),
            "mlflow_sqlalchemy": versions.get("sqlalchemy"),
            "mlflow_requirements": MLFLOW_REQUIREMENTS,
        },
        "targets": TARGETS,
        "comparison": rows,
        "groundwork": ours,
        "mlflow": peer,
        "rounds": [{"groundwork": o, "mlflow": p} for o, p in rounds],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, default=str))
    os.replace(tmp, args.output)
    print_table(rows, peer, meta)
    busy = max(load_before[0], os.getloadavg()[0])
    if busy > (os.cpu_count() or 1):
        print(
            f"warning: load average reached {busy:.1f} on {os.cpu_count()} CPUs while measuring; other "
            "work was running and the numbers are noisy",
            file=sys.stderr,
        )
    missed = any(r["verdict"] == "missed" for r in rows)
    return 1 if (missed and args.fail_on_miss) else 0


if __name__ == "__main__":
    sys.exit(main())
