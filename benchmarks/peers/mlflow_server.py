"""MLflow's side of ``benchmarks/server.py`` that ``peers/mlflow_tracking.py`` does not cover.

Runs INSIDE the MLflow server peer venv (``.bench/mlflow-server-venv``: mlflow + psycopg2).
Prints one JSON line on stdout; progress goes to stderr.

    fill       --db-uri postgresql://... --runs N     W3's runs 0..N-1 written straight into MLflow's
                                                      tables (a search store, built outside any timing)
    search     --tracking-uri http://... --runs N     the W3 search through the server, timed
    artifacts  --tracking-uri http://... --file F     upload F to a run, download it again, timed

The logging workloads (W1, W2, W4, W5) go through ``peers/mlflow_tracking.py --tracking-uri``.
Credentials come from ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` as for any
MLflow client.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import traceback
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mlflow_tracking import _time_search, run_metrics, run_params  # noqa: E402  (stdlib only)


def _log(msg: str) -> None:
    print(f"[mlflow-peer] {msg}", file=sys.stderr, flush=True)


def fill(args: argparse.Namespace) -> dict[str, object]:
    """W3's runs ``0..runs-1`` (10 params, 5 metrics at step 0, the run-name tag) in experiment 0.

    Written with SQLAlchemy Core inserts into MLflow's own tables (its ORM models' tables),
    in batches: creating 100,000 runs through MLflow's API would take hours here, and only the
    search is timed. The rows are the ones MLflow's API writes for the same calls."""
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(args.db_uri, args.artifact_root)  # schema check / migrations
    engine = store.engine
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    batch = 2_000
    for first in range(0, args.runs, batch):
        runs, params, metrics, tags = [], [], [], []
        for i in range(first, min(args.runs, first + batch)):
            rid = uuid.uuid4().hex
            runs.append({
                "run_uuid": rid, "name": f"w3-{i}", "source_type": "LOCAL", "source_name": "bench",
                "entry_point_name": "", "user_id": "bench", "status": "FINISHED", "start_time": now + i,
                "end_time": now + i + 1, "deleted_time": None, "source_version": "", "lifecycle_stage": "active",
                "artifact_uri": f"mlflow-artifacts:/0/{rid}/artifacts", "experiment_id": 0,
            })
            params += [{"key": k, "value": str(v), "run_uuid": rid} for k, v in run_params(i, args.seed).items()]
            metrics += [
                {"key": k, "value": v, "timestamp": now + i, "step": 0, "is_nan": False, "run_uuid": rid}
                for k, v in run_metrics(i, args.seed).items()
            ]
            tags += [{"key": "mlflow.runName", "value": f"w3-{i}", "run_uuid": rid},
                     {"key": "mlflow.user", "value": "bench", "run_uuid": rid}]
        with engine.begin() as conn:
            conn.execute(sa.insert(SqlRun.__table__), runs)
            conn.execute(sa.insert(SqlParam.__table__), params)
            conn.execute(sa.insert(SqlMetric.__table__), metrics)
            conn.execute(sa.insert(SqlLatestMetric.__table__), metrics)
            conn.execute(sa.insert(SqlTag.__table__), tags)
        _log(f"fill: {min(args.runs, first + batch):,}/{args.runs:,} runs")
    with engine.begin() as conn:
        conn.execute(sa.text("ANALYZE"))
    return {"runs": args.runs, "seconds": time.perf_counter() - t0}


def search(args: argparse.Namespace) -> dict[str, object]:
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    out = _time_search(args.tracking_uri, args.repeats, args.limit)
    out.update(runs=args.runs, unit="ms")
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def artifacts(args: argparse.Namespace) -> dict[str, object]:
    """``mlflow.log_artifact`` (through the server's proxied artifact route) and
    ``mlflow.artifacts.download_artifacts`` of one file; the bytes are compared afterwards."""
    import mlflow

    mlflow.set_tracking_uri(args.tracking_uri)
    source = Path(args.file)
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    with mlflow.start_run(run_name="bench-artifact") as run:
        t0 = time.perf_counter()
        mlflow.log_artifact(str(source))
        up = time.perf_counter() - t0
    t0 = time.perf_counter()
    got = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path=source.name, dst_path=str(dest)
    )
    down = time.perf_counter() - t0
    same = _sha256(Path(got)) == _sha256(source)
    return {"bytes": source.stat().st_size, "upload_s": up, "download_s": down, "same_bytes": same}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("fill", "search", "artifacts"))
    ap.add_argument("--db-uri", help="fill: MLflow's backend store (SQLAlchemy URL)")
    ap.add_argument("--artifact-root", default="mlflow-artifacts:/", help="fill: the store's artifact root")
    ap.add_argument("--tracking-uri", help="search, artifacts: the MLflow server")
    ap.add_argument("--runs", type=int, default=0, help="fill: runs to write; search: runs in the store")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--file", help="artifacts: the file to upload")
    ap.add_argument("--dest", help="artifacts: an empty folder to download into")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        result = {"fill": fill, "search": search, "artifacts": artifacts}[args.command](args)
        import mlflow

        result.update(ok=True, mlflow=mlflow.__version__, wall_seconds=time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - reported as JSON, the orchestrator decides
        traceback.print_exc()
        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
