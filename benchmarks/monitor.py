"""Monitoring benchmark: ``groundwork monitor``'s drift report against Evidently's data-drift preset.

The same data on both sides: a reference of 100,000 rows of 64 numeric features (the
data a model was trained on; normal, log-normal, uniform and count features), and one
million logged rows of the same features in which five features moved (a mean shift of
half a standard deviation, a wider spread, a scaled log-normal, a moved uniform, a count
that grew by one) and two moved too little to matter (0.03 and 0.08 standard deviations:
significant at a million rows, but small).

* groundwork: a model trained on the reference (logged as its run's dataset input) is
  registered and promoted; the million rows go through the prediction log's own writer
  (``PredictionLog.offer``, 1,000 requests of 1,000 rows, segments of 250,000 rows with
  their summaries), as ``groundwork serve`` logs them. Timed: the whole
  ``monitor_report("bench-monitor@production")`` call, which finds the reference through
  lineage, reads and summarizes it, merges the segments' summaries and judges every feature.
* Evidently (its own venv, ``.bench/evidently-venv``): ``Report([DataDriftPreset()]).run``
  on the same million rows and the same reference, handed over as pandas DataFrames
  already in memory (reading them is not timed), results read back included.

Judged: the same drifted features flagged by both, and groundwork at least 20x faster.
``--repeat N`` runs N rounds, the two sides interleaved (who goes first alternates), and
reports the medians, their ratio and the spread.

    .venv/bin/python benchmarks/monitor.py                # 3 rounds
    .venv/bin/python benchmarks/monitor.py --repeat 5
    .venv/bin/python benchmarks/monitor.py --rows 200000  # smaller, quicker

Everything it writes is under ``.bench/monitor/`` (removed afterwards unless ``--keep``);
the numbers go to ``.bench/results/monitor.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks._peers import peer_python, peer_versions  # noqa: E402

# Evidently 0.7 needs pandas < 3 (groundwork's venv has 3.x): it gets a venv of its own.
EVIDENTLY_REQUIREMENTS = ["evidently==0.7.23", "pandas==2.3.3"]
WORK = REPO / ".bench" / "monitor"
RESULTS = REPO / ".bench" / "results" / "monitor.json"
FEATURES = 64
MODEL = "bench-monitor"
TARGET_RATIO = 20.0
REQUEST_ROWS = 1000
SEGMENT_ROWS = 250_000  # the prediction log's default
# The features that move, and how (what both tools should flag), and two that move too little.
MOVED = {"f3": "mean + 0.5 sd", "f17": "sd x 1.6", "f40": "log-normal x 1.5", "f50": "uniform + 0.25 of its range",
         "f60": "count + 1"}
NUDGED = {"f10": "mean + 0.03 sd", "f20": "mean + 0.08 sd"}


def say(message: str) -> None:
    print(f"[monitor] {message}", file=sys.stderr, flush=True)


def make_rows(rows: int, seed: int, moved: bool) -> np.ndarray:
    """``rows`` x 64: f0-f31 normal, f32-f47 log-normal, f48-f55 uniform, f56-f63 counts (Poisson)."""
    rng = np.random.default_rng(seed)
    out = np.empty((rows, FEATURES))
    means = np.linspace(-5, 5, 32)
    sds = np.linspace(0.5, 3, 32)
    for j in range(32):
        sd = sds[j] * (1.6 if moved and j == 17 else 1.0)
        shift = {3: 0.5, 10: 0.03, 20: 0.08}.get(j, 0.0) if moved else 0.0
        out[:, j] = rng.normal(means[j] + shift * sds[j], sd, rows)
    for j in range(32, 48):
        out[:, j] = rng.lognormal(0.0, 0.5, rows) * (1.5 if moved and j == 40 else 1.0)
    for j in range(48, 56):
        out[:, j] = rng.uniform(0, 10, rows) + (2.5 if moved and j == 50 else 0.0)
    for j in range(56, 64):
        out[:, j] = rng.poisson(4.0 if moved and j == 60 else 3.0, rows)
    return out


def columns() -> list[str]:
    return [f"f{j}" for j in range(FEATURES)]


# --- the data and groundwork's side --------------------------------------------------------------------------
def prepare(rows: int, reference_rows: int) -> tuple[dict[str, Any], Path, Path, dict[str, float]]:
    """The reference and current Parquet files, and a store whose prediction log holds the current rows."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    import groundwork as gw
    from groundwork.config import Config
    from groundwork.engines.monitor.log import LogOptions, PredictionLog

    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    timings: dict[str, float] = {}
    reference = make_rows(reference_rows, 1, moved=False)
    current = make_rows(rows, 2, moved=True)
    label = (reference[:, 0] + reference[:, 1] > np.median(reference[:, 0] + reference[:, 1])).astype(np.int64)
    frame = pd.DataFrame(reference, columns=columns()).assign(label=label)
    reference_path, current_path = WORK / "train.parquet", WORK / "current.parquet"
    frame.to_parquet(reference_path)
    pd.DataFrame(current, columns=columns()).to_parquet(current_path)
    config = Config(store_url=f"sqlite:///{WORK / 'store' / 'meta.db'}", artifacts_url=str(WORK / "store" / "artifacts"))
    with threadpool_limits(1), gw.start_run(name="train", config=config, capture_code=False) as run:
        run.log_input(reference_path, kind="dataset")
        model = LogisticRegression(max_iter=200).fit(reference[:5000], label[:5000])
        version = run.log_model(model, MODEL, example=reference[:5])
    gw.promote_model(MODEL, version.version, alias="production", config=config)
    predictions = model.predict(current)
    log = PredictionLog(config, LogOptions(segment_rows=SEGMENT_ROWS, drift=False))
    started = time.perf_counter()
    for start in range(0, rows, REQUEST_ROWS):
        end = min(rows, start + REQUEST_ROWS)
        log.offer(MODEL, "production", "production", version.version, current[start:end], end - start,
                  predictions[start:end], 0.001)
        if end % SEGMENT_ROWS == 0:
            log.flush()  # the writer's turn: the open segment reached its size and closes
    log.close()
    timings["log_seconds"] = time.perf_counter() - started
    say(f"logged {rows:,} rows in {timings['log_seconds']:.1f} s ({log.segments} segments)")
    return config.child_environ(), reference_path, current_path, timings


def run_groundwork(environ: dict[str, str]) -> dict[str, Any]:
    from groundwork.config import Config
    from groundwork.engines.monitor.report import monitor_report

    config = Config.from_env(environ)
    started = time.perf_counter()
    report = monitor_report(f"{MODEL}@production", config=config)
    elapsed = time.perf_counter() - started
    rows = report.traffic.get("rows", 0)
    return {"seconds": elapsed, "drifted": sorted(f.name for f in report.features if f.drifted), "rows": rows,
            "segments": report.segments, "reference": report.reference.description if report.reference else None}


# --- Evidently's side ----------------------------------------------------------------------------------------
class Evidently:
    """The peer process: loads the data once, then runs the preset on each request."""

    def __init__(self, python: Path, reference: Path, current: Path) -> None:
        script = REPO / "benchmarks" / "peers" / "monitor_evidently.py"
        self.proc = subprocess.Popen([str(python), str(script), str(reference), str(current)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Evidently peer exited ({self.proc.wait()}); see its output above")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the run ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged rows (default 1,000,000)")
    parser.add_argument("--reference-rows", type=int, default=100_000, help="rows of the training data")
    parser.add_argument("--repeat", type=int, default=3, help="rounds, the two sides interleaved")
    parser.add_argument("--skip-peer", action="store_true", help="groundwork only")
    parser.add_argument("--keep", action="store_true", help="keep .bench/monitor/")
    parser.add_argument("--fail-on-miss", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    python = None if args.skip_peer else peer_python("evidently", EVIDENTLY_REQUIREMENTS)
    load_before = os.getloadavg()
    environ, reference, current, timings = prepare(args.rows, args.reference_rows)
    peer = Evidently(python, reference, current) if python is not None else None
    ours: list[dict[str, Any]] = []
    theirs: list[dict[str, Any]] = []
    try:
        for round_ in range(max(1, args.repeat)):
            sides = ["groundwork", "evidently"] if round_ % 2 == 0 else ["evidently", "groundwork"]
            for side in sides:
                if side == "groundwork":
                    ours.append(run_groundwork(environ))
                    say(f"round {round_ + 1}: groundwork {ours[-1]['seconds']:.3f} s, drifted {ours[-1]['drifted']}")
                elif peer is not None:
                    theirs.append(peer.run())
                    say(f"round {round_ + 1}: Evidently {theirs[-1]['seconds']:.2f} s, drifted {theirs[-1]['drifted']}")
    finally:
        if peer is not None:
            peer.close()
        if not args.keep:
            shutil.rmtree(WORK, ignore_errors=True)
    ok = report(args, ours, theirs, timings, load_before)
    return 0 if ok or not args.fail_on_miss else 1


def report(args: argparse.Namespace, ours: list[dict[str, Any]], theirs: list[dict[str, Any]],
           timings: dict[str, float], load_before: tuple[float, float, float]) -> bool:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    expected = sorted(MOVED)
    gw_s = statistics.median(r["seconds"] for r in ours)
    table = Table(title=f"Drift report over {args.rows:,} logged rows x {FEATURES} features "
                        f"(reference {args.reference_rows:,} rows), median of {len(ours)} rounds", title_justify="left")
    for col in ("", "groundwork monitor", "Evidently DataDriftPreset", "ratio", "target", "met"):
        table.add_column(col)
    ok = all(r["drifted"] == expected for r in ours)
    spread_gw = f"{min(r['seconds'] for r in ours):.3f}-{max(r['seconds'] for r in ours):.3f}"
    if theirs:
        ev_s = statistics.median(r["seconds"] for r in theirs)
        spread_ev = f"{min(r['seconds'] for r in theirs):.2f}-{max(r['seconds'] for r in theirs):.2f}"
        ratio = ev_s / gw_s
        faster = ratio >= TARGET_RATIO
        table.add_row("seconds (spread)", f"{gw_s:.3f} ({spread_gw})", f"{ev_s:.2f} ({spread_ev})", f"{ratio:.1f}x",
                      f">= {TARGET_RATIO:.0f}x", "[green]met[/]" if faster else "[red]missed[/]")
        same = all(r["drifted"] == ours[0]["drifted"] for r in ours + theirs)
        table.add_row("drifted features", ", ".join(ours[0]["drifted"]), ", ".join(theirs[0]["drifted"]), "",
                      "the same", "[green]met[/]" if same else "[red]missed[/]")
        ok = ok and faster and same
    else:
        table.add_row("seconds (spread)", f"{gw_s:.3f} ({spread_gw})", "skipped", "", "", "")
    console.print(table)
    console.print(f"moved: {', '.join(f'{k} ({v})' for k, v in MOVED.items())}; moved too little to flag: "
                  f"{', '.join(f'{k} ({v})' for k, v in NUDGED.items())}")
    if any(r["drifted"] != expected for r in ours):
        console.print(f"[red]groundwork flagged {ours[0]['drifted']}, the data moved {expected}[/]")
    console.print(f"logging the rows through the prediction log took {timings['log_seconds']:.1f} s "
                  f"({args.rows / timings['log_seconds']:,.0f} rows/s, {ours[0]['segments']} segments); "
                  f"reference: {ours[0]['reference']}")
    load_after = os.getloadavg()
    console.print(f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} CPUs")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_before": load_before, "load_after": load_after},
        "rows": args.rows, "reference_rows": args.reference_rows, "moved": MOVED, "nudged": NUDGED,
        "groundwork": ours, "evidently": theirs, "timings": timings,
        "peer": {k: v for k, v in peer_versions("evidently").items() if k in ("evidently", "pandas", "scipy", "numpy")},
    }, indent=1))
    console.print(f"raw numbers: {RESULTS.relative_to(REPO)}")
    return ok


if __name__ == "__main__":
    sys.exit(main())
