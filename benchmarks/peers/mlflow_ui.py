"""MLflow's side of the UI benchmark: build an MLflow store equal to ours. Runs INSIDE the MLflow venv.

Standalone: the standard library at module level (``benchmarks/ui.py`` imports the
workload *data* from here: :func:`run_name`, :func:`big_value`, and W3's
``run_params``/``run_metrics`` re-exported), MLflow only inside :func:`build`.

    .bench/mlflow-venv/bin/python benchmarks/peers/mlflow_ui.py build \\
        --db /tmp/mlflow-ui/mlflow.db --runs 100000 --points 1000000

prints one JSON line: the experiment id, the big run's id, the row counts.

How the store is made (documented in docs/ui.md and docs/benchmarks.md): MLflow creates
its schema and the experiment through its own API (``SqlAlchemyStore``, which runs its
migrations), then the 100,000 runs, their params, metrics, latest metrics and MLflow's
automatic tags are bulk-inserted into MLflow's own tables with ``executemany``, in the
exact shape its API writes them (creating 100,000 runs through the API takes hours). The
1,000,000-point series goes into ``metrics`` the same way. Nothing about MLflow's
schema, indexes or server is changed; ``mlflow server`` then serves this store as any
other.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlflow_tracking import LR_CYCLE, run_metrics, run_params  # noqa: E402  (stdlib only)

__all__ = ["BIG_KEY", "BIG_RUN_NAME", "LR_CYCLE", "SEED", "big_value", "created_at", "run_metrics", "run_name",
           "run_params"]

#: Bump when any of the data functions change (it keys the cached stores).
DATA_VERSION = 1
SEED = 0
BIG_RUN_NAME = "big-series"
BIG_KEY = "loss"
#: Run i was created this many seconds after run 0 (so "newest first" is run N-1 first).
BASE_TIME = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def run_name(i: int) -> str:
    return f"run-{i:06d}"


def created_at(i: int) -> float:
    return BASE_TIME + i * 10.0


def big_value(step: int) -> float:
    """The 1,000,000-point series: a decaying loss with a slow wave and deterministic noise."""
    noise = ((step * 2_654_435_761) % 1_000_003) / 1_000_003 - 0.5
    return 0.1 + 2.0 * math.exp(-step / 150_000) + 0.05 * math.sin(step / 9_000) + 0.04 * noise


def _mlflow_param(value: object) -> str:
    return str(value)


def build(db: Path, runs: int, points: int) -> dict[str, object]:
    """An MLflow SQLite store with ``runs`` runs (10 params, 5 metrics) plus one ``points``-point run."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    db.parent.mkdir(parents=True, exist_ok=True)
    if db.exists():
        db.unlink()
    uri = f"sqlite:///{db}"
    artifacts = db.parent / "mlruns"
    store = SqlAlchemyStore(uri, str(artifacts))  # creates the schema with MLflow's own migrations
    experiment_id = store.get_experiment_by_name("Default").experiment_id
    store.engine.dispose()

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    t0 = time.perf_counter()
    run_rows, param_rows, metric_rows, latest_rows, tag_rows = [], [], [], [], []
    big_id = uuid.UUID(int=(1 << 127) + runs).hex
    for i in range(runs + 1):
        is_big = i == runs
        run_id = big_id if is_big else uuid.UUID(int=(1 << 126) + i).hex
        name = BIG_RUN_NAME if is_big else run_name(i)
        start = int(created_at(i) * 1000)
        end = start + 5_000
        run_rows.append((run_id, name, "LOCAL", "", "", "bench", "FINISHED", start, end, "", "active",
                         f"{artifacts}/{experiment_id}/{run_id}/artifacts", experiment_id))
        tag_rows.extend([
            ("mlflow.runName", name, run_id),
            ("mlflow.user", "bench", run_id),
            ("mlflow.source.name", "train.py", run_id),
            ("mlflow.source.type", "LOCAL", run_id),
        ])
        if is_big:
            continue
        for key, value in run_params(i, SEED).items():
            param_rows.append((key, _mlflow_param(value), run_id))
        for key, value in run_metrics(i, SEED).items():
            metric_rows.append((key, value, start + 1_000, run_id, 0, 0))
            latest_rows.append((key, value, start + 1_000, 0, 0, run_id))
    with conn:
        conn.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            run_rows,
        )
        conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
        conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
        conn.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
            metric_rows,
        )
        conn.executemany(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            latest_rows,
        )
    big_start = int(created_at(runs) * 1000)
    batch = 100_000
    with conn:
        for first in range(0, points, batch):
            conn.executemany(
                "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?)",
                [(BIG_KEY, big_value(s), big_start + s, big_id, s, 0) for s in range(first, min(points, first + batch))],
            )
        last = points - 1
        conn.execute(
            "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?)",
            (BIG_KEY, big_value(last), big_start + last, last, 0, big_id),
        )
    conn.close()
    return {"ok": True, "experiment_id": experiment_id, "big_run_id": big_id, "runs": runs + 1, "points": points,
            "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="make the MLflow store")
    b.add_argument("--db", required=True, type=Path)
    b.add_argument("--runs", type=int, default=100_000)
    b.add_argument("--points", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    result = build(args.db.resolve(), args.runs, args.points)
    import mlflow

    result["mlflow"] = mlflow.__version__
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
